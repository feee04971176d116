//! Tests of `parse`: lines, key paths, every rule, and the reference config.

use std::path::Path;

use super::*;

/// A valid config that tests append to or edit.
pub(super) const BASE: &str = r#"[listeners.public]
address = "0.0.0.0:8080"

[[routes]]
pool = "api"

[pools.api]
backends = ["127.0.0.1:9001"]
"#;

pub(super) fn parse_ok(text: &str) -> Config {
    match parse(Path::new("f.toml"), text) {
        Ok(config) => config,
        Err(errors) => panic!("{}", lines(&errors).join("\n")),
    }
}

fn lines(errors: &[ConfigError]) -> Vec<String> {
    errors.iter().map(ToString::to_string).collect()
}

/// Every error of `text`, displayed.
pub(super) fn errors(text: &str) -> Vec<String> {
    match parse(Path::new("f.toml"), text) {
        Ok(_) => Vec::new(),
        Err(errors) => lines(&errors),
    }
}

/// The one error of `text`, displayed.
fn error(text: &str) -> String {
    let mut all = errors(text);
    assert_eq!(all.len(), 1, "{all:#?}");
    all.remove(0)
}

#[test]
fn reference_config_is_valid() {
    let config = parse_ok(include_str!("../../../../config/reference.toml"));
    let api = &config.pools["api"];
    assert_eq!(api.balance, BalanceConfig::WeightedRoundRobin);
    assert_eq!(api.backends[2].weight, 2);
    assert_eq!(config.pools["grpc"].protocol, PoolProtocol::H2c);
    assert_eq!(
        config.pools["grpc"].upstream_timeout,
        Duration::from_secs(90)
    );
    assert_eq!(config.routes.len(), 10);
    let shaped = config
        .routes
        .iter()
        .find(|r| r.strip_prefix.is_some())
        .unwrap();
    assert_eq!(shaped.strip_prefix.as_deref(), Some("/api"));
    assert!(shaped.cors.as_ref().is_some_and(|c| c.credentials));
    let redirect = config.routes.iter().find_map(|r| r.redirect.as_ref());
    assert_eq!(redirect.map(|r| r.status), Some(301));
    assert_eq!(config.routes[3].jwt_claim["role"], "admin");
    assert_eq!(
        config.routes[2].method,
        Some(MethodsConfig(vec!["GET".into(), "HEAD".into()]))
    );
    assert_eq!(config.routes[2].header.len(), 2);
    assert_eq!(config.listeners["public"].max_body_bytes, Some(10_485_760));
    let checked = &config.pools["checked"];
    let health = checked.health.as_ref().unwrap();
    assert_eq!(health.path, "/healthz");
    assert_eq!(health.expect[1], StatusRange { from: 304, to: 304 });
    assert_eq!(health.jitter, Some(Duration::from_millis(500)));
    let outlier = checked.outlier.as_ref().unwrap();
    assert_eq!(outlier.max_ejection_time, Duration::from_secs(300));
    let retries = checked.retries.as_ref().unwrap();
    assert_eq!(retries.on[3], RetryOn::Status(502));
    assert_eq!(retries.budget, Percent(20));
    assert_eq!(checked.slow_start, Some(Duration::from_secs(30)));
    assert_eq!(checked.max_pending, Some(100));
    // The reference spells out each default: other pools leave every key out.
    assert_eq!(
        *outlier,
        OutlierConfig {
            max_latency: Some(Duration::from_secs(1)),
            ..OutlierConfig::default()
        }
    );
    assert_eq!(retries.per_try_timeout, Some(Duration::from_secs(2)));
}

#[test]
fn minimal_config_gets_defaults() {
    let config = parse_ok(BASE);
    assert_eq!(config.workers, None);
    assert_eq!(config.shutdown_timeout, Duration::from_secs(30));
    assert_eq!(config.access_log, AccessLogConfig::default());
    let public = &config.listeners["public"];
    assert_eq!(public.protocol, ListenerProtocol::Http);
    assert_eq!(public.max_header_bytes, 32 * 1024);
    let api = &config.pools["api"];
    assert_eq!(api.connect_attempts.get(), 3);
    assert_eq!(api.backends[0].weight, 1);
    assert_eq!(api.protocol, PoolProtocol::Http1);
}

