//! The udp listeners' families: sessions open, started and evicted, datagrams
//! and bytes each way, and datagrams dropped by reason. Read from each listener's
//! [`Counters`](crate::stats::udp::Counters) at scrape time.

use std::fmt;

use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType::{Counter, Gauge};
use prometheus_client::registry::Unit;

use super::{counter, family, gauge, Labels};
use crate::l4::udp::{Counters, Dropped};
use crate::state::Snapshot;

/// `direction` label values: from clients, then to clients.
const DIRECTIONS: [&str; 2] = ["in", "out"];

pub(super) fn encode(enc: &mut DescriptorEncoder<'_>, snap: &Snapshot) -> fmt::Result {
    let mut listeners: Vec<(&str, &Counters)> = snap
        .udp_listeners
        .values()
        .map(|l| (l.name.as_str(), &*l.counters))
        .collect();
    listeners.sort_by(|a, b| a.0.cmp(b.0));
    family(
        enc,
        (
            "fulcrum_listener_open_sessions",
            "UDP sessions open now (bounded by max_sessions).",
            None,
            Gauge,
        ),
        |mut m| {
            for (name, c) in &listeners {
                let l = Labels::front("listener", name);
                gauge(&mut m, &l, i64::from(c.open()))?;
            }
            Ok(())
        },
    )?;
    type Read = fn(&Counters) -> u64;
    let sessions: [(&str, &str, Read); 2] = [
        ("fulcrum_listener_sessions", "UDP sessions started.", |c| {
            c.sessions().0
        }),
        (
            "fulcrum_listener_session_evictions",
            "UDP sessions ended early to make room for a new client (max_sessions reached).",
            |c| c.sessions().1,
        ),
    ];
    for (name, help, read) in sessions {
        family(enc, (name, help, None, Counter), |mut m| {
            for (listener, c) in &listeners {
                counter(&mut m, &Labels::front("listener", listener), read(c))?;
            }
            Ok(())
        })?;
    }
    for (i, (name, help, unit)) in [
        (
            "fulcrum_listener_datagrams",
            "UDP datagrams, by direction: in from clients, out to clients.",
            None,
        ),
        (
            "fulcrum_listener_datagram",
            "UDP payload bytes, by direction: in from clients, out to clients.",
            Some(Unit::Bytes),
        ),
    ]
    .into_iter()
    .enumerate()
    {
        family(enc, (name, help, unit, Counter), |mut m| {
            for (listener, c) in &listeners {
                let l = Labels::front("listener", listener);
                for (dir, (datagrams, bytes)) in DIRECTIONS.iter().zip(c.datagrams()) {
                    let v = if i == 0 { datagrams } else { bytes };
                    counter(&mut m, &l.with("direction", dir), v)?;
                }
            }
            Ok(())
        })?;
    }
    family(
        enc,
        (
            "fulcrum_listener_dropped_datagrams",
            "UDP datagrams that went nowhere, by reason: refused (from a client, no \
             session could be made), full (from a client, max_sessions and nothing to \
             evict), unsent (either way, a socket could not take it).",
            None,
            Counter,
        ),
        |mut m| {
            for (listener, c) in &listeners {
                let l = Labels::front("listener", listener);
                for (why, n) in Dropped::ALL.iter().zip(c.drops()) {
                    counter(&mut m, &l.with("reason", why.as_str()), n)?;
                }
            }
            Ok(())
        },
    )
}
