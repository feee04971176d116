//! Tests of `parse` on type and unknown-key errors: every one is reported, each on
//! its line, and the semantic rules still run on what deserialized.

use super::pieces::TOP_KEYS;
use super::tests::{errors, parse_ok, BASE};
use super::Config;

#[test]
fn top_keys_match_the_config_type() {
    let Err(e) = toml::from_str::<Config>("x = 1") else {
        panic!("an unknown key must fail");
    };
    let named: Vec<&str> = e.message().split('`').skip(3).step_by(2).collect();
    assert_eq!(named, TOP_KEYS);
}

#[test]
fn type_errors_in_different_entries_are_all_reported() {
    let text = r#"workers = "two"
bogus = 1
admin = { address = "127.0.0.1:9900", allow_public = "yes" }
[listeners.a]
address = "127.0.0.1:8080"
protocl = "http"
[listeners.b]
address = "127.0.0.1:8081"
max_header_bytes = -1
[[routes]]
pool = 5
[[routes]]
pool = "api"
paht = "/"
[pools.api]
backends = ["127.0.0.1:9001"]
connect_timeout = "5 parsecs"
[pools.web]
backends = ["127.0.0.1:9002"]
balance = "fastest"
also_bogus = true
"#;
    let all = errors(text);
    assert_eq!(
        all,
        [
            "f.toml:1: workers: expected a non-negative integer, found string \"two\"",
            "f.toml:2: bogus: unknown key (expected one of: workers, shutdown_timeout, watch, \
             admin, access_log, tracing, rate_limits, redis, listeners, routes, pools, resolvers)",
            "f.toml:3: admin.allow_public: expected a boolean, found string \"yes\"",
            "f.toml:6: listeners.a.protocl: unknown key (expected one of: address, protocol, \
             pool, max_header_bytes, max_body_bytes, header_timeout, keepalive_timeout, \
             client_timeout, idle_timeout, max_connections, proxy_protocol, proxy_protocol_from, \
             session_idle_timeout, max_sessions, tls, redirect_https, request_id, max_connections_per_client, trusted_proxies, allow, deny, request_headers, response_headers, encoded_slashes, error_pages, http3, alt_svc, alt_svc_max_age, max_concurrent_streams, early_data)",
            "f.toml:9: listeners.b.max_header_bytes: must not be negative (found -1)",
            "f.toml:11: routes[0].pool: expected a string, found integer `5`",
            "f.toml:14: routes[1].paht: unknown key (expected one of: name, listener, host, path, \
             path_prefix, path_regex, method, header, cookie, query, jwt_claim, jwt_secret, \
             jwt_public_key, pool, upgrades, stream_idle_timeout, max_stream_duration, sni, allow, deny, jwt_required, rate_limit, basic_auth, forward_auth, request_headers, response_headers, strip_prefix, rewrite, redirect, max_body_bytes, upstream_timeout, per_try_timeout, cors, error_pages, compress, compress_level, compress_min_bytes, compress_types, static)",
            "f.toml:17: pools.api.connect_timeout: invalid duration \"5 parsecs\": \
             expected a number followed by ms, s, m or h",
            "f.toml:20: pools.web.balance: unknown value \"fastest\" \
             (expected one of: round_robin, weighted_round_robin, least_connections, random, power_of_two, ring_hash, maglev)",
            "f.toml:21: pools.web.also_bogus: unknown key (expected one of: balance, \
             backends, dns, discover, protocol, connect_timeout, upstream_timeout, host, connect_attempts, \
             max_idle_per_backend, idle_timeout, hash_key, jwt_secret, jwt_public_key, virtual_nodes, \
             balance_factor, table_size, load, sticky, health, outlier, slow_start, \
             drain_timeout, panic_threshold, retries, max_connections, max_pending, \
             max_requests, send_proxy_protocol, tls)",
        ]
    );
}

#[test]
fn every_bad_key_of_one_entry_is_reported() {
    let text = format!(
        "{BASE}connect_timeout = \"5x\"\nbalance = 3\nupstream_timeout = 10\nconnect_attempts = 0\n"
    );
    assert_eq!(
        errors(&text),
        [
            "f.toml:9: pools.api.connect_timeout: invalid duration \"5x\": \
             expected a number followed by ms, s, m or h",
            "f.toml:10: pools.api.balance: wanted string or table",
            "f.toml:11: pools.api.upstream_timeout: expected a duration string such as \
             \"250ms\", \"5s\", \"2m\" or \"1h\", found integer `10`",
            "f.toml:12: pools.api.connect_attempts: must be at least 1",
        ]
    );
}

#[test]
fn rules_still_run_beside_type_errors() {
    // Pool `api` lost a key but keeps its backends; listener `b` is fine.
    let text = format!(
        "{BASE}connect_timeout = \"5x\"\nbackends = [{{ address = \"127.0.0.1:1\", weight = 0 }}]\n\
         [listeners.b]\naddress = \"0.0.0.0:8080\"\n[[routes]]\npool = \"nope\"\n"
    )
    .replace("backends = [\"127.0.0.1:9001\"]\n", "");
    assert_eq!(
        errors(&text),
        [
            "f.toml:8: pools.api.connect_timeout: invalid duration \"5x\": \
             expected a number followed by ms, s, m or h",
            "f.toml:9: pools.api.backends[0].weight: must be at least 1",
            "f.toml:11: listeners.b.address: duplicate listener address, \
             also used by listeners.public",
            "f.toml:13: routes[1].pool: unknown pool \"nope\" (pools: api)",
        ]
    );
}

