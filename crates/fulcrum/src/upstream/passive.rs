//! What a backend's answers (or failures) teach the balancers and its health: the
//! response time for peak-EWMA, the status and failures for outlier detection.

use std::time::Duration;

use fulcrum_core::balance::Backend;
use fulcrum_core::health::{may_eject, Outcome};

use crate::access_log::Entry;
use crate::clock;
use crate::state::{Member, Pool};
use crate::stats::ErrorKind;
use crate::worker::Worker;

/// Feeds one request outcome to a backend's passive outlier detection, ejecting it
/// (at once, for every worker) when a detector fires and the pool guard allows.
pub fn outcome(w: &Worker, pool: &Pool, m: &Member, outcome: Outcome) {
    if !m.outlier_enabled() {
        return;
    }
    let now = clock::now();
    let now_ns = clock::now_ns();
    let ejection = m.health().record(outcome, now, || {
        let ejected = pool.members.iter().filter(|o| o.is_ejected(now_ns)).count();
        let percent = pool.health.outlier.map_or(0, |o| o.max_ejection_percent);
        may_eject(ejected, pool.members.len(), percent)
    });
    if let Some(ej) = ejection {
        m.state.set_available(false);
        let until = now_ns.saturating_add(ej.until.saturating_sub(now).as_nanos() as u64);
        m.set_ejected_until(until);
        tracing::warn!(
            pool = %pool.name,
            backend = %m.key.0,
            reason = ?ej.reason,
            count = ej.count,
            seconds = ej.until.saturating_sub(now).as_secs_f64(),
            "backend ejected"
        );
        w.registry.changed.notify_one();
    }
}

/// Records a backend's response head: its time for peak-EWMA balancing and the
/// access log, and its status for outlier detection.
pub fn observed(
    w: &Worker,
    pool: &Pool,
    backend: &Backend,
    member: Option<&Member>,
    status: u16,
    rtt: Duration,
    e: &mut Entry<'_>,
) {
    e.upstream = Some(rtt);
    let ns = u64::try_from(rtt.as_nanos()).unwrap_or(u64::MAX);
    backend.state.observe_latency(ns, w.now_ns());
    if let Some(m) = member {
        if status >= 500 {
            m.stats.error(ErrorKind::Status5xx);
        }
        outcome(w, pool, m, Outcome::response(status, rtt));
    }
}

/// Counts a failed try against its backend: the error by kind, and a gateway
/// failure for outlier detection.
pub fn failed(w: &Worker, pool: &Pool, m: &Member, kind: ErrorKind) {
    m.stats.error(kind);
    outcome(w, pool, m, Outcome::gateway_failure());
}
