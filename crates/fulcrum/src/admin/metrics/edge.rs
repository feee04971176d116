//! The rate limiters' families: requests allowed and limited per limiter, keys held
//! in this process's table, requests decided without Redis, and the Redis calls of
//! fleet limiters with their errors and round-trip time.

use std::fmt;
use std::sync::atomic::Ordering;

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::MetricType::{Counter, Gauge};
use prometheus_client::registry::Unit;

use super::{counter, family, gauge, Labels};
use crate::state::Snapshot;

pub(super) fn encode(enc: &mut DescriptorEncoder<'_>, snap: &Snapshot) -> fmt::Result {
    let limiters = &snap.edge.limiters;
    if limiters.is_empty() {
        return Ok(());
    }
    family(
        enc,
        (
            "fulcrum_rate_limit_requests",
            "Requests a rate limiter counted, by result: allowed or limited (429).",
            None,
            Counter,
        ),
        |mut m| {
            for l in limiters {
                let labels = Labels::front("limiter", &l.name);
                counter(
                    &mut m,
                    &labels.with("result", "allowed"),
                    l.allowed.load(Ordering::Relaxed),
                )?;
                counter(
                    &mut m,
                    &labels.with("result", "limited"),
                    l.limited.load(Ordering::Relaxed),
                )?;
            }
            Ok(())
        },
    )?;
    family(
        enc,
        (
            "fulcrum_rate_limit_keys",
            "Keys a limiter holds in this process (bounded by max_keys; leases for a fleet limiter).",
            None,
            Gauge,
        ),
        |mut m| {
            for l in limiters {
                let n = i64::try_from(l.keys()).unwrap_or(i64::MAX);
                gauge(&mut m, &Labels::front("limiter", &l.name), n)?;
            }
            Ok(())
        },
    )?;
    family(
        enc,
        (
            "fulcrum_rate_limit_redis_failed",
            "Requests a fleet limiter decided by on_redis_error because Redis failed or was slow.",
            None,
            Counter,
        ),
        |mut m| {
            for l in limiters.iter().filter(|l| l.is_fleet()) {
                let n = l.redis_failed.load(Ordering::Relaxed);
                counter(&mut m, &Labels::front("limiter", &l.name), n)?;
            }
            Ok(())
        },
    )?;
    let Some(redis) = &snap.edge.redis else {
        return Ok(());
    };
    let s = &redis.stats;
    let calls = s.calls.load(Ordering::Relaxed);
    family(
        enc,
        (
            "fulcrum_redis_calls",
            "Lease calls Redis answered.",
            None,
            Counter,
        ),
        |m| ConstCounter::new(calls).encode(m),
    )?;
    family(
        enc,
        (
            "fulcrum_redis_errors",
            "Lease calls that failed: an error, no answer within timeout, or a full queue.",
            None,
            Counter,
        ),
        |m| ConstCounter::new(s.errors.load(Ordering::Relaxed)).encode(m),
    )?;
    let secs = s.latency_us.load(Ordering::Relaxed) as f64 / 1e6;
    family(
        enc,
        (
            "fulcrum_redis_call_time",
            "Total round-trip time of answered lease calls (divide by fulcrum_redis_calls for the mean).",
            Some(Unit::Seconds),
            Counter,
        ),
        |m| ConstCounter::new(secs).encode(m),
    )
}
