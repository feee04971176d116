//! Backends that come and go: what a DNS answer, an SRV answer or a backends file
//! makes of a pool's members, and when to ask again. No I/O: answers and time come
//! in as arguments, so the grace and clamping rules are tested with simulated time.

pub mod dns;
pub mod file;

use std::net::{IpAddr, SocketAddr};

/// One member a source found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Found {
    /// Where it answers.
    pub addr: SocketAddr,
    /// Its weight (at least 1).
    pub weight: u32,
    /// Serves only while no member of the pool that is not a backup can.
    pub backup: bool,
}

/// A member's key: the source it came from and its address. Every instance that
/// sees the same answer builds the same keys, so hashing and sticky cookies agree
/// across a fleet.
pub fn member_key(source: &str, addr: SocketAddr) -> String {
    format!("{source}@{addr}")
}

/// A resolver given as `"ip"` (port 53) or `"ip:port"` (`"[v6]:port"`).
pub fn resolver_addr(text: &str) -> Option<SocketAddr> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Some(addr);
    }
    let ip = text.trim_start_matches('[').trim_end_matches(']');
    ip.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, 53))
}

/// `host:port` split into the host (brackets removed) and the port. `None` when
/// the port is missing or not a number; validation refused such addresses.
pub fn host_port(address: &str) -> Option<(&str, u16)> {
    let (host, port) = address.rsplit_once(':')?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    Some((host, port.parse().ok()?))
}

/// Sorts `found` by address and keeps one member per address (the first not a
/// backup, else the heaviest), so equal answers give equal member lists.
pub fn normalize(found: &mut Vec<Found>) {
    found.sort_by(|a, b| {
        (a.addr, a.backup, std::cmp::Reverse(a.weight)).cmp(&(
            b.addr,
            b.backup,
            std::cmp::Reverse(b.weight),
        ))
    });
    found.dedup_by_key(|f| f.addr);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn resolvers() {
        assert_eq!(
            resolver_addr("127.0.0.1:5353"),
            Some(addr("127.0.0.1:5353"))
        );
        assert_eq!(resolver_addr("10.0.0.2"), Some(addr("10.0.0.2:53")));
        assert_eq!(resolver_addr("::1"), Some(addr("[::1]:53")));
        assert_eq!(resolver_addr("[::1]:5353"), Some(addr("[::1]:5353")));
        assert_eq!(resolver_addr("dns.local"), None);
        assert_eq!(resolver_addr("1.2.3.4:x"), None);
    }

    #[test]
    fn host_and_port() {
        assert_eq!(host_port("api.internal:8080"), Some(("api.internal", 8080)));
        assert_eq!(host_port("[::1]:80"), Some(("::1", 80)));
        assert_eq!(host_port("api"), None);
        assert_eq!(host_port("api:http"), None);
    }

    #[test]
    fn normalize_orders_and_dedups() {
        let f = |a: &str, weight, backup| Found {
            addr: addr(a),
            weight,
            backup,
        };
        let mut v = vec![
            f("10.0.0.2:80", 1, true),
            f("10.0.0.1:80", 1, false),
            f("10.0.0.2:80", 5, false),
            f("10.0.0.2:80", 9, true),
        ];
        normalize(&mut v);
        assert_eq!(
            v,
            vec![f("10.0.0.1:80", 1, false), f("10.0.0.2:80", 5, false)]
        );
        assert_eq!(
            member_key("api:80", addr("10.0.0.1:80")),
            "api:80@10.0.0.1:80"
        );
    }
}
