//! Tests of a pool's `retries` and circuit limits (`max_connections`,
//! `max_pending`, `max_requests`).

use super::tests::{errors, parse_ok, BASE};
use super::{Duration, Percent, RetriesConfig, RetryOn};

fn with(pool_keys: &str) -> String {
    format!("{BASE}{pool_keys}\n")
}

#[test]
fn retries_and_limits_are_off_by_default() {
    let c = parse_ok(BASE);
    let p = &c.pools["api"];
    assert_eq!(p.retries, None);
    assert_eq!(
        (p.max_connections, p.max_pending, p.max_requests),
        (None, None, None)
    );
    let c = parse_ok(&with("retries = {}"));
    let r = c.pools["api"].retries.as_ref().unwrap();
    assert_eq!(*r, RetriesConfig::default());
    assert_eq!(r.attempts, 2);
    assert_eq!(
        r.on,
        [
            RetryOn::ConnectFailure,
            RetryOn::Reset,
            RetryOn::Timeout,
            RetryOn::Status(503)
        ]
    );
    assert_eq!(
        (r.per_try_timeout, r.budget, r.min_retries_per_sec),
        (None, Percent(20), 10)
    );
    assert_eq!(
        (r.backoff, r.max_backoff),
        (Duration::from_millis(25), Duration::from_millis(250))
    );
}

#[test]
fn every_retry_and_limit_key_parses() {
    let c = parse_ok(&with(
        "max_connections = 200\nmax_pending = 50\nmax_requests = 1000\n[pools.api.retries]\n\
         attempts = 10\non = [\"reset\", \"5xx\", \"502\"]\nper_try_timeout = \"60s\"\n\
         budget = \"0%\"\nmin_retries_per_sec = 1\nbackoff = \"10ms\"\nmax_backoff = \"10ms\"",
    ));
    let p = &c.pools["api"];
    assert_eq!(
        (p.max_connections, p.max_pending, p.max_requests),
        (Some(200), Some(50), Some(1000))
    );
    let r = p.retries.as_ref().unwrap();
    assert_eq!(r.attempts, 10);
    assert_eq!(
        r.on,
        [RetryOn::Reset, RetryOn::Any5xx, RetryOn::Status(502)]
    );
    assert_eq!(r.per_try_timeout, Some(Duration::from_secs(60)));
    assert_eq!((r.budget, r.min_retries_per_sec), (Percent(0), 1));
    let c = parse_ok(&with(
        "max_requests = 1\nretries = { budget = 100, on = [503] }",
    ));
    let r = c.pools["api"].retries.as_ref().unwrap();
    assert_eq!(
        (r.budget, r.on.as_slice()),
        (Percent(100), &[RetryOn::Status(503)][..])
    );
}

#[test]
fn bad_retry_values_are_refused() {
    let e = errors(&with(
        "[pools.api.retries]\nattempts = 0\non = []\nper_try_timeout = \"0s\"\nbackoff = \"0s\"",
    ));
    assert_eq!(
        e,
        [
            "f.toml:10: pools.api.retries.attempts: must be between 1 and 10",
            "f.toml:11: pools.api.retries.on: must list at least one retry condition",
            "f.toml:12: pools.api.retries.per_try_timeout: must be greater than 0",
            "f.toml:13: pools.api.retries.backoff: must be greater than 0",
        ]
    );
    assert_eq!(
        errors(&with(
            "upstream_timeout = \"10s\"\nretries = { attempts = 11, on = [\"reset\", \"503\", \"reset\"], \
             per_try_timeout = \"11s\", max_backoff = \"20ms\" }"
        )),
        [
            "f.toml:10: pools.api.retries.attempts: must be between 1 and 10",
            "f.toml:10: pools.api.retries.on[2]: \"reset\" is listed twice",
            "f.toml:10: pools.api.retries.per_try_timeout: must not exceed the pool's \
             upstream_timeout (10s)",
            "f.toml:10: pools.api.retries.max_backoff: must not be less than backoff (25ms)",
        ]
    );
    assert_eq!(
        errors(&with(
            "retries = { budget = \"0%\", min_retries_per_sec = 0 }"
        )),
        [
            "f.toml:9: pools.api.retries.budget: with min_retries_per_sec = 0 too, no retry is \
          ever allowed: remove retries instead"
        ]
    );
}

#[test]
fn every_bad_key_inside_retries_is_reported_on_its_line() {
    let e = errors(&with(
        "[pools.api.retries]\nattempts = \"2\"\non = [\"reset\", \"404\"]\nbudget = \"120%\"\n\
         backof = \"1s\"\nmax_backoff = \"1ms\"",
    ));
    assert_eq!(e.len(), 5, "{e:#?}");
    assert!(
        e[0].starts_with("f.toml:10: pools.api.retries.attempts: expected a non-negative integer")
    );
    assert!(
        e[1].starts_with("f.toml:11: pools.api.retries.on[1]: unknown retry condition \"404\""),
        "{e:#?}"
    );
    assert_eq!(
        e[2],
        "f.toml:12: pools.api.retries.budget: invalid percentage \"120%\": must be from 0% to 100%"
    );
    assert!(e[3].starts_with("f.toml:13: pools.api.retries.backof: unknown key"));
    // Siblings of the bad keys are still checked.
    assert_eq!(
        e[4],
        "f.toml:14: pools.api.retries.max_backoff: must not be less than backoff (25ms)"
    );
}

#[test]
fn bad_limits_are_refused() {
    let zero = "must be at least 1 (0 would refuse every request); leave it unset for no limit";
    assert_eq!(
        errors(&with(
            "max_connections = 0\nmax_pending = 0\nmax_requests = 0"
        )),
        [
            format!("f.toml:9: pools.api.max_connections: {zero}"),
            format!("f.toml:10: pools.api.max_pending: {zero}"),
            format!("f.toml:11: pools.api.max_requests: {zero}"),
        ]
    );
    assert_eq!(
        errors(&with("max_pending = 10")),
        [
            "f.toml:9: pools.api.max_pending: max_pending needs max_connections: requests wait \
          only when connections run out"
        ]
    );
    // A max_connections lost to a type error does not make max_pending wrong too.
    let e = errors(&with("max_connections = \"100\"\nmax_pending = 10"));
    assert_eq!(e.len(), 1, "{e:#?}");
    assert!(
        e[0].starts_with("f.toml:9: pools.api.max_connections: expected a non-negative integer")
    );
    let e = errors(&with("max_requests = -1"));
    assert_eq!(
        e,
        ["f.toml:9: pools.api.max_requests: must not be negative (found -1)"]
    );
}
