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
             (http uses keepalive_timeout, udp session_idle_timeout)",
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
    // And the PROXY protocol both ways, and a connection cap.
    let lb = &config.listeners["behind_lb"];
    assert_eq!(lb.proxy_protocol, Some(super::ProxyProtocolConfig::V2));
    assert_eq!(lb.proxy_protocol_from, ["10.0.0.0/8", "fd00::/8"]);
    assert_eq!(config.listeners["public"].max_connections, Some(10_000));
    assert_eq!(
        config.pools["db"].send_proxy_protocol,
        Some(super::ProxyProtocolConfig::V2)
    );
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

/// `BASE` plus a udp listener `dns` (from line 9) with `body`.
fn udp(body: &str) -> String {
    format!("{BASE}[listeners.dns]\naddress = \"127.0.0.1:5353\"\nprotocol = \"udp\"\n{body}\n")
}

#[test]
fn a_udp_listener_has_sessions_and_its_pool() {
    let c = parse_ok(&udp(
        "pool = \"api\"\nsession_idle_timeout = \"30s\"\nmax_sessions = 1000",
    ));
    let l = &c.listeners["dns"];
    assert_eq!(l.protocol, ListenerProtocol::Udp);
    assert_eq!(l.session_idle_timeout, Some(Duration::from_secs(30)));
    assert_eq!(l.max_sessions, Some(1000));
    // The same port as a TCP listener is no clash.
    let c = parse_ok(&udp("pool = \"api\"").replace("127.0.0.1:5353", "0.0.0.0:8080"));
    assert_eq!(c.listeners.len(), 2);
    assert_eq!(
        errors(&udp(
            "session_idle_timeout = \"0s\"\nmax_sessions = 0\nidle_timeout = \"1s\"\n\
             max_connections = 5\nproxy_protocol = \"v2\"\nproxy_protocol_from = [\"10.0.0.0/8\"]"
        )),
        [
            "f.toml:9: listeners.dns.pool: a udp listener needs pool: the pool its connections go to",
            "f.toml:12: listeners.dns.session_idle_timeout: must be greater than 0",
            "f.toml:13: listeners.dns.max_sessions: must be at least 1",
            "f.toml:14: listeners.dns.idle_timeout: only tcp listeners have idle_timeout \
             (http uses keepalive_timeout, udp session_idle_timeout)",
            "f.toml:15: listeners.dns.max_connections: a udp listener has no connections; \
             it bounds sessions with max_sessions",
            "f.toml:16: listeners.dns.proxy_protocol: the PROXY protocol is taken on tcp and \
             http listeners only",
        ]
    );
    assert_eq!(
        errors(&tcp(
            "pool = \"api\"\nsession_idle_timeout = \"1s\"\nmax_connections = 0"
        )),
        [
            "f.toml:13: listeners.db.session_idle_timeout: only udp listeners have sessions",
            "f.toml:14: listeners.db.max_connections: must be at least 1",
        ]
    );
}

#[test]
fn proxy_protocol_needs_its_networks() {
    let c = parse_ok(&tcp(
        "pool = \"api\"\nproxy_protocol = \"v2\"\nproxy_protocol_from = [\"10.0.0.0/8\", \"::1\"]",
    ));
    let l = &c.listeners["db"];
    assert_eq!(l.proxy_protocol, Some(super::ProxyProtocolConfig::V2));
    assert_eq!(l.proxy_protocol_from, ["10.0.0.0/8", "::1"]);
    assert_eq!(
        errors(&tcp("pool = \"api\"\nproxy_protocol = \"v1\"")),
        [
            "f.toml:9: listeners.db.proxy_protocol_from: needed with proxy_protocol: the networks \
          allowed to send the header (anyone else could claim any client address)"
        ]
    );
    assert_eq!(
        errors(&tcp("pool = \"api\"\nproxy_protocol_from = [\"10.0.0.0/33\"]")),
        [
            "f.toml:13: listeners.db.proxy_protocol_from[0]: invalid network \"10.0.0.0/33\": \
             prefix must be 0 to 32",
            "f.toml:13: listeners.db.proxy_protocol_from: only with proxy_protocol = \"v1\" or \"v2\"",
        ]
    );
    let c = parse_ok(&BASE.replace(
        "backends = [\"127.0.0.1:9001\"]",
        "backends = [\"127.0.0.1:9001\"]\nsend_proxy_protocol = \"v1\"",
    ));
    assert_eq!(
        c.pools["api"].send_proxy_protocol,
        Some(super::ProxyProtocolConfig::V1)
    );
}

#[test]
fn an_h2c_pool_sends_no_proxy_header() {
    let pool = |extra: &str| {
        BASE.replace(
            "backends = [\"127.0.0.1:9001\"]",
            &format!("backends = [\"127.0.0.1:9001\"]\n{extra}"),
        )
    };
    assert_eq!(
        errors(&pool("protocol = \"h2c\"\nsend_proxy_protocol = \"v2\"")),
        [
            "f.toml:10: pools.api.send_proxy_protocol: not with protocol = \"h2c\": an h2c \
          connection is shared by many clients, and a PROXY header names one"
        ]
    );
    let c = parse_ok(&pool("protocol = \"http1\"\nsend_proxy_protocol = \"v2\""));
    assert_eq!(
        c.pools["api"].send_proxy_protocol,
        Some(super::ProxyProtocolConfig::V2)
    );
}

/// `BASE` plus a tls-passthrough listener `tls` (from line 9) and `routes`.
fn passthrough(routes: &str) -> String {
    format!(
        "{BASE}[listeners.tls]\naddress = \"127.0.0.1:8443\"\nprotocol = \"tls-passthrough\"\n\n{routes}"
    )
}

#[test]
fn tls_passthrough_routes_match_on_sni() {
    let c = parse_ok(&passthrough(
        "[[routes]]\nlistener = \"tls\"\nsni = \"*.example.com\"\npool = \"api\"\n\n\
         [[routes]]\nlistener = \"tls\"\npool = \"api\"\n",
    ));
    assert_eq!(c.routes[1].sni.as_deref(), Some("*.example.com"));
    assert_eq!(
        c.listeners["tls"].protocol,
        ListenerProtocol::TlsPassthrough
    );
    assert_eq!(
        errors(&passthrough("")),
        [
            "f.toml:11: listeners.tls.protocol: a tls-passthrough listener needs [[routes]] \
          with listener = this one (and sni)"
        ]
    );
    assert_eq!(
        errors(&passthrough(
            "[[routes]]\nlistener = \"tls\"\nsni = \"https://x\"\npath = \"/a\"\npool = \"api\"\n"
        )),
        [
            "f.toml:15: routes[1].sni: invalid server name \"https://x\": expected a server name, \
             without a scheme",
            "f.toml:16: routes[1].path: a tls-passthrough route matches on sni only: the request \
             inside TLS is never read",
        ]
    );
    // sni belongs to passthrough routes only.
    assert_eq!(
        errors(&BASE.replace(
            "pool = \"api\"\n",
            "pool = \"api\"\nsni = \"a.example.com\"\n"
        )),
        ["f.toml:6: routes[0].sni: sni routes a tls-passthrough listener: name it with listener"]
    );
}