#[test]
fn full_config_round_trip() {
    let text = r#"workers = 4
shutdown_timeout = "1m30s"
admin = { address = "[::1]:0" }
access_log = { enabled = false, format = "text", path = "/var/log/f.log" }
[listeners.a]
address = "127.0.0.1:0"
header_timeout = "250ms"
[[routes]]
listener = "a"
host = "*.Example.com"
path = "/x"
pool = "p"
[pools.p]
balance = "weighted_round_robin"
protocol = "h2c"
backends = [{ address = "b.internal:80", weight = 5 }, "10.0.0.1:80"]
connect_attempts = 1
max_idle_per_backend = 0
idle_timeout = "0s"
"#;
    let config = parse_ok(text);
    assert_eq!(config.workers, Some(4));
    assert_eq!(config.shutdown_timeout, Duration::from_secs(90));
    assert_eq!(
        config.admin,
        Some(AdminConfig {
            address: "[::1]:0".into(),
            allow_public: false,
            token: None,
        })
    );
    assert!(!config.access_log.enabled);
    assert_eq!(config.access_log.format, AccessLogFormat::Text);
    assert_eq!(
        config.listeners["a"].header_timeout,
        Duration::from_millis(250)
    );
    assert_eq!(
        config.routes[0],
        RouteConfig {
            listener: Some("a".into()),
            host: Some("*.Example.com".into()),
            path: Some("/x".into()),
            path_prefix: None,
            pool: "p".into(),
            ..RouteConfig::default()
        }
    );
    let weights: Vec<u32> = config.pools["p"]
        .backends
        .iter()
        .map(|b| b.weight)
        .collect();
    assert_eq!(weights, [5, 1]);
}

// === syntax and type errors ===

#[test]
fn unknown_keys_name_their_full_path() {
    assert_eq!(
        error(&format!("worker = 2\n{BASE}")),
        "f.toml:1: worker: unknown key (expected one of: workers, shutdown_timeout, watch, \
         admin, access_log, tracing, rate_limits, redis, listeners, routes, pools, resolvers)"
    );
    // The misspelt key is reported, and so is the key it failed to set.
    let text = BASE.replace("address = \"0.0.0.0:8080\"", "adress = \"0.0.0.0:8080\"");
    let all = errors(&text);
    assert_eq!(all.len(), 2, "{all:#?}");
    assert_eq!(
        all[0],
        "f.toml:1: listeners.public.address: missing required key"
    );
    assert!(all[1].starts_with("f.toml:2: listeners.public.adress: unknown key (expected one of: address, protocol, pool,"), "{all:#?}");
    let text = BASE.replace(
        "[\"127.0.0.1:9001\"]",
        "[\n  \"127.0.0.1:9001\",\n  { address = \"127.0.0.1:9002\", wieght = 2 },\n]",
    );
    assert_eq!(
        error(&text),
        "f.toml:10: pools.api.backends[1].wieght: unknown key (expected one of: address, weight)"
    );
    let text = BASE.replace("pool = \"api\"", "pool = \"api\"\npth = \"/\"");
    assert!(error(&text).starts_with("f.toml:6: routes[0].pth: unknown key"));
    // The route's pool is missing too: nothing says `pols` was meant as `pools`.
    let text = BASE.replace("[pools.api]", "[pols.api]");
    let all = errors(&text);
    assert_eq!(
        all[0],
        "f.toml:5: routes[0].pool: unknown pool \"api\" (no pools are defined)"
    );
    assert!(
        all[1].starts_with("f.toml:7: pols: unknown key"),
        "{all:#?}"
    );
}

#[test]
fn missing_required_key() {
    let text = BASE.replace("address = \"0.0.0.0:8080\"", "");
    assert_eq!(
        error(&text),
        "f.toml:1: listeners.public.address: missing required key"
    );
    let text = format!("{BASE}[[routes]]\nlistener = \"public\"\n");
    assert_eq!(
        error(&text),
        "f.toml:9: routes[1].pool: missing required key"
    );
}

#[test]
fn bad_duration_is_placed_on_its_key() {
    let text = format!("{BASE}connect_timeout = \"5x\"\n");
    assert_eq!(
        error(&text),
        "f.toml:9: pools.api.connect_timeout: invalid duration \"5x\": \
         expected a number followed by ms, s, m or h"
    );
    let text = format!("shutdown_timeout = 5\n{BASE}");
    assert!(error(&text).starts_with("f.toml:1: shutdown_timeout: expected a duration string"));
}

#[test]
fn type_errors_are_readable() {
    let text = format!("workers = \"two\"\n{BASE}");
    assert_eq!(
        error(&text),
        "f.toml:1: workers: expected a non-negative integer, found string \"two\""
    );
    let text = format!("{BASE}connect_attempts = 0\n");
    assert_eq!(
        error(&text),
        "f.toml:9: pools.api.connect_attempts: must be at least 1"
    );
    let text = format!("{BASE}balance = \"fastest\"\n");
    assert_eq!(
        error(&text),
        "f.toml:9: pools.api.balance: unknown value \"fastest\" \
         (expected one of: round_robin, weighted_round_robin, least_connections, random, power_of_two, ring_hash, maglev)"
    );
    let text = BASE.replace("[\"127.0.0.1:9001\"]", "[5]");
    assert!(error(&text).starts_with("f.toml:8: pools.api.backends[0]: expected a \"host:port\""));
}

