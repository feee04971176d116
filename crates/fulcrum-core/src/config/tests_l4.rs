//! Tests of the stream rules: tcp listeners (`pool` required and known, a pool balancing on
//! what a connection carries, `idle_timeout` only on tcp listeners) and routes' upgrades
//! and stream timeouts.

use super::tests::{errors, parse_ok, BASE};
use super::{Duration, ListenerProtocol, DEFAULT_TCP_IDLE_TIMEOUT};

/// `BASE` plus a tcp listener `db` (from line 9) with `body`.
fn tcp(body: &str) -> String {
    format!("{BASE}[listeners.db]\naddress = \"127.0.0.1:5432\"\nprotocol = \"tcp\"\n{body}\n")
}

#[test]
fn a_tcp_listener_names_its_pool() {
    let config = parse_ok(&tcp("pool = \"api\"\nidle_timeout = \"5m\""));
    let db = &config.listeners["db"];
    assert_eq!(db.protocol, ListenerProtocol::Tcp);
    assert_eq!(db.pool.as_deref(), Some("api"));
    assert_eq!(db.idle_timeout, Some(Duration::from_secs(300)));
    let config = parse_ok(&tcp("pool = \"api\""));
    assert_eq!(config.listeners["db"].idle_timeout, None);
    assert_eq!(DEFAULT_TCP_IDLE_TIMEOUT, Duration::from_secs(3600));
}

#[test]
fn a_tcp_listener_without_a_known_pool_is_refused() {
    assert_eq!(
        errors(&tcp("")),
        ["f.toml:9: listeners.db.pool: a tcp listener needs pool: the pool its connections go to"]
    );
    assert_eq!(
        errors(&tcp("pool = \"db\"")),
        ["f.toml:12: listeners.db.pool: unknown pool \"db\" (pools: api)"]
    );
}

#[test]
fn an_http_listener_takes_neither_pool_nor_idle_timeout() {
    let text = BASE.replace(
        "address = \"0.0.0.0:8080\"",
        "address = \"0.0.0.0:8080\"\npool = \"api\"\nidle_timeout = \"1h\"",
    );
    assert_eq!(
        errors(&text),
        [
            "f.toml:3: listeners.public.pool: an http listener picks pools through [[routes]], not pool",
            "f.toml:4: listeners.public.idle_timeout: only tcp listeners have idle_timeout \
             (http uses keepalive_timeout)",
        ]
    );
}

#[test]
fn idle_timeout_is_not_zero() {
    assert_eq!(
        errors(&tcp("pool = \"api\"\nidle_timeout = \"0s\"")),
        ["f.toml:13: listeners.db.idle_timeout: must be greater than 0"]
    );
}

#[test]
fn the_pool_balances_on_what_a_connection_carries() {
    let hashing = |key: &str| {
        let text = tcp("pool = \"api\"").replace(
            "[pools.api]\n",
            &format!("[pools.api]\nbalance = \"ring_hash\"\n{key}"),
        );
        errors(&text)
    };
    assert_eq!(hashing(""), Vec::<String>::new());
    assert_eq!(hashing("hash_key = \"client_ip\"\n"), Vec::<String>::new());
    assert_eq!(
        hashing("hash_key = \"header:x-user\"\n"),
        [
            "f.toml:14: listeners.db.pool: pool \"api\" hashes \"header:x-user\", which a TCP \
          connection does not carry; at layer 4 only hash_key = \"client_ip\" works"
        ]
    );
    let sticky = tcp("pool = \"api\"").replace(
        "[pools.api]\n",
        "[pools.api]\nsticky = { cookie = \"s\", secret = \"0123456789abcdef\" }\n",
    );
    assert_eq!(
        errors(&sticky),
        ["f.toml:13: listeners.db.pool: pool \"api\" is sticky, and a TCP connection carries no cookie"]
    );
}

#[test]
fn the_reference_has_a_tcp_listener() {
    let config = parse_ok(include_str!("../../../../config/reference.toml"));
    let db = &config.listeners["db"];
    assert_eq!(db.protocol, ListenerProtocol::Tcp);
    assert_eq!(db.pool.as_deref(), Some("db"));
    assert_eq!(db.idle_timeout, Some(DEFAULT_TCP_IDLE_TIMEOUT));
}

/// `BASE` with `body` added to its route (from line 6).
fn route(body: &str) -> String {
    BASE.replace("pool = \"api\"\n", &format!("pool = \"api\"\n{body}\n"))
}

#[test]
fn routes_pass_websocket_upgrades_for_an_hour_by_default() {
    let config = parse_ok(BASE);
    let r = &config.routes[0];
    assert_eq!(r.upgrades, ["websocket"]);
    assert_eq!(r.stream_idle_timeout, Duration::from_secs(3600));
    assert_eq!(r.max_stream_duration, None);
    let config = parse_ok(&route(
        "upgrades = [\"websocket\", \"foo/2\"]\nstream_idle_timeout = \"5m\"\nmax_stream_duration = \"1h\"",
    ));
    let r = &config.routes[0];
    assert_eq!(r.upgrades, ["websocket", "foo/2"]);
    assert_eq!(r.stream_idle_timeout, Duration::from_secs(300));
    assert_eq!(r.max_stream_duration, Some(Duration::from_secs(3600)));
    assert!(parse_ok(&route("upgrades = []")).routes[0]
        .upgrades
        .is_empty());
}

#[test]
fn bad_upgrades_and_stream_timeouts_are_refused() {
    assert_eq!(
        errors(&route("upgrades = [\"web socket\", \"h2c\", \"a/b/c\"]")),
        [
            "f.toml:6: routes[0].upgrades[0]: \"web socket\" is not a protocol name (a token, optionally /version)",
            "f.toml:6: routes[0].upgrades[1]: h2c cannot be passed on: clients speak HTTP/2 to Fulcrum with prior knowledge",
            "f.toml:6: routes[0].upgrades[2]: \"a/b/c\" is not a protocol name (a token, optionally /version)",
        ]
    );
    assert_eq!(
        errors(&route(
            "stream_idle_timeout = \"0s\"\nmax_stream_duration = \"0s\""
        )),
        [
            "f.toml:6: routes[0].stream_idle_timeout: must be greater than 0",
            "f.toml:7: routes[0].max_stream_duration: must be greater than 0",
        ]
    );
}
