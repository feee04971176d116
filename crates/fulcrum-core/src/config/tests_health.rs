//! Tests of a pool's health keys: `health`, `outlier`, `slow_start`,
//! `drain_timeout` and `panic_threshold`.

use super::tests::{errors, parse_ok, BASE};
use super::{CheckKind, Duration, HealthCheckConfig, OutlierConfig, StatusRange};

fn with(pool_keys: &str) -> String {
    format!("{BASE}{pool_keys}\n")
}

#[test]
fn health_is_off_by_default_and_defaults_apply() {
    let c = parse_ok(BASE);
    let p = &c.pools["api"];
    assert_eq!((&p.health, &p.outlier, p.slow_start), (&None, &None, None));
    assert_eq!(p.drain_timeout, Duration::from_secs(30));
    assert_eq!(p.panic_threshold, 50);
    let c = parse_ok(&with("health = {}\noutlier = {}"));
    let h = c.pools["api"].health.as_ref().unwrap();
    assert_eq!(*h, HealthCheckConfig::default());
    assert_eq!(h.kind, CheckKind::Http);
    assert_eq!((h.path.as_str(), h.method.as_str()), ("/", "GET"));
    assert_eq!(h.expect, [StatusRange { from: 200, to: 399 }]);
    assert_eq!(
        (h.interval, h.timeout, h.jitter),
        (Duration::from_secs(5), Duration::from_secs(2), None)
    );
    assert_eq!((h.rise, h.fall), (2, 3));
    let o = c.pools["api"].outlier.as_ref().unwrap();
    assert_eq!(*o, OutlierConfig::default());
    assert_eq!((o.consecutive_5xx, o.consecutive_gateway_failures), (5, 5));
    assert_eq!((o.failure_percentage, o.min_requests), (85, 50));
    assert_eq!(o.window, Duration::from_secs(10));
    assert_eq!(
        (o.base_ejection_time, o.max_ejection_time),
        (Duration::from_secs(30), Duration::from_secs(300))
    );
    assert_eq!((o.max_latency, o.max_ejection_percent), (None, 10));
}

#[test]
fn every_health_key_parses() {
    let c = parse_ok(&with(
        "slow_start = \"30s\"\ndrain_timeout = \"1m\"\npanic_threshold = 0\n\
         [pools.api.health]\ntype = \"http\"\npath = \"/healthz?full=1\"\nmethod = \"HEAD\"\n\
         host = \"api.internal:8080\"\nexpect = [200, \"204-206\", \"3xx\"]\nbody = \"ok\"\n\
         interval = \"10s\"\ntimeout = \"10s\"\njitter = \"0s\"\nrise = 1\nfall = 1\n\
         [pools.api.outlier]\nconsecutive_5xx = 0\nconsecutive_gateway_failures = 3\n\
         failure_percentage = 100\nwindow = \"1h\"\nmin_requests = 1\nmax_latency = \"750ms\"\n\
         base_ejection_time = \"10s\"\nmax_ejection_time = \"10s\"\nmax_ejection_percent = 100",
    ));
    let p = &c.pools["api"];
    assert_eq!(p.slow_start, Some(Duration::from_secs(30)));
    assert_eq!(
        (p.drain_timeout, p.panic_threshold),
        (Duration::from_secs(60), 0)
    );
    let h = p.health.as_ref().unwrap();
    assert_eq!(h.path, "/healthz?full=1");
    assert_eq!(h.host.as_deref(), Some("api.internal:8080"));
    assert_eq!(
        h.expect,
        [
            StatusRange { from: 200, to: 200 },
            StatusRange { from: 204, to: 206 },
            StatusRange { from: 300, to: 399 }
        ]
    );
    assert_eq!(
        (h.body.as_deref(), h.jitter),
        (Some("ok"), Some(Duration::from_secs(0)))
    );
    let o = p.outlier.as_ref().unwrap();
    assert_eq!((o.consecutive_5xx, o.max_ejection_percent), (0, 100));
    assert_eq!(o.max_latency, Some(Duration::from_millis(750)));
    for kind in ["tcp", "tls"] {
        let c = parse_ok(&with(&format!(
            "health = {{ type = \"{kind}\", rise = 3 }}"
        )));
        assert_ne!(
            c.pools["api"].health.as_ref().unwrap().kind,
            CheckKind::Http
        );
    }
}

