//! Networks in the config (`proxy_protocol_from = ["10.0.0.0/8", "::1"]`): who may
//! send a PROXY protocol header.

use std::net::IpAddr;

use serde::Deserialize;

/// `proxy_protocol` of a listener or `send_proxy_protocol` of a pool.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProxyProtocolConfig {
    /// The text header.
    V1,
    /// The binary header.
    V2,
}

impl ProxyProtocolConfig {
    /// The codec's version.
    pub fn version(self) -> crate::proxy_protocol::Version {
        match self {
            Self::V1 => crate::proxy_protocol::Version::V1,
            Self::V2 => crate::proxy_protocol::Version::V2,
        }
    }
}

/// An IP network: an address and how many leading bits must match.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    bits: u8,
}

impl Cidr {
    /// `ADDR/BITS`, or a bare address (one host). IPv4 networks also match
    /// IPv4-mapped IPv6 peers (`::ffff:10.0.0.1`), as dual-stack sockets report them.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (addr, bits) = match text.split_once('/') {
            Some((a, b)) => (a, Some(b)),
            None => (text, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("invalid network {text:?}: expected ADDRESS or ADDRESS/BITS"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let bits =
            match bits {
                None => max,
                Some(b) => b.parse::<u8>().ok().filter(|b| *b <= max).ok_or_else(|| {
                    format!("invalid network {text:?}: prefix must be 0 to {max}")
                })?,
            };
        Ok(Self { addr, bits })
    }

    /// Whether `ip` is in the network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => prefix_eq(&net.octets(), &ip.octets(), self.bits),
            (IpAddr::V6(net), IpAddr::V6(ip)) => prefix_eq(&net.octets(), &ip.octets(), self.bits),
            _ => false,
        }
    }
}

/// Whether the first `bits` bits of `a` and `b` agree.
fn prefix_eq(a: &[u8], b: &[u8], bits: u8) -> bool {
    let (whole, rest) = (usize::from(bits / 8), bits % 8);
    if a.get(..whole) != b.get(..whole) {
        return false;
    }
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    matches!((a.get(whole), b.get(whole)), (Some(x), Some(y)) if x & mask == y & mask)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn networks_match_their_prefix() {
        let n = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(n.contains(ip("10.1.200.3")));
        assert!(!n.contains(ip("10.2.0.1")));
        assert!(n.contains(ip("::ffff:10.1.0.9")));
        assert!(!n.contains(ip("::1")));
        let n = Cidr::parse("192.168.1.128/25").unwrap();
        assert!(n.contains(ip("192.168.1.200")));
        assert!(!n.contains(ip("192.168.1.127")));
        let host = Cidr::parse("127.0.0.1").unwrap();
        assert!(host.contains(ip("127.0.0.1")) && !host.contains(ip("127.0.0.2")));
        let v6 = Cidr::parse("fd00::/8").unwrap();
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert!(Cidr::parse("::/0").unwrap().contains(ip("2001:db8::1")));
    }

    #[test]
    fn bad_networks_are_refused() {
        for bad in [
            "10.0.0.0/33",
            "::/129",
            "10.0.0/8",
            "x",
            "10.0.0.0/",
            "10.0.0.0/-1",
            "",
        ] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
    }
}

/// `allow` and `deny` of a listener or route: who may be served.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccessList {
    allow: Vec<Cidr>,
    deny: Vec<Cidr>,
}

impl AccessList {
    /// The list from the config's networks (checked with the config; one that does
    /// not parse is left out); `None` when both are empty.
    pub fn build(allow: &[String], deny: &[String]) -> Option<Self> {
        let parse = |v: &[String]| v.iter().filter_map(|n| Cidr::parse(n).ok()).collect();
        let list = Self {
            allow: parse(allow),
            deny: parse(deny),
        };
        (!list.allow.is_empty() || !list.deny.is_empty()).then_some(list)
    }

    /// Whether `ip` may be served: not in `deny`, and in `allow` when it lists any.
    /// As nginx's `deny` before `allow`, with an implicit "deny all" once `allow`
    /// names someone.
    pub fn permits(&self, ip: IpAddr) -> bool {
        !self.deny.iter().any(|n| n.contains(ip))
            && (self.allow.is_empty() || self.allow.iter().any(|n| n.contains(ip)))
    }
}

#[cfg(test)]
mod access_tests {
    use super::AccessList;

    fn list(allow: &[&str], deny: &[&str]) -> AccessList {
        let own = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        AccessList::build(&own(allow), &own(deny)).expect("a list")
    }

    #[test]
    fn deny_wins_and_allow_closes_the_rest() {
        let l = list(&["10.0.0.0/8", "2001:db8::/32"], &["10.9.0.0/16"]);
        assert!(l.permits("10.1.2.3".parse().unwrap()));
        assert!(!l.permits("10.9.2.3".parse().unwrap()));
        assert!(!l.permits("192.0.2.1".parse().unwrap()));
        assert!(l.permits("2001:db8::1".parse().unwrap()));
        assert!(!l.permits("2001:db9::1".parse().unwrap()));
        // An IPv4 network matches the IPv4-mapped IPv6 form of its addresses.
        assert!(l.permits("::ffff:10.1.2.3".parse().unwrap()));
        let only_deny = list(&[], &["192.0.2.0/24"]);
        assert!(only_deny.permits("198.51.100.1".parse().unwrap()));
        assert!(!only_deny.permits("192.0.2.77".parse().unwrap()));
        assert_eq!(AccessList::build(&[], &[]), None);
    }
}
