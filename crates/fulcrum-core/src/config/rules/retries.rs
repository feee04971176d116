//! Rules for what a pool does when it fails or fills: `retries` and the circuit
//! limits `max_connections`, `max_pending` and `max_requests`.

use super::Checker;
use crate::config::locate::KeyPath;
use crate::config::{PoolConfig, RetriesConfig};

/// Checks the retry and circuit-limit keys of one pool.
pub(super) fn check(c: &mut Checker<'_>, path: &KeyPath, pool: &PoolConfig) {
    for (name, value) in [
        ("max_connections", pool.max_connections),
        ("max_pending", pool.max_pending),
        ("max_requests", pool.max_requests),
    ] {
        if value == Some(0) {
            c.report(
                path.key(name),
                "must be at least 1 (0 would refuse every request); leave it unset for no limit",
            );
        }
    }
    if pool.max_pending.is_some()
        && pool.max_connections.is_none()
        && !c.gaps.covers(&path.key("max_connections"))
    {
        c.report(
            path.key("max_pending"),
            "max_pending needs max_connections: requests wait only when connections run out",
        );
    }
    if let Some(retries) = &pool.retries {
        let upstream = (!c.gaps.covers(&path.key("upstream_timeout"))
            && !pool.upstream_timeout.is_zero())
        .then_some(pool.upstream_timeout);
        check_retries(c, &path.key("retries"), retries, upstream);
    }
}

/// `upstream_timeout` is the pool's, when known and valid.
fn check_retries(
    c: &mut Checker<'_>,
    path: &KeyPath,
    r: &RetriesConfig,
    upstream_timeout: Option<crate::config::Duration>,
) {
    let lost = |c: &Checker<'_>, name: &str| c.gaps.covers(&path.key(name));
    if !(1..=10).contains(&r.attempts) {
        c.report(path.key("attempts"), "must be between 1 and 10");
    }
    if r.on.is_empty() {
        c.report(path.key("on"), "must list at least one retry condition");
    }
    for (i, on) in r.on.iter().enumerate() {
        if r.on[..i].contains(on) {
            c.report(path.key("on").index(i), format!("\"{on}\" is listed twice"));
        }
    }
    match r.per_try_timeout {
        Some(t) if t.is_zero() => c.report(path.key("per_try_timeout"), "must be greater than 0"),
        // The try would have failed on upstream_timeout first.
        Some(t) if upstream_timeout.is_some_and(|u| t > u) => c.report(
            path.key("per_try_timeout"),
            format!(
                "must not exceed the pool's upstream_timeout ({})",
                upstream_timeout.unwrap_or_default()
            ),
        ),
        _ => {}
    }
    if r.budget.0 == 0 && r.min_retries_per_sec == 0 && !lost(c, "min_retries_per_sec") {
        c.report(
            path.key("budget"),
            "with min_retries_per_sec = 0 too, no retry is ever allowed: remove retries instead",
        );
    }
    if r.backoff.is_zero() {
        c.report(path.key("backoff"), "must be greater than 0");
    } else if r.max_backoff < r.backoff && !lost(c, "backoff") && !lost(c, "max_backoff") {
        c.report(
            path.key("max_backoff"),
            format!("must not be less than backoff ({})", r.backoff),
        );
    }
}