#[test]
fn bad_health_values_are_refused() {
    let e = errors(&with(
        "[pools.api.health]\npath = \"healthz\"\nmethod = \"get\"\nhost = \"*.example.com\"\n\
         expect = []\nbody = \"\"\ninterval = \"0s\"\ntimeout = \"0s\"\nrise = 0\nfall = 0",
    ));
    assert_eq!(
        e,
        [
            "f.toml:10: pools.api.health.path: must start with \"/\"",
            "f.toml:11: pools.api.health.method: invalid method \"get\": \
             expected an uppercase token such as \"GET\"",
            "f.toml:12: pools.api.health.host: invalid host \"*.example.com\": \
             a Host header has no wildcard",
            "f.toml:13: pools.api.health.expect: must list at least one status",
            "f.toml:14: pools.api.health.body: must not be empty \
             (leave it unset to check the status only)",
            "f.toml:15: pools.api.health.interval: must be greater than 0",
            "f.toml:16: pools.api.health.timeout: must be greater than 0",
            "f.toml:17: pools.api.health.rise: must be at least 1",
            "f.toml:18: pools.api.health.fall: must be at least 1",
        ]
    );
    let e = errors(&with(
        "health = { path = \"/a b\", method = \"GE T\", host = \"a b\" }",
    ));
    assert_eq!(e.len(), 3, "{e:#?}");
    assert!(e[0].ends_with("health.path: must not contain spaces or control characters"));
    assert!(e[1].contains("health.method: invalid method \"GE T\""));
    assert!(e[2].contains("health.host: invalid host \"a b\""));
}

#[test]
fn health_timeout_and_jitter_fit_the_interval() {
    assert_eq!(
        errors(&with("health = { timeout = \"6s\", jitter = \"5001ms\" }")),
        [
            "f.toml:9: pools.api.health.timeout: must not exceed interval (5s)",
            "f.toml:9: pools.api.health.jitter: must not exceed interval (5s)",
        ]
    );
    assert_eq!(
        errors(&with(
            "health = { interval = \"1s\", timeout = \"1s500ms\" }"
        )),
        ["f.toml:9: pools.api.health.timeout: must not exceed interval (1s)"]
    );
    // A zero or lost interval is reported alone, not again through timeout.
    assert_eq!(
        errors(&with("health = { interval = \"0s\", jitter = \"1s\" }")),
        ["f.toml:9: pools.api.health.interval: must be greater than 0"]
    );
    let e = errors(&with("health = { interval = 1, timeout = \"9s\" }"));
    assert_eq!(e.len(), 1, "{e:#?}");
    assert!(e[0].starts_with("f.toml:9: pools.api.health.interval: expected a duration string"));
}

#[test]
fn http_keys_are_refused_on_other_checks() {
    assert_eq!(
        errors(&with(
            "health = { type = \"tcp\", path = \"/x\", method = \"HEAD\", host = \"a\", \
             expect = [200], body = \"ok\" }"
        )),
        [
            "f.toml:9: pools.api.health.path: only http checks send a request",
            "f.toml:9: pools.api.health.method: only http checks send a request",
            "f.toml:9: pools.api.health.host: only http checks send a request",
            "f.toml:9: pools.api.health.expect: only http checks send a request",
            "f.toml:9: pools.api.health.body: only http checks send a request",
        ]
    );
}

#[test]
fn every_bad_key_inside_health_is_reported_on_its_line() {
    let e = errors(&with(
        "[pools.api.health]\ntype = \"udp\"\ninterval = 5\ntimout = \"1s\"\nexpect = [600]\n\
         rise = -1\npath = \"x\"",
    ));
    assert_eq!(e.len(), 6, "{e:#?}");
    assert_eq!(
        e[0],
        "f.toml:10: pools.api.health.type: unknown value \"udp\" \
         (expected one of: http, tcp, tls, grpc)"
    );
    assert!(e[1].starts_with("f.toml:11: pools.api.health.interval: expected a duration"));
    assert!(e[2].starts_with("f.toml:12: pools.api.health.timout: unknown key (expected one of: type, path, method, host, expect, body, interval, timeout, jitter, rise, fall, grpc)"), "{e:#?}");
    assert_eq!(
        e[3],
        "f.toml:13: pools.api.health.expect[0]: invalid status 600: must be between 100 and 599"
    );
    assert_eq!(
        e[4],
        "f.toml:14: pools.api.health.rise: must not be negative (found -1)"
    );
    // The rest of the table is still checked.
    assert_eq!(
        e[5],
        "f.toml:15: pools.api.health.path: must start with \"/\""
    );
    // Inline, and with the pool's other keys still checked beside it.
    let e = errors(&with(
        "health = { interval = \"5\", fall = \"3\" }\nconnect_timeout = \"0s\"",
    ));
    assert_eq!(e.len(), 3, "{e:#?}");
    assert!(e[0].starts_with("f.toml:9: pools.api.health.fall: expected a non-negative integer"));
    assert!(e[1].starts_with("f.toml:9: pools.api.health.interval: invalid duration"));
    assert_eq!(
        e[2],
        "f.toml:10: pools.api.connect_timeout: must be greater than 0"
    );
    let e = errors(&with("health = \"http\""));
    assert_eq!(
        e,
        ["f.toml:9: pools.api.health: expected a table, found string \"http\""]
    );
}