#[test]
fn syntax_error_guesses_the_key() {
    let text = BASE.replace("[\"127.0.0.1:9001\"]", "[\"127.0.0.1:9001\" \"x\"]");
    let e = error(&text);
    assert!(e.starts_with("f.toml:8: pools.api.backends: "), "{e}");
    let text = format!("{BASE}[[routes]]\npool = \n");
    let e = error(&text);
    assert!(e.starts_with("f.toml:10: routes[1].pool: "), "{e}");
}

// === semantic rules ===

#[test]
fn weight_zero_is_refused_on_its_line() {
    let text = BASE.replace(
        "[\"127.0.0.1:9001\"]",
        "[\n  \"127.0.0.1:9001\",\n  \"127.0.0.1:9002\",\n  { address = \"127.0.0.1:9003\", weight = 0 },\n]",
    );
    assert_eq!(
        error(&text),
        "f.toml:11: pools.api.backends[2].weight: must be at least 1"
    );
}

#[test]
fn pool_rules() {
    let text = BASE.replace("[\"127.0.0.1:9001\"]", "[]");
    assert_eq!(
        error(&text),
        "f.toml:8: pools.api.backends: pool has no backends"
    );
    let text = BASE.replace("\"127.0.0.1:9001\"", "\"127.0.0.1:9001\", \"127.0.0.1:0\"");
    assert_eq!(
        error(&text),
        "f.toml:8: pools.api.backends[1].address: invalid address \"127.0.0.1:0\": \
         port 0 is not allowed"
    );
    let text = BASE.replace("\"127.0.0.1:9001\"", "\"a.b:1\", \"A.b:1\"");
    assert_eq!(
        error(&text),
        "f.toml:8: pools.api.backends[1].address: duplicate backend address \"A.b:1\", \
         also at pools.api.backends[0]"
    );
    let text = format!("{BASE}max_idle_per_backend = 100001\nconnect_timeout = \"0s\"\n");
    assert_eq!(
        errors(&text),
        [
            "f.toml:9: pools.api.max_idle_per_backend: must be at most 100000",
            "f.toml:10: pools.api.connect_timeout: must be greater than 0",
        ]
    );
}

#[test]
fn listener_rules() {
    let text = format!(
        "{BASE}[listeners.db]\naddress = \"localhost:5432\"\nprotocol = \"tcp\"\npool = \"nope\"\n"
    );
    assert_eq!(
        errors(&text),
        [
            "f.toml:10: listeners.db.address: invalid address \"localhost:5432\": \
             expected ip:port, such as 0.0.0.0:8080 or [::]:8080",
            "f.toml:12: listeners.db.pool: unknown pool \"nope\" (pools: api)",
        ]
    );
    let text = BASE.replace(
        "address = \"0.0.0.0:8080\"",
        "address = \"0.0.0.0:8080\"\npool = \"api\"\nmax_header_bytes = 512\nheader_timeout = \"0s\"",
    );
    assert_eq!(
        errors(&text),
        [
            "f.toml:3: listeners.public.pool: an http listener picks pools through [[routes]], not pool",
            "f.toml:4: listeners.public.max_header_bytes: must be between 1024 and 1048576",
            "f.toml:5: listeners.public.header_timeout: must be greater than 0",
        ]
    );
    let none = BASE.replace("[listeners.public]\naddress = \"0.0.0.0:8080\"\n", "");
    assert_eq!(error(&none), "f.toml:1: listeners: no listeners");
}

#[test]
fn duplicate_listeners_report_the_later_one() {
    let text = format!("{BASE}[listeners.a]\naddress = \"0.0.0.0:8080\"\n");
    assert_eq!(
        error(&text),
        "f.toml:10: listeners.a.address: duplicate listener address, also used by listeners.public"
    );
    let text = format!("{BASE}[listeners.b]\naddress = \"127.0.0.1:8080\"\n");
    assert_eq!(
        error(&text),
        "f.toml:10: listeners.b.address: port 8080 is also bound by listeners.public"
    );
    // Port 0 never clashes, and IPv6 does not overlap IPv4.
    parse_ok(&format!(
        "{BASE}[listeners.b]\naddress = \"[::]:8080\"\n[listeners.c]\naddress = \"0.0.0.0:0\"\n\
         [listeners.d]\naddress = \"0.0.0.0:0\"\n"
    ));
}

