//! The listener and route families: requests by status class and client
//! connections, read from each one's sharded `Traffic` at scrape time.

use std::fmt;

use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;

use super::{as_i64, counter, family, gauge, Labels};
use crate::state::Snapshot;
use crate::stats::{BUCKETS, CLASSES};

/// Listeners (connections, requests by class), routes (requests by class) and
/// pools' upstream connect times.
pub(super) fn encode_traffic(enc: &mut DescriptorEncoder<'_>, snap: &Snapshot) -> fmt::Result {
    use MetricType::{Counter, Gauge};
    // HTTP and TCP listeners alike: a TCP connection counts as one request.
    let http = snap
        .listeners
        .values()
        .map(|l| (l.name.as_str(), &*l.traffic));
    let tcp = snap
        .tcp_listeners
        .values()
        .map(|l| (l.name.as_str(), &*l.traffic));
    let mut listeners: Vec<_> = http.chain(tcp).collect();
    listeners.sort_by(|a, b| a.0.cmp(b.0));
    family(
        enc,
        (
            "fulcrum_listener_open_connections",
            "Client connections open now.",
            None,
            Gauge,
        ),
        |mut m| {
            for (name, traffic) in &listeners {
                let (_, open) = traffic.connections();
                gauge(&mut m, &Labels::front("listener", name), as_i64(open))?;
            }
            Ok(())
        },
    )?;
    family(
        enc,
        (
            "fulcrum_listener_connections",
            "Client connections accepted.",
            None,
            Counter,
        ),
        |mut m| {
            for (name, traffic) in &listeners {
                let (accepted, _) = traffic.connections();
                counter(&mut m, &Labels::front("listener", name), accepted)?;
            }
            Ok(())
        },
    )?;
    family(
        enc,
        (
            "fulcrum_listener_refused_connections",
            "Client connections closed unserved: over max_connections, or for their PROXY header.",
            None,
            Counter,
        ),
        |mut m| {
            for (name, traffic) in &listeners {
                let base = Labels::front("listener", name);
                let (over_cap, proxy) = traffic.admission.refused();
                counter(&mut m, &base.with("reason", "max_connections"), over_cap)?;
                counter(&mut m, &base.with("reason", "proxy_protocol"), proxy)?;
                let access = traffic.admission.refused_access();
                counter(&mut m, &base.with("reason", "access"), access)?;
                let per_client = traffic
                    .admission
                    .per_client
                    .load(std::sync::atomic::Ordering::Relaxed);
                counter(
                    &mut m,
                    &base.with("reason", "max_connections_per_client"),
                    per_client,
                )?;
            }
            Ok(())
        },
    )?;
    family(
        enc,
        (
            "fulcrum_listener_requests",
            "Requests answered on the listener, by status class (errors Fulcrum answered included).",
            None,
            Counter,
        ),
        |mut m| {
            for (name, traffic) in &listeners {
                let base = Labels::front("listener", name);
                for (class, n) in CLASSES.iter().zip(traffic.requests()) {
                    counter(&mut m, &base.with("class", class), n)?;
                }
            }
            Ok(())
        },
    )?;
    // A route is labelled by its `name`, or by its index in [[routes]] when unnamed.
    let indices: Vec<String> = (0..snap.routes.len())
        .map(|i| {
            snap.config
                .routes
                .get(i)
                .and_then(|r| r.name.clone())
                .unwrap_or_else(|| i.to_string())
        })
        .collect();
    family(
        enc,
        (
            "fulcrum_route_requests",
            "Requests matched by a route (its name, or its index in [[routes]]), by status class.",
            None,
            Counter,
        ),
        |mut m| {
            for (i, t) in snap.routes.iter().enumerate() {
                let pool = snap.config.routes.get(i).map(|r| r.pool.as_str());
                let base = Labels {
                    pool,
                    ..Labels::front("route", indices.get(i).map_or("", String::as_str))
                };
                for (class, n) in CLASSES.iter().zip(t.requests()) {
                    counter(&mut m, &base.with("class", class), n)?;
                }
            }
            Ok(())
        },
    )?;
    pool_timings(
        enc,
        "fulcrum_pool_connect_duration",
        "Time to open a new upstream connection (TCP, and the h2c handshake).",
        snap,
        |p| &p.state.connect,
    )?;
    pool_timings(
        enc,
        "fulcrum_pool_stream_duration",
        "Lives of upgraded (WebSocket) and layer-4 connections, once they end.",
        snap,
        |p| &p.state.streams,
    )
}

/// One histogram family in seconds, one series per pool, from `timings` of each.
fn pool_timings(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    snap: &Snapshot,
    timings: impl Fn(&crate::state::Pool) -> &crate::stats::Timings,
) -> fmt::Result {
    family(
        enc,
        (name, help, Some(Unit::Seconds), MetricType::Histogram),
        |mut m| {
            let mut buckets = [(0.0, 0u64); BUCKETS.len() + 1];
            for p in &snap.pools {
                let h = timings(p).histogram();
                for (i, slot) in buckets.iter_mut().enumerate() {
                    *slot = (BUCKETS.get(i).copied().unwrap_or(f64::MAX), h.buckets[i]);
                }
                m.encode_family(&Labels::pool(&p.name))?
                    .encode_histogram::<NoLabelSet>(h.sum, h.count, &buckets, None)?;
            }
            Ok(())
        },
    )
}
