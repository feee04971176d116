//! The HTTP/3 listeners' families: QUIC handshakes by result, connections open,
//! request streams, and from ended connections packets lost, bytes and the
//! smoothed round-trip time.

use std::fmt;
use std::sync::atomic::Ordering;

use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType::{Counter, Gauge, Histogram};
use prometheus_client::registry::Unit;

use super::{as_i64, counter, family, gauge, Labels};
use crate::state::Snapshot;
use crate::stats::quic::QuicStats;
use crate::stats::BUCKETS;

pub(super) fn encode(enc: &mut DescriptorEncoder<'_>, snap: &Snapshot) -> fmt::Result {
    let mut listeners: Vec<(&str, &QuicStats)> = snap
        .listeners
        .values()
        .filter(|l| snap.config.listeners.get(&l.name).is_some_and(|c| c.http3))
        .map(|l| (l.name.as_str(), &l.traffic.quic))
        .collect();
    if listeners.is_empty() {
        return Ok(());
    }
    listeners.sort_by(|a, b| a.0.cmp(b.0));
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    family(
        enc,
        (
            "fulcrum_quic_handshakes",
            "QUIC handshakes on HTTP/3 listeners, by result: ok or failed.",
            None,
            Counter,
        ),
        |mut m| {
            for (name, q) in &listeners {
                let base = Labels::front("listener", name);
                counter(&mut m, &base.with("result", "ok"), load(&q.handshakes_ok))?;
                counter(
                    &mut m,
                    &base.with("result", "failed"),
                    load(&q.handshakes_failed),
                )?;
            }
            Ok(())
        },
    )?;
    family(
        enc,
        (
            "fulcrum_quic_open_connections",
            "QUIC connections open now.",
            None,
            Gauge,
        ),
        |mut m| {
            for (name, q) in &listeners {
                gauge(&mut m, &Labels::front("listener", name), as_i64(q.open()))?;
            }
            Ok(())
        },
    )?;
    type Read = fn(&QuicStats) -> u64;
    let counters: [(&str, &str, Read); 2] = [
        ("fulcrum_quic_streams", "HTTP/3 request streams.", |q| {
            q.streams.load(Ordering::Relaxed)
        }),
        (
            "fulcrum_quic_lost_packets",
            "Packets lost, counted when their connection ends.",
            |q| q.lost_packets.load(Ordering::Relaxed),
        ),
    ];
    for (name, help, read) in counters {
        family(enc, (name, help, None, Counter), |mut m| {
            for (l, q) in &listeners {
                counter(&mut m, &Labels::front("listener", l), read(q))?;
            }
            Ok(())
        })?;
    }
    family(
        enc,
        (
            "fulcrum_quic_bytes",
            "UDP payload bytes, by direction (in from clients, out to them), counted when their connection ends.",
            None,
            Counter,
        ),
        |mut m| {
            for (name, q) in &listeners {
                let base = Labels::front("listener", name);
                counter(&mut m, &base.with("direction", "in"), load(&q.bytes_in))?;
                counter(&mut m, &base.with("direction", "out"), load(&q.bytes_out))?;
            }
            Ok(())
        },
    )?;
    family(
        enc,
        (
            "fulcrum_quic_rtt",
            "Smoothed round-trip time of each QUIC connection, when it ends.",
            Some(Unit::Seconds),
            Histogram,
        ),
        |mut m| {
            let mut buckets = [(0.0, 0u64); BUCKETS.len() + 1];
            for (name, q) in &listeners {
                let h = q.rtt.histogram();
                for (i, slot) in buckets.iter_mut().enumerate() {
                    *slot = (BUCKETS.get(i).copied().unwrap_or(f64::MAX), h.buckets[i]);
                }
                m.encode_family(&Labels::front("listener", name))?
                    .encode_histogram::<NoLabelSet>(h.sum, h.count, &buckets, None)?;
            }
            Ok(())
        },
    )
}
