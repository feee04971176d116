//! Semantic rules, checked after the file deserialized: every problem is collected,
//! none stops the others from being found.

use std::collections::BTreeMap;
use std::net::SocketAddr;

mod access;
mod discover;
mod health;
mod jwt;
mod l4;
mod limits;
mod observe;
mod predicates;
mod retries;
mod shape;
mod tls;

use super::locate::{key, KeyPath};
use super::pieces::Gaps;
use super::{address, Config, ListenerConfig, ListenerProtocol, PoolConfig, RouteConfig};

/// One semantic problem: where, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Problem {
    pub(crate) path: KeyPath,
    pub(crate) reason: String,
}

/// Collects problems; `line_of` orders duplicates so the later one in the file is
/// the one reported; `gaps` are the values that did not deserialize, about which
/// nothing more is said.
struct Checker<'a> {
    problems: Vec<Problem>,
    line_of: &'a dyn Fn(&KeyPath) -> usize,
    gaps: &'a Gaps,
}

impl Checker<'_> {
    fn report(&mut self, path: KeyPath, reason: impl Into<String>) {
        self.problems.push(Problem {
            path,
            reason: reason.into(),
        });
    }
}

/// Checks every rule on `config`. A rule that needs a value in `gaps` is skipped:
/// the value's own error is already reported, and its default stand-in or absence
/// would only add a misleading consequence (`unknown pool` for a pool that failed).
pub(crate) fn check(
    config: &Config,
    gaps: &Gaps,
    line_of: &dyn Fn(&KeyPath) -> usize,
) -> Vec<Problem> {
    let mut c = Checker {
        problems: Vec::new(),
        line_of,
        gaps,
    };
    if let Some(workers) = config.workers {
        if !(1..=1024).contains(&workers) {
            c.report(key("workers"), "must be between 1 and 1024");
        }
    }
    let binds = listeners(&mut c, config);
    observe::check(&mut c, config);
    access::check(&mut c, config);
    limits::check(&mut c, config);
    shape::check(&mut c, config);
    discover::check(&mut c, config);
    if let Some(admin) = &config.admin {
        let path = key("admin").key("address");
        match address::bind(&admin.address) {
            Err(why) => c.report(path, why),
            Ok(addr)
                if !addr.ip().is_loopback()
                    && !admin.allow_public
                    && !gaps.covers(&key("admin").key("allow_public")) =>
            {
                c.report(
                    path,
                    "admin must bind to a loopback address unless allow_public = true",
                );
            }
            Ok(addr) => {
                if let Some((_, name)) = binds.iter().find(|(a, _)| *a == addr && addr.port() != 0)
                {
                    c.report(path, format!("same address as listeners.{name}"));
                }
            }
        }
        if let Some(token) = &admin.token {
            if token.expose().len() < super::MIN_ADMIN_TOKEN_BYTES {
                c.report(
                    key("admin").key("token"),
                    format!("must be at least {} bytes", super::MIN_ADMIN_TOKEN_BYTES),
                );
            }
        }
    }
    for (name, pool) in &config.pools {
        check_pool(&mut c, &key("pools").key(name), pool);
        tls::check_pool(&mut c, &key("pools").key(name), pool);
        check_sticky(&mut c, &key("pools").key(name), pool);
        jwt::check_pool(&mut c, &key("pools").key(name), pool);
        health::check(&mut c, &key("pools").key(name), pool);
        retries::check(&mut c, &key("pools").key(name), pool);
    }
    for (i, route) in config.routes.iter().enumerate() {
        check_route(&mut c, config, &key("routes").index(i), route);
    }
    c.problems
}

