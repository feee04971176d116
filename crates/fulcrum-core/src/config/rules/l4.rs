//! Rules for layer-4 listeners and the connection-level keys: a tcp or udp listener
//! names an existing pool that balances only on what a bare connection or datagram
//! carries (its client address); each key is accepted only where it acts.

use super::Checker;
use crate::balance::HashKey;
use crate::config::locate::KeyPath;
use crate::config::{
    address, Cidr, Config, ListenerConfig, ListenerProtocol, PoolConfig, PoolProtocol, RouteConfig,
};

/// Checks the keys of the listener at `path` that depend on its protocol.
pub(super) fn check_layer4(
    c: &mut Checker<'_>,
    config: &Config,
    path: &KeyPath,
    l: &ListenerConfig,
) {
    let (tcp, udp) = (
        l.protocol == ListenerProtocol::Tcp,
        l.protocol == ListenerProtocol::Udp,
    );
    if tcp || udp {
        check_pool(c, config, path, l);
    }
    let only = |c: &mut Checker<'_>, name: &str, set: bool, ok: bool, why: &str| {
        if set && !ok {
            c.report(path.key(name), why.to_owned());
        }
    };
    only(
        c,
        "idle_timeout",
        l.idle_timeout.is_some(),
        tcp,
        "only tcp listeners have idle_timeout (http uses keepalive_timeout, udp session_idle_timeout)",
    );
    only(
        c,
        "session_idle_timeout",
        l.session_idle_timeout.is_some(),
        udp,
        "only udp listeners have sessions",
    );
    only(
        c,
        "max_sessions",
        l.max_sessions.is_some(),
        udp,
        "only udp listeners have sessions",
    );
    only(
        c,
        "max_connections",
        l.max_connections.is_some(),
        !udp,
        "a udp listener has no connections; it bounds sessions with max_sessions",
    );
    only(
        c,
        "proxy_protocol",
        l.proxy_protocol.is_some(),
        !udp,
        "the PROXY protocol is taken on tcp and http listeners only",
    );
    for (name, zero) in [
        ("idle_timeout", l.idle_timeout.is_some_and(|d| d.is_zero())),
        (
            "session_idle_timeout",
            l.session_idle_timeout.is_some_and(|d| d.is_zero()),
        ),
    ] {
        if zero {
            c.report(path.key(name), "must be greater than 0");
        }
    }
    for (name, zero) in [
        ("max_sessions", l.max_sessions == Some(0)),
        ("max_connections", l.max_connections == Some(0)),
    ] {
        if zero {
            c.report(path.key(name), "must be at least 1");
        }
    }
    check_proxy_protocol(c, path, l);
}

/// `pool` of a tcp or udp listener.
fn check_pool(c: &mut Checker<'_>, config: &Config, path: &KeyPath, l: &ListenerConfig) {
    let at = path.key("pool");
    let kind = if l.protocol == ListenerProtocol::Udp {
        "udp"
    } else {
        "tcp"
    };
    match l.pool.as_deref() {
        None if !c.gaps.covers(&at) => {
            c.report(
                at,
                format!("a {kind} listener needs pool: the pool its connections go to"),
            );
        }
        Some(name) => {
            // An unknown pool is reported with the other listener rules.
            if let Some(pool) = config.pools.get(name) {
                // An invalid key is reported on the pool.
                let other = pool
                    .hash_key
                    .as_deref()
                    .filter(|text| HashKey::parse(text).is_ok_and(|key| key != HashKey::ClientIp));
                let what = if kind == "udp" {
                    "a UDP datagram"
                } else {
                    "a TCP connection"
                };
                if let Some(text) = other {
                    c.report(
                        at.clone(),
                        format!(
                            "pool {name:?} hashes {text:?}, which {what} does not \
                             carry; at layer 4 only hash_key = \"client_ip\" works"
                        ),
                    );
                }
                if pool.sticky.is_some() {
                    c.report(
                        at,
                        format!("pool {name:?} is sticky, and {what} carries no cookie"),
                    );
                }
            }
        }
        None => {}
    }
}

/// `proxy_protocol` and `proxy_protocol_from`: both or neither, with valid networks.
fn check_proxy_protocol(c: &mut Checker<'_>, path: &KeyPath, l: &ListenerConfig) {
    for (i, net) in l.proxy_protocol_from.iter().enumerate() {
        if let Err(why) = Cidr::parse(net) {
            c.report(path.key("proxy_protocol_from").index(i), why);
        }
    }
    match (l.proxy_protocol.is_some(), l.proxy_protocol_from.is_empty()) {
        (true, true) => c.report(
            path.key("proxy_protocol_from"),
            "needed with proxy_protocol: the networks allowed to send the header \
             (anyone else could claim any client address)",
        ),
        (false, false) => c.report(
            path.key("proxy_protocol_from"),
            "only with proxy_protocol = \"v1\" or \"v2\"",
        ),
        _ => {}
    }
}

/// `send_proxy_protocol` of the pool at `path`: not on an h2c pool. A PROXY header
/// names one client for a connection's whole life, and an h2c connection carries
/// the streams of every client of a worker at once.
pub(super) fn check_send_proxy(c: &mut Checker<'_>, path: &KeyPath, pool: &PoolConfig) {
    if pool.send_proxy_protocol.is_some() && pool.protocol == PoolProtocol::H2c {
        c.report(
            path.key("send_proxy_protocol"),
            "not with protocol = \"h2c\": an h2c connection is shared by many clients, \
             and a PROXY header names one",
        );
    }
}

/// A route of a `tls-passthrough` listener: it matches on `sni` alone, since the
/// request inside the TLS stream is never read.
pub(super) fn check_sni_route(c: &mut Checker<'_>, path: &KeyPath, route: &RouteConfig) {
    if let Some(sni) = &route.sni {
        if let Err(why) = address::route_host(sni) {
            c.report(
                path.key("sni"),
                why.replace("host name", "server name")
                    .replace("invalid host", "invalid server name"),
            );
        }
    }
    let defaults = RouteConfig::default();
    for (name, set) in [
        ("host", route.host.is_some()),
        ("path", route.path.is_some()),
        ("path_prefix", route.path_prefix.is_some()),
        ("path_regex", route.path_regex.is_some()),
        ("method", route.method.is_some()),
        ("header", !route.header.is_empty()),
        ("cookie", !route.cookie.is_empty()),
        ("query", !route.query.is_empty()),
        ("jwt_claim", !route.jwt_claim.is_empty()),
        ("jwt_secret", route.jwt_secret.is_some()),
        ("jwt_public_key", route.jwt_public_key.is_some()),
        ("upgrades", route.upgrades != defaults.upgrades),
        (
            "stream_idle_timeout",
            route.stream_idle_timeout != defaults.stream_idle_timeout,
        ),
        ("max_stream_duration", route.max_stream_duration.is_some()),
    ] {
        if set {
            c.report(
                path.key(name),
                "a tls-passthrough route matches on sni only: the request inside TLS is never read",
            );
        }
    }
}