#[test]
fn no_rule_reports_a_consequence_of_a_type_error() {
    // The pool failed: the route naming it does not get "unknown pool".
    let text = BASE.replace("[\"127.0.0.1:9001\"]", "[{ weight = 2 }]");
    assert_eq!(
        errors(&text),
        ["f.toml:8: pools.api.backends[0].address: missing required key"]
    );
    // The only listener failed: no "no listeners".
    let text = BASE.replace("address = \"0.0.0.0:8080\"", "address = 8080");
    assert_eq!(
        errors(&text),
        ["f.toml:2: listeners.public.address: expected a string, found integer `8080`"]
    );
    // The protocol was lost, so whether `pool` suits the listener is unknown; a
    // route naming a listener that failed is not told it is unknown either.
    let text = format!(
        "{BASE}[listeners.db]\naddress = \"0.0.0.0:1\"\nprotocol = \"tcpx\"\npool = \"api\"\n\
         [listeners.bad]\naddress = 1\n[[routes]]\nlistener = \"db\"\npool = \"api\"\n\
         [[routes]]\nlistener = \"bad\"\npool = \"api\"\n"
    );
    let all = errors(&text);
    assert_eq!(all.len(), 2, "{all:#?}");
    assert!(all[0].starts_with("f.toml:11: listeners.db.protocol: unknown value"));
    assert!(all[1].starts_with("f.toml:14: listeners.bad.address: expected a string"));
    // allow_public was lost: the loopback rule waits for it.
    let text = format!("admin = {{ address = \"0.0.0.0:1\", allow_public = 1 }}\n{BASE}");
    assert_eq!(
        errors(&text),
        ["f.toml:1: admin.allow_public: expected a boolean, found integer `1`"]
    );
}

#[test]
fn a_failed_route_keeps_later_routes_in_place() {
    let text = format!("{BASE}[[routes]]\nhost = \"a\"\n[[routes]]\npool = \"nope\"\n");
    assert_eq!(
        errors(&text),
        [
            "f.toml:9: routes[1].pool: missing required key",
            "f.toml:12: routes[2].pool: unknown pool \"nope\" (pools: api)",
        ]
    );
}

#[test]
fn sections_of_the_wrong_type() {
    let text = "listeners = 5\nroutes = { pool = \"a\" }\npools = [1]\naccess_log = \"yes\"\n";
    assert_eq!(
        errors(text),
        [
            "f.toml:1: listeners: expected a table, found integer `5`",
            "f.toml:2: routes: expected an array, found a table",
            "f.toml:3: pools: expected a table, found an array",
            "f.toml:4: access_log: expected a table, found string \"yes\"",
        ]
    );
    let text = BASE.replace("[listeners.public]", "listeners.public = 1\n[listeners.x]");
    assert_eq!(
        errors(&text),
        ["f.toml:1: listeners.public: expected a table, found integer `1`"]
    );
}

#[test]
fn dotted_keys_are_placed_too() {
    parse_ok(
        "listeners.a.address = \"127.0.0.1:0\"\npools.p.backends = [\"127.0.0.1:1\"]\n\
         [[routes]]\npool = \"p\"\n",
    );
    let text = "listeners.a.adress = \"x\"\npools.p.backends = [\"127.0.0.1:1\"]\n\
                pools.p.idle_timeout = 3\n[[routes]]\npool = \"p\"\n";
    assert_eq!(
        errors(text),
        [
            "f.toml:1: listeners.a.adress: unknown key (expected one of: address, protocol, \
             pool, max_header_bytes, max_body_bytes, header_timeout, keepalive_timeout, \
             client_timeout, idle_timeout, max_connections, proxy_protocol, proxy_protocol_from, \
             session_idle_timeout, max_sessions, tls, redirect_https, request_id, max_connections_per_client, trusted_proxies, allow, deny, request_headers, response_headers, encoded_slashes, error_pages, http3, alt_svc, alt_svc_max_age, max_concurrent_streams, early_data)",
            "f.toml:1: listeners.a.address: missing required key",
            "f.toml:3: pools.p.idle_timeout: expected a duration string such as \"250ms\", \
             \"5s\", \"2m\" or \"1h\", found integer `3`",
        ]
    );
}

#[test]
fn bad_keys_of_a_nested_table_are_all_reported() {
    // Each bad key of `sticky` is dropped from `sticky` alone; a required one takes
    // the table with it, without a second "missing required key".
    let text = format!(
        "{BASE}sticky = {{ cookie = 5, ttl = 3, secret = \"0123456789abcdef\" }}\n\
         connect_timeout = \"0s\"\n"
    );
    assert_eq!(
        errors(&text),
        [
            "f.toml:9: pools.api.sticky.cookie: expected a string, found integer `5`",
            "f.toml:9: pools.api.sticky.ttl: expected a duration string such as \"250ms\", \
             \"5s\", \"2m\" or \"1h\", found integer `3`",
            "f.toml:10: pools.api.connect_timeout: must be greater than 0",
        ]
    );
    // A sub-table written as a section is read the same way.
    let text = format!("{BASE}[pools.api.sticky]\ncookie = \"s\"\nsecret = 1\nttl = \"x\"\n");
    let all = errors(&text);
    assert_eq!(all.len(), 2, "{all:#?}");
    assert!(all[0].starts_with("f.toml:11: pools.api.sticky.secret: expected a string"));
    assert!(all[1].starts_with("f.toml:12: pools.api.sticky.ttl: invalid duration"));
}