/// Checks the listeners; returns the addresses that parsed, with their listener.
fn listeners<'c>(c: &mut Checker<'_>, config: &'c Config) -> Vec<(SocketAddr, &'c str)> {
    if config.listeners.is_empty() && !c.gaps.within(&key("listeners")) {
        c.report(key("listeners"), "no listeners");
    }
    let mut binds: Vec<(SocketAddr, &str, usize, bool)> = Vec::new();
    for (name, listener) in &config.listeners {
        let path = key("listeners").key(name);
        check_listener(c, config, &path, listener);
        if listener.protocol == ListenerProtocol::TlsPassthrough
            && !c.gaps.covers(&path.key("protocol"))
            && !c.gaps.within(&key("routes"))
            && !config
                .routes
                .iter()
                .any(|r| r.listener.as_deref() == Some(name.as_str()))
        {
            c.report(
                path.key("protocol"),
                "a tls-passthrough listener needs [[routes]] with listener = this one (and sni)",
            );
        }
        if let Ok(addr) = address::bind(&listener.address) {
            let udp = listener.protocol == ListenerProtocol::Udp;
            binds.push((addr, name, (c.line_of)(&path), udp));
        }
    }
    // Report each clash once, on the listener further down the file. A UDP and a
    // TCP socket never clash: they are different ports to the kernel.
    binds.sort_by_key(|&(_, _, line, _)| line);
    for (i, &(addr, name, _, udp)) in binds.iter().enumerate() {
        if addr.port() == 0 {
            continue;
        }
        let path = key("listeners").key(name).key("address");
        let earlier =
            binds[..i]
                .iter()
                .filter(|b| b.3 == udp)
                .find_map(|&(other, other_name, _, _)| {
                    let same = other == addr;
                    // SO_REUSEPORT would let 0.0.0.0:80 and 127.0.0.1:80 both bind and share
                    // the traffic unpredictably, so an overlap is a clash too.
                    let overlap = other.port() == addr.port()
                        && other.is_ipv4() == addr.is_ipv4()
                        && (other.ip().is_unspecified() || addr.ip().is_unspecified());
                    (same || overlap).then_some((same, other_name))
                });
        match earlier {
            Some((true, other)) => c.report(
                path,
                format!("duplicate listener address, also used by listeners.{other}"),
            ),
            Some((false, other)) => c.report(
                path,
                format!("port {} is also bound by listeners.{other}", addr.port()),
            ),
            None => {}
        }
    }
    binds.into_iter().map(|(a, n, _, _)| (a, n)).collect()
}

fn check_listener(c: &mut Checker<'_>, config: &Config, path: &KeyPath, l: &ListenerConfig) {
    if let Err(why) = address::bind(&l.address) {
        c.report(path.key("address"), why);
    }
    tls::check_listener(c, path, l);
    if l.http3 && l.protocol != ListenerProtocol::Https && !c.gaps.covers(&path.key("protocol")) {
        c.report(
            path.key("http3"),
            "HTTP/3 needs TLS: only an https listener serves it",
        );
    }
    if l.early_data && !l.http3 {
        c.report(
            path.key("early_data"),
            "0-RTT is served over HTTP/3 only: set http3 = true",
        );
    }
    if l.early_data && l.tls.as_ref().is_some_and(|t| !t.resumption) {
        c.report(
            path.key("early_data"),
            "0-RTT resumes a session: it needs tls.resumption = true",
        );
    }
    if !(1..=10_000).contains(&l.max_concurrent_streams) {
        c.report(
            path.key("max_concurrent_streams"),
            "must be between 1 and 10000",
        );
    }
    // With its protocol lost, whether the listener is http is unknown.
    let http = matches!(
        l.protocol,
        ListenerProtocol::Http | ListenerProtocol::Https | ListenerProtocol::TlsPassthrough
    ) && !c.gaps.covers(&path.key("protocol"));
    match &l.pool {
        Some(_) if http => c.report(
            path.key("pool"),
            "an http listener picks pools through [[routes]], not pool",
        ),
        Some(pool) if !known(c, config, pool) => {
            c.report(path.key("pool"), unknown("pool", pool, &config.pools));
        }
        _ => {}
    }
    if !c.gaps.covers(&path.key("protocol")) {
        l4::check_layer4(c, config, path, l);
    }
    if !(1024..=1_048_576).contains(&l.max_header_bytes) {
        c.report(
            path.key("max_header_bytes"),
            "must be between 1024 and 1048576",
        );
    }
    for (name, value) in [
        ("header_timeout", l.header_timeout),
        ("client_timeout", l.client_timeout),
    ] {
        if value.is_zero() {
            c.report(path.key(name), "must be greater than 0");
        }
    }
}

