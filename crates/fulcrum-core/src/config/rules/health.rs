//! Rules for a pool's backend health: `health` (active checks), `outlier` (passive
//! detection), `slow_start`, `drain_timeout` and `panic_threshold`.
//!
//! A key that did not deserialize stands at its default; a rule comparing two keys
//! skips when either is such a stand-in, since its error is already reported.

use super::predicates::is_token;
use super::Checker;
use crate::config::locate::KeyPath;
use crate::config::{address, CheckKind, HealthCheckConfig, OutlierConfig, PoolConfig};

/// Checks the health keys of one pool.
pub(super) fn check(c: &mut Checker<'_>, path: &KeyPath, pool: &PoolConfig) {
    if pool.slow_start.is_some_and(|d| d.is_zero()) {
        c.report(path.key("slow_start"), "must be greater than 0");
    }
    if pool.panic_threshold > 100 {
        c.report(path.key("panic_threshold"), "must be at most 100 (percent)");
    }
    if let Some(health) = &pool.health {
        check_health(c, &path.key("health"), health);
    }
    if let Some(outlier) = &pool.outlier {
        check_outlier(c, &path.key("outlier"), outlier);
    }
}

fn check_health(c: &mut Checker<'_>, path: &KeyPath, h: &HealthCheckConfig) {
    let lost = |c: &Checker<'_>, name: &str| c.gaps.covers(&path.key(name));
    if h.grpc.is_some() && !matches!(h.kind, CheckKind::Http | CheckKind::Grpc) && !lost(c, "type")
    {
        c.report(
            path.key("grpc"),
            "a grpc service makes a grpc check: leave type out or set type = \"grpc\"",
        );
    }
    if h.effective_kind() == CheckKind::Http {
        check_request(c, path, h);
    } else if !lost(c, "type") {
        // Each only where a probe reads it, so a wrong `type` cannot leave a `path`
        // or `expect` silently ignored.
        let defaults = HealthCheckConfig::default();
        for (name, set) in [
            ("path", h.path != defaults.path),
            ("method", h.method != defaults.method),
            ("host", h.host.is_some()),
            ("expect", h.expect != defaults.expect),
            ("body", h.body.is_some()),
        ] {
            if set {
                c.report(path.key(name), "only http checks send a request");
            }
        }
    }
    if h.interval.is_zero() {
        c.report(path.key("interval"), "must be greater than 0");
    }
    let interval = (!h.interval.is_zero() && !lost(c, "interval")).then_some(h.interval);
    if h.timeout.is_zero() {
        c.report(path.key("timeout"), "must be greater than 0");
    } else if let Some(interval) = interval.filter(|i| h.timeout > *i) {
        c.report(
            path.key("timeout"),
            format!("must not exceed interval ({interval})"),
        );
    }
    if let (Some(jitter), Some(interval)) = (h.jitter, interval) {
        if jitter > interval {
            c.report(
                path.key("jitter"),
                format!("must not exceed interval ({interval})"),
            );
        }
    }
    for (name, value) in [("rise", h.rise), ("fall", h.fall)] {
        if value == 0 {
            c.report(path.key(name), "must be at least 1");
        }
    }
}

/// The request of an `http` check.
fn check_request(c: &mut Checker<'_>, path: &KeyPath, h: &HealthCheckConfig) {
    if !h.path.starts_with('/') {
        c.report(path.key("path"), "must start with \"/\"");
    } else if h
        .path
        .chars()
        .any(|ch| ch.is_whitespace() || ch.is_control())
    {
        c.report(
            path.key("path"),
            "must not contain spaces or control characters",
        );
    }
    if !is_token(&h.method) || h.method.bytes().any(|b| b.is_ascii_lowercase()) {
        c.report(
            path.key("method"),
            format!(
                "invalid method {:?}: expected an uppercase token such as \"GET\"",
                h.method
            ),
        );
    }
    if let Some(host) = &h.host {
        if let Err(why) = host_header(host) {
            c.report(path.key("host"), why);
        }
    }
    if h.expect.is_empty() {
        c.report(path.key("expect"), "must list at least one status");
    }
    if h.body.as_deref() == Some("") {
        c.report(
            path.key("body"),
            "must not be empty (leave it unset to check the status only)",
        );
    }
}

/// A Host header value: `name`, `name:port`, an IP address, or either with a port.
fn host_header(host: &str) -> Result<(), String> {
    if host.contains('*') {
        return Err(format!(
            "invalid host {host:?}: a Host header has no wildcard"
        ));
    }
    if address::backend(host).is_ok() {
        return Ok(()); // with a port
    }
    address::route_host(host)
}

fn check_outlier(c: &mut Checker<'_>, path: &KeyPath, o: &OutlierConfig) {
    let lost = |c: &Checker<'_>, name: &str| c.gaps.covers(&path.key(name));
    for (name, value) in [
        ("failure_percentage", o.failure_percentage),
        ("max_ejection_percent", o.max_ejection_percent),
    ] {
        if value > 100 {
            c.report(path.key(name), "must be at most 100 (percent)");
        }
    }
    let window = o.window.get();
    if window.subsec_nanos() != 0 || !(1..=3600).contains(&window.as_secs()) {
        c.report(path.key("window"), "must be whole seconds from 1s to 1h");
    }
    if o.min_requests == 0 {
        c.report(path.key("min_requests"), "must be at least 1");
    }
    if o.max_latency.is_some_and(|d| d.is_zero()) {
        c.report(path.key("max_latency"), "must be greater than 0");
    }
    if o.base_ejection_time.is_zero() {
        c.report(path.key("base_ejection_time"), "must be greater than 0");
    } else if o.max_ejection_time < o.base_ejection_time
        && !lost(c, "base_ejection_time")
        && !lost(c, "max_ejection_time")
    {
        c.report(
            path.key("max_ejection_time"),
            format!(
                "must not be less than base_ejection_time ({})",
                o.base_ejection_time
            ),
        );
    }
    if o.max_ejection_percent == 0 {
        c.report(
            path.key("max_ejection_percent"),
            "0 would eject nothing: remove outlier instead",
        );
    }
    let detectors = [
        ("consecutive_5xx", o.consecutive_5xx != 0),
        (
            "consecutive_gateway_failures",
            o.consecutive_gateway_failures != 0,
        ),
        ("failure_percentage", o.failure_percentage != 0),
        ("max_latency", o.max_latency.is_some()),
    ];
    let off = detectors.iter().all(|&(name, on)| !on && !lost(c, name));
    if off {
        c.report(
            path.clone(),
            "every detector is off (consecutive_5xx, consecutive_gateway_failures and \
             failure_percentage are 0, max_latency is unset): remove outlier instead",
        );
    }
}
