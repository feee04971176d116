//! Who the client is when the peer is a proxy of the operator's (`trusted_proxies`):
//! the address that proxy (and any trusted one before it) says it forwarded for.
//! From any other peer, `X-Forwarded-For` and `Forwarded` say nothing: a client
//! can write them.

use std::net::IpAddr;

use super::headers::same_name;
use crate::config::Cidr;

/// The client of a request from `peer` with `fields`: the peer itself unless it is
/// in `trusted`; then the rightmost address of `X-Forwarded-For` (or, without one,
/// of `Forwarded`'s `for=`) that is not itself trusted, walking leftwards past
/// trusted ones. A value that does not parse stops the walk at what was read so
/// far (a client cannot slip an address past a garbled entry).
pub fn client_address<'a, I>(peer: IpAddr, fields: I, trusted: &[Cidr]) -> IpAddr
where
    I: Iterator<Item = (&'a [u8], &'a [u8])> + Clone,
{
    let is_trusted = |ip: IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let xff: Vec<&[u8]> = fields
        .clone()
        .filter(|(n, _)| same_name(n, b"x-forwarded-for"))
        .flat_map(|(_, v)| v.split(|b| *b == b','))
        .collect();
    let chain: Vec<Option<IpAddr>> = if xff.is_empty() {
        fields
            .filter(|(n, _)| same_name(n, b"forwarded"))
            .flat_map(|(_, v)| v.split(|b| *b == b','))
            .map(forwarded_for)
            .collect()
    } else {
        xff.into_iter().map(|a| parse_ip(a.trim_ascii())).collect()
    };
    let mut client = peer;
    for hop in chain.into_iter().rev() {
        let Some(ip) = hop else { break };
        client = ip;
        if !is_trusted(ip) {
            break;
        }
    }
    client
}

/// The address of one `Forwarded` element's `for=` (RFC 7239 §6: a quoted
/// `"[v6]:port"`, `v4:port`, or an obfuscated name, which is no address).
fn forwarded_for(element: &[u8]) -> Option<IpAddr> {
    element.split(|b| *b == b';').find_map(|pair| {
        let pair = pair.trim_ascii();
        let (name, value) = pair.split_at(pair.iter().position(|b| *b == b'=')?);
        if !name.eq_ignore_ascii_case(b"for") {
            return None;
        }
        let value = value.get(1..)?.trim_ascii();
        let value = value
            .strip_prefix(b"\"")
            .and_then(|v| v.strip_suffix(b"\""))
            .unwrap_or(value);
        parse_ip(value)
    })
}

/// An address as proxies write it: bare, `[v6]`, `[v6]:port` or `v4:port`.
fn parse_ip(text: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(text).ok()?;
    if let Ok(ip) = text.parse() {
        return Some(ip);
    }
    if let Some(rest) = text.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    let (host, port) = text.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(v: &[&str]) -> Vec<Cidr> {
        v.iter()
            .map(|n| Cidr::parse(n).expect("a network"))
            .collect()
    }

    fn client(peer: &str, fields: &[(&str, &str)], trusted: &[&str]) -> String {
        let f: Vec<(&[u8], &[u8])> = fields
            .iter()
            .map(|(n, v)| (n.as_bytes(), v.as_bytes()))
            .collect();
        client_address(peer.parse().unwrap(), f.iter().copied(), &nets(trusted)).to_string()
    }

    #[test]
    fn only_a_trusted_peer_is_believed() {
        let xff = [("X-Forwarded-For", "203.0.113.9")];
        assert_eq!(
            client("198.51.100.1", &xff, &["10.0.0.0/8"]),
            "198.51.100.1"
        );
        assert_eq!(client("10.0.0.2", &xff, &["10.0.0.0/8"]), "203.0.113.9");
    }

    #[test]
    fn the_walk_stops_at_the_first_untrusted_hop() {
        // A client wrote "1.2.3.4" itself; the trusted proxies appended the rest.
        let xff = [
            ("x-forwarded-for", "1.2.3.4, 203.0.113.9"),
            ("x_forwarded_for", "10.0.0.5"),
        ];
        assert_eq!(client("10.0.0.2", &xff, &["10.0.0.0/8"]), "203.0.113.9");
        // Every hop trusted: the leftmost one.
        let all = [("x-forwarded-for", "10.1.1.1, 10.0.0.5")];
        assert_eq!(client("10.0.0.2", &all, &["10.0.0.0/8"]), "10.1.1.1");
        // Garbage stops the walk where it is.
        let bad = [("x-forwarded-for", "203.0.113.9, nonsense, 10.0.0.5")];
        assert_eq!(client("10.0.0.2", &bad, &["10.0.0.0/8"]), "10.0.0.5");
    }

    #[test]
    fn forwarded_is_read_when_there_is_no_x_forwarded_for() {
        let fwd = [(
            "Forwarded",
            "for=\"[2001:db8::7]:4711\";proto=https, for=10.0.0.5",
        )];
        assert_eq!(client("10.0.0.2", &fwd, &["10.0.0.0/8"]), "2001:db8::7");
        let v4 = [("forwarded", "for=192.0.2.60:1234;by=10.0.0.1")];
        assert_eq!(client("10.0.0.2", &v4, &["10.0.0.0/8"]), "192.0.2.60");
        let hidden = [("forwarded", "for=_hidden")];
        assert_eq!(client("10.0.0.2", &hidden, &["10.0.0.0/8"]), "10.0.0.2");
    }
}