fn check_pool(c: &mut Checker<'_>, path: &KeyPath, pool: &PoolConfig) {
    l4::check_send_proxy(c, path, pool);
    let backends = path.key("backends");
    if pool.backends.is_empty() && pool.discover.is_none() && !c.gaps.within(&backends) {
        c.report(backends.clone(), "pool has no backends");
    }
    for (i, backend) in pool.backends.iter().enumerate() {
        let at = backends.index(i);
        if backend.weight == 0 {
            c.report(at.key("weight"), "must be at least 1");
        }
        if let Err(why) = address::backend(&backend.address) {
            c.report(at.key("address"), why);
            continue;
        }
        let earlier = pool.backends[..i]
            .iter()
            .position(|b| b.address.eq_ignore_ascii_case(&backend.address));
        if let Some(first) = earlier {
            c.report(
                at.key("address"),
                format!(
                    "duplicate backend address {:?}, also at {}",
                    backend.address,
                    backends.index(first)
                ),
            );
        }
    }
    for (name, value) in [
        ("connect_timeout", pool.connect_timeout),
        ("upstream_timeout", pool.upstream_timeout),
    ] {
        if value.is_zero() {
            c.report(path.key(name), "must be greater than 0");
        }
    }
    if pool.max_idle_per_backend > 100_000 {
        c.report(path.key("max_idle_per_backend"), "must be at most 100000");
    }
    check_balance(c, path, pool);
}

/// Algorithm parameters: each only where its algorithm reads it, so a typo'd
/// `balance` cannot leave a `hash_key` silently ignored.
fn check_balance(c: &mut Checker<'_>, path: &KeyPath, pool: &PoolConfig) {
    use super::{BalanceConfig as B, LoadConfig};
    let hashing = matches!(pool.balance, B::RingHash | B::Maglev);
    if let Some(key) = &pool.hash_key {
        if !hashing {
            c.report(path.key("hash_key"), "only ring_hash and maglev hash a key");
        } else if let Err(why) = crate::balance::HashKey::parse(key) {
            c.report(path.key("hash_key"), why);
        }
    }
    if let Some(f) = pool.balance_factor {
        if pool.balance != B::RingHash {
            c.report(
                path.key("balance_factor"),
                "only ring_hash has bounded loads",
            );
        } else if !(f > 1.0 && f <= 100.0) {
            c.report(
                path.key("balance_factor"),
                "must be above 1.0 and at most 100",
            );
        }
    }
    if !(1..=10_000).contains(&pool.virtual_nodes) {
        c.report(path.key("virtual_nodes"), "must be between 1 and 10000");
    }
    if !is_prime(pool.table_size) || !(3..=10_000_019).contains(&pool.table_size) {
        c.report(
            path.key("table_size"),
            "must be a prime between 3 and 10000019 (65537 by default)",
        );
    } else if pool.balance == B::Maglev && (pool.table_size as usize) < pool.backends.len() * 100 {
        c.report(
            path.key("table_size"),
            "must be at least 100 times the number of backends for an even spread",
        );
    }
    if pool.load != LoadConfig::InFlight && pool.balance != B::PowerOfTwo {
        c.report(path.key("load"), "only power_of_two compares load");
    }
}

/// `sticky`: a usable cookie, a secret long enough to resist guessing, and an
/// algorithm that does not already pin keys.
fn check_sticky(c: &mut Checker<'_>, path: &KeyPath, pool: &PoolConfig) {
    use super::BalanceConfig as B;
    let Some(sticky) = &pool.sticky else { return };
    let hashing = matches!(pool.balance, B::RingHash | B::Maglev);
    let hashing = hashing && !c.gaps.covers(&path.key("balance"));
    let path = path.key("sticky");
    if !crate::balance::is_cookie_name(&sticky.cookie) {
        c.report(
            path.key("cookie"),
            "must be a cookie name: letters, digits and !#$%&'*+-.^_`|~",
        );
    }
    if sticky.secret.len() < 16 {
        c.report(path.key("secret"), "must be at least 16 bytes");
    }
    if sticky.ttl.get().as_secs() == 0 {
        c.report(path.key("ttl"), "must be at least 1s");
    }
    if hashing {
        c.report(
            path,
            "sticky cannot be used with ring_hash or maglev: consistent hashing already pins keys",
        );
    }
}

fn is_prime(n: u32) -> bool {
    n >= 2 && (2..).take_while(|d| d * d <= n).all(|d| n % d != 0)
}