#[test]
fn bad_outlier_values_are_refused() {
    let e = errors(&with(
        "[pools.api.outlier]\nfailure_percentage = 101\nwindow = \"1500ms\"\nmin_requests = 0\n\
         max_latency = \"0s\"\nbase_ejection_time = \"0s\"\nmax_ejection_percent = 200",
    ));
    assert_eq!(
        e,
        [
            "f.toml:10: pools.api.outlier.failure_percentage: must be at most 100 (percent)",
            "f.toml:11: pools.api.outlier.window: must be whole seconds from 1s to 1h",
            "f.toml:12: pools.api.outlier.min_requests: must be at least 1",
            "f.toml:13: pools.api.outlier.max_latency: must be greater than 0",
            "f.toml:14: pools.api.outlier.base_ejection_time: must be greater than 0",
            "f.toml:15: pools.api.outlier.max_ejection_percent: must be at most 100 (percent)",
        ]
    );
    for window in ["0s", "1h1s"] {
        let e = errors(&with(&format!("outlier = {{ window = \"{window}\" }}")));
        assert_eq!(
            e,
            ["f.toml:9: pools.api.outlier.window: must be whole seconds from 1s to 1h"]
        );
    }
    assert_eq!(
        errors(&with("outlier = { max_ejection_time = \"20s\" }")),
        ["f.toml:9: pools.api.outlier.max_ejection_time: must not be less than base_ejection_time (30s)"]
    );
    assert_eq!(
        errors(&with(
            "outlier = { consecutive_5xx = 0, consecutive_gateway_failures = 0, failure_percentage = 0 }"
        )),
        ["f.toml:9: pools.api.outlier: every detector is off (consecutive_5xx, \
          consecutive_gateway_failures and failure_percentage are 0, max_latency is unset): \
          remove outlier instead"]
    );
    assert_eq!(
        errors(&with("outlier = { max_ejection_percent = 0 }")),
        [
            "f.toml:9: pools.api.outlier.max_ejection_percent: 0 would eject nothing: \
          remove outlier instead"
        ]
    );
    let e = errors(&with(
        "outlier = { consecutive_5xx = 5, ejection_time = \"1s\" }",
    ));
    assert_eq!(e.len(), 1, "{e:#?}");
    assert!(e[0].starts_with("f.toml:9: pools.api.outlier.ejection_time: unknown key"));
}

#[test]
fn bad_pool_health_keys_are_refused() {
    assert_eq!(
        errors(&with(
            "slow_start = \"0s\"\npanic_threshold = 101\ndrain_timeout = \"0s\""
        )),
        [
            "f.toml:9: pools.api.slow_start: must be greater than 0",
            "f.toml:10: pools.api.panic_threshold: must be at most 100 (percent)",
        ]
    );
    let e = errors(&with("slow_start = 30"));
    assert_eq!(e.len(), 1, "{e:#?}");
    assert!(e[0].starts_with("f.toml:9: pools.api.slow_start: expected a duration string"));
}

#[test]
fn a_grpc_service_makes_a_grpc_check() {
    let c = parse_ok(&with(
        "health = { grpc = \"my.Service\", interval = \"5s\" }",
    ));
    let h = c.pools["api"].health.as_ref().unwrap();
    assert_eq!(h.grpc.as_deref(), Some("my.Service"));
    assert_eq!(h.effective_kind(), CheckKind::Grpc);
    let c = parse_ok(&with("health = { type = \"grpc\" }"));
    let h = c.pools["api"].health.as_ref().unwrap();
    assert_eq!(
        (h.effective_kind(), h.grpc.as_deref()),
        (CheckKind::Grpc, None)
    );
    let c = parse_ok(&with("health = { type = \"grpc\", grpc = \"\" }"));
    assert_eq!(
        c.pools["api"].health.as_ref().unwrap().effective_kind(),
        CheckKind::Grpc
    );
    assert_eq!(
        errors(&with("health = { type = \"tcp\", grpc = \"my.Service\" }")),
        [
            "f.toml:9: pools.api.health.grpc: a grpc service makes a grpc check: \
          leave type out or set type = \"grpc\""
        ]
    );
    // A grpc check sends no HTTP/1.1 request: the request keys are refused.
    assert_eq!(
        errors(&with("health = { grpc = \"my.Service\", path = \"/x\" }")),
        ["f.toml:9: pools.api.health.path: only http checks send a request"]
    );
}
