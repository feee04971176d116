//! Discovery's families: lookups (and backends file reads) by result, the members
//! each source gives, and the age of its last good answer, by pool and source.

use std::fmt;
use std::sync::atomic::Ordering;

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType::{Counter, Gauge};
use prometheus_client::registry::Unit;

use super::{counter, family, gauge, Labels};
use crate::state::{Registry, EVENTS};

fn labels<'a>(pool: &'a str, source: &'a str) -> Labels<'a> {
    Labels {
        front: Some(("source", source)),
        ..Labels::pool(pool)
    }
}

pub(super) fn encode(enc: &mut DescriptorEncoder<'_>, reg: &Registry) -> fmt::Result {
    let all = reg.discovered.all_stats();
    if all.is_empty() {
        return Ok(());
    }
    family(
        enc,
        (
            "fulcrum_discovery_lookups",
            "DNS lookups and backends file reads, by result: same, changed, empty_held (empty, within empty_grace), empty, failed.",
            None,
            Counter,
        ),
        |mut m| {
            for ((pool, source), s) in &all {
                for (event, n) in EVENTS.iter().zip(&s.results) {
                    let l = labels(pool, source).with("result", event.as_str());
                    counter(&mut m, &l, n.load(Ordering::Relaxed))?;
                }
            }
            Ok(())
        },
    )?;
    family(
        enc,
        (
            "fulcrum_discovery_members",
            "Members the source gives now.",
            None,
            Gauge,
        ),
        |mut m| {
            for ((pool, source), s) in &all {
                let n = i64::from(s.members.load(Ordering::Relaxed));
                gauge(&mut m, &labels(pool, source), n)?;
            }
            Ok(())
        },
    )?;
    let now = crate::clock::now_ns();
    family(
        enc,
        (
            "fulcrum_discovery_answer_age",
            "Seconds since the source last answered (a failing resolver keeps its last good answer).",
            Some(Unit::Seconds),
            Gauge,
        ),
        |mut m| {
            for ((pool, source), s) in &all {
                let at = s.answered_ns.load(Ordering::Relaxed);
                let age = now.saturating_sub(at) as f64 / 1e9;
                ConstGauge::new(age).encode(m.encode_family(&labels(pool, source))?)?;
            }
            Ok(())
        },
    )
}
