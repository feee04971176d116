//! The per-backend families: requests by class, errors by kind, latency
//! histograms, in-flight and open streams against the limits, health state and
//! weight, read from each backend's `Stats` at scrape time.

use std::fmt;
use std::sync::atomic::Ordering;

use fulcrum_core::health::State;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;

use super::{as_i64, backends, counter, family, gauge, Labels};
use crate::state::{byte_state, Snapshot};
use crate::stats::{ErrorKind, BUCKETS, CLASSES};

pub(super) fn encode(enc: &mut DescriptorEncoder<'_>, snap: &Snapshot) -> fmt::Result {
    use MetricType::{Counter, Gauge, Histogram};
    family(
        enc,
        (
            "fulcrum_backend_requests",
            "Requests answered, by status class of the response sent to the client.",
            None,
            Counter,
        ),
        |mut m| {
            for (p, _, b) in backends(snap) {
                let l = Labels::backend(&p.name, &b.key.0);
                for (class, n) in CLASSES.iter().zip(b.stats.requests()) {
                    counter(&mut m, &l.with("class", class), n)?;
                }
            }
            Ok(())
        },
    )?;
    family(
        enc,
        (
            "fulcrum_backend_errors",
            "Failed attempts, by kind: connect, reset, timeout, 5xx.",
            None,
            Counter,
        ),
        |mut m| {
            for (p, _, b) in backends(snap) {
                let l = Labels::backend(&p.name, &b.key.0);
                for (kind, n) in ErrorKind::ALL.iter().zip(b.stats.errors()) {
                    counter(&mut m, &l.with("kind", kind.as_str()), n)?;
                }
            }
            Ok(())
        },
    )?;
    family(
        enc,
        (
            "fulcrum_backend_request_duration",
            "Time from request head to response end.",
            Some(Unit::Seconds),
            Histogram,
        ),
        |mut m| {
            let mut buckets = [(0.0, 0u64); BUCKETS.len() + 1];
            for (p, _, b) in backends(snap) {
                let h = b.stats.histogram();
                for (i, slot) in buckets.iter_mut().enumerate() {
                    *slot = (BUCKETS.get(i).copied().unwrap_or(f64::MAX), h.buckets[i]);
                }
                m.encode_family(&Labels::backend(&p.name, &b.key.0))?
                    .encode_histogram::<NoLabelSet>(h.sum, h.count, &buckets, None)?;
            }
            Ok(())
        },
    )?;
    let bytes = [
        (
            "fulcrum_backend_request_body",
            "Request body bytes received from clients for this backend.",
        ),
        (
            "fulcrum_backend_response_body",
            "Response body bytes sent to clients from this backend.",
        ),
    ];
    for (i, (name, help)) in bytes.into_iter().enumerate() {
        family(enc, (name, help, Some(Unit::Bytes), Counter), |mut m| {
            for (p, _, b) in backends(snap) {
                let (inb, outb) = b.stats.bytes();
                let v = if i == 0 { inb } else { outb };
                counter(&mut m, &Labels::backend(&p.name, &b.key.0), v)?;
            }
            Ok(())
        })?;
    }
    family(
        enc,
        (
            "fulcrum_backend_in_flight_requests",
            "Requests in flight to the backend.",
            None,
            Gauge,
        ),
        |mut m| {
            for (p, _, b) in backends(snap) {
                let v = b.state.in_flight.load(Ordering::Relaxed);
                gauge(&mut m, &Labels::backend(&p.name, &b.key.0), i64::from(v))?;
            }
            Ok(())
        },
    )?;
    family(
        enc,
        (
            "fulcrum_backend_open_streams",
            "Upgraded (WebSocket) and layer-4 connections open to the backend.",
            None,
            Gauge,
        ),
        |mut m| {
            for (p, _, b) in backends(snap) {
                let v = i64::try_from(b.stats.streams_open()).unwrap_or(i64::MAX);
                gauge(&mut m, &Labels::backend(&p.name, &b.key.0), v)?;
            }
            Ok(())
        },
    )?;
    family(
        enc,
        (
            "fulcrum_backend_state",
            "1 for the backend's current state, 0 for the others.",
            None,
            Gauge,
        ),
        |mut m| {
            for (p, _, b) in backends(snap) {
                let now = byte_state(b.shown.load(Ordering::Relaxed));
                let l = Labels::backend(&p.name, &b.key.0);
                for s in State::ALL {
                    gauge(&mut m, &l.with("state", s.as_str()), i64::from(s == now))?;
                }
            }
            Ok(())
        },
    )?;
    family(
        enc,
        (
            "fulcrum_backend_weight",
            "Weight in use: the configured one, or the one set through the admin API.",
            None,
            Gauge,
        ),
        |mut m| {
            for (p, i, b) in backends(snap) {
                let w = p.backends.get(i).map_or(0, |x| x.weight.get());
                gauge(&mut m, &Labels::backend(&p.name, &b.key.0), i64::from(w))?;
            }
            Ok(())
        },
    )?;
    family(
        enc,
        (
            "fulcrum_backend_effective_weight",
            "Weight scaled by the slow-start ramp: weight x ramp permille / 1000.",
            None,
            Gauge,
        ),
        |mut m| {
            for (p, i, b) in backends(snap) {
                let w = p.backends.get(i).map_or(0, |x| x.weight.get());
                let v = u64::from(w) * u64::from(b.state.ramp_permille()) / 1000;
                gauge(&mut m, &Labels::backend(&p.name, &b.key.0), as_i64(v))?;
            }
            Ok(())
        },
    )?;
    family(
        enc,
        (
            "fulcrum_backend_ejections",
            "Times outlier detection ejected the backend.",
            None,
            Counter,
        ),
        |mut m| {
            for (p, _, b) in backends(snap) {
                let n = b.health().ejections_total();
                counter(&mut m, &Labels::backend(&p.name, &b.key.0), n)?;
            }
            Ok(())
        },
    )?;
    family(
        enc,
        (
            "fulcrum_backend_health_checks",
            "Active health checks, by result: pass or fail.",
            None,
            Counter,
        ),
        |mut m| {
            for (p, _, b) in backends(snap) {
                let (pass, fail) = b.stats.checks();
                let l = Labels::backend(&p.name, &b.key.0);
                counter(&mut m, &l.with("result", "pass"), pass)?;
                counter(&mut m, &l.with("result", "fail"), fail)?;
            }
            Ok(())
        },
    )
}