fn check_route(c: &mut Checker<'_>, config: &Config, path: &KeyPath, route: &RouteConfig) {
    if c.gaps.covers(path) {
        return; // a placeholder for a route that did not deserialize
    }
    if route.pool.is_empty() {
        let answers = route.redirect.is_some() || route.static_files.is_some();
        if !answers && !c.gaps.covers(&path.key("pool")) {
            c.report(path.key("pool"), "missing required key");
        }
    } else if !known(c, config, &route.pool) {
        c.report(
            path.key("pool"),
            unknown("pool", &route.pool, &config.pools),
        );
    }
    if let Some(name) = &route.listener {
        let listener = key("listeners").key(name);
        match config.listeners.get(name) {
            None if c.gaps.covers(&listener) => {}
            None => c.report(
                path.key("listener"),
                unknown("listener", name, &config.listeners),
            ),
            Some(_) if c.gaps.covers(&listener.key("protocol")) => {}
            Some(l) if l.protocol == ListenerProtocol::TlsPassthrough => {
                l4::check_sni_route(c, path, route);
                return;
            }
            Some(l) if !matches!(l.protocol, ListenerProtocol::Http | ListenerProtocol::Https) => {
                c.report(
                    path.key("listener"),
                    format!("listener {name:?} is not an http listener; it uses its pool"),
                );
            }
            Some(_) => {}
        }
    }
    if route.sni.is_some() {
        c.report(
            path.key("sni"),
            "sni routes a tls-passthrough listener: name it with listener",
        );
    }
    check_streams(c, path, route);
    if let Some(host) = &route.host {
        if let Err(why) = address::route_host(host) {
            c.report(path.key("host"), why);
        }
    }
    for (name, value) in [("path", &route.path), ("path_prefix", &route.path_prefix)] {
        let Some(value) = value else { continue };
        if !value.starts_with('/') {
            c.report(path.key(name), "must start with \"/\"");
        } else if value
            .chars()
            .any(|ch| ch.is_whitespace() || ch.is_control())
        {
            c.report(
                path.key(name),
                "must not contain spaces or control characters",
            );
        }
    }
    if route.path.is_some() && route.path_prefix.is_some() {
        c.report(
            path.key("path_prefix"),
            "set either path or path_prefix, not both",
        );
    }
    predicates::check(c, path, route);
    shape::check_route(c, path, route);
    jwt::check_route(c, path, route, limits::uses_jwt(config, route));
}

/// Whether pool `name` exists, or may: one that failed to deserialize is not unknown.
fn known(c: &Checker<'_>, config: &Config, name: &str) -> bool {
    config.pools.contains_key(name) || c.gaps.covers(&key("pools").key(name))
}

/// `unknown pool "x" (pools: a, b)`.
fn unknown<V>(kind: &str, name: &str, known: &BTreeMap<String, V>) -> String {
    if known.is_empty() {
        format!("unknown {kind} {name:?} (no {kind}s are defined)")
    } else {
        let names: Vec<&str> = known.keys().map(String::as_str).collect();
        format!("unknown {kind} {name:?} ({kind}s: {})", names.join(", "))
    }
}

/// `upgrades`, `stream_idle_timeout` and `max_stream_duration` of a route.
fn check_streams(c: &mut Checker<'_>, path: &KeyPath, route: &RouteConfig) {
    for (i, token) in route.upgrades.iter().enumerate() {
        let name = token.split('/').next().unwrap_or_default();
        let is_token = |t: &str| {
            !t.is_empty()
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
        };
        if !token.split('/').all(is_token) || token.split('/').count() > 2 {
            c.report(
                path.key("upgrades").index(i),
                format!("{token:?} is not a protocol name (a token, optionally /version)"),
            );
        } else if name.eq_ignore_ascii_case("h2c") {
            c.report(
                path.key("upgrades").index(i),
                "h2c cannot be passed on: clients speak HTTP/2 to Fulcrum with prior knowledge",
            );
        }
    }
    if route.stream_idle_timeout.get().is_zero() {
        c.report(path.key("stream_idle_timeout"), "must be greater than 0");
    }
    if route.max_stream_duration.is_some_and(|d| d.get().is_zero()) {
        c.report(path.key("max_stream_duration"), "must be greater than 0");
    }
}