#[test]
fn route_rules() {
    let text = format!(
        "{BASE}[[routes]]\nlistener = \"nope\"\nhost = \"https://x.com\"\n\
         path = \"x\"\npath_prefix = \"/a b\"\npool = \"web\"\n"
    );
    assert_eq!(
        errors(&text),
        [
            "f.toml:10: routes[1].listener: unknown listener \"nope\" (listeners: public)",
            "f.toml:11: routes[1].host: invalid host \"https://x.com\": expected a host name, without a scheme",
            "f.toml:12: routes[1].path: must start with \"/\"",
            "f.toml:13: routes[1].path_prefix: must not contain spaces or control characters",
            "f.toml:13: routes[1].path_prefix: set either path or path_prefix, not both",
            "f.toml:14: routes[1].pool: unknown pool \"web\" (pools: api)",
        ]
    );
    let text = format!("{BASE}[listeners.db]\naddress = \"0.0.0.0:1\"\nprotocol = \"udp\"\npool = \"api\"\n[[routes]]\nlistener = \"db\"\npool = \"api\"\n");
    assert_eq!(
        errors(&text),
        ["f.toml:14: routes[1].listener: listener \"db\" is not an http listener; it uses its pool"]
    );
    let text = BASE.replace("\n[pools.api]\nbackends = [\"127.0.0.1:9001\"]\n", "");
    assert_eq!(
        error(&text),
        "f.toml:5: routes[0].pool: unknown pool \"api\" (no pools are defined)"
    );
}

#[test]
fn admin_rules() {
    let public = format!("[admin]\naddress = \"0.0.0.0:9900\"\n{BASE}");
    assert_eq!(
        error(&public),
        "f.toml:2: admin.address: admin must bind to a loopback address unless allow_public = true"
    );
    parse_ok(&public.replace("9900\"\n", "9900\"\nallow_public = true\n"));
    let text = format!("admin = {{ address = \"localhost:1\" }}\n{BASE}");
    assert!(error(&text).starts_with("f.toml:1: admin.address: invalid address"));
    let clash = format!("[admin]\naddress = \"127.0.0.1:8080\"\n{BASE}")
        .replace("0.0.0.0:8080", "127.0.0.1:8080");
    assert_eq!(
        error(&clash),
        "f.toml:2: admin.address: same address as listeners.public"
    );
    let short = format!("[admin]\naddress = \"127.0.0.1:0\"\ntoken = \"short\"\n{BASE}");
    assert_eq!(
        error(&short),
        "f.toml:3: admin.token: must be at least 16 bytes"
    );
    let ok = parse_ok(&short.replace("\"short\"", "\"0123456789abcdef\""));
    let token = ok.admin.and_then(|a| a.token).unwrap();
    assert_eq!(token.expose(), "0123456789abcdef");
    assert_eq!(format!("{token:?}"), "<redacted>");
}

#[test]
fn workers_range() {
    assert_eq!(
        error(&format!("workers = 0\n{BASE}")),
        "f.toml:1: workers: must be between 1 and 1024"
    );
    assert_eq!(errors(&format!("workers = 1025\n{BASE}")).len(), 1);
    parse_ok(&format!("workers = 1024\n{BASE}"));
}

#[test]
fn every_problem_at_once_sorted_by_line() {
    let text = r#"workers = 0
[listeners.z]
address = "0.0.0.0:80"
protocol = "https"
[listeners.a]
address = "0.0.0.0:80"
[[routes]]
pool = "missing"
[pools.empty]
backends = []
[pools."with.dot"]
backends = [{ address = "x:1", weight = 0 }]
"#;
    let all = errors(text);
    assert_eq!(
        all,
        [
            "f.toml:1: workers: must be between 1 and 1024",
            "f.toml:2: listeners.z.tls: an https listener needs tls = { certificates = [{ cert = \"PATH\", key = \"PATH\" }] }",
            "f.toml:6: listeners.a.address: duplicate listener address, also used by listeners.z",
            "f.toml:8: routes[0].pool: unknown pool \"missing\" (pools: empty, with.dot)",
            "f.toml:10: pools.empty.backends: pool has no backends",
            "f.toml:12: pools.\"with.dot\".backends[0].weight: must be at least 1",
        ]
    );
}

#[test]
fn defaulted_key_falls_back_to_its_parent_line() {
    // `weight` is absent in the string form: the error sits on the backend's line.
    let text = BASE.replace(
        "[\"127.0.0.1:9001\"]",
        "[\n  \"127.0.0.1:9001\",\n  \"bad\",\n]",
    );
    assert_eq!(
        error(&text),
        "f.toml:10: pools.api.backends[1].address: invalid address \"bad\": expected host:port"
    );
}
