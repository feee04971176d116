//! The text format: `PROXY <TCP4|TCP6|UNKNOWN> <src> <dst> <sport> <dport>\r\n`.
//!
//! The line ends at its first CR, which must be followed by LF, within 107 bytes.
//! Fields are checked as they arrive: a field followed by a space (or the CRLF) must be
//! whole and valid, and the field still arriving must be a prefix of a valid one.
//! After `UNKNOWN`, anything but CR and LF may follow, as the spec asks receivers to
//! ignore it.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::{as_v6, Error, Header, V1_MAX_LEN};

/// What every v1 header starts with.
pub(super) const SIGNATURE: &[u8] = b"PROXY ";

/// Longest textual IPv6 address: eight groups, the last two as a dotted quad.
const MAX_IPV6_TEXT: usize = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255".len();

/// Parses a v1 header; see [`super::parse`].
pub(super) fn parse(buf: &[u8]) -> Result<Option<Header>, Error> {
    // A CR past this point would leave no room for its LF within the limit.
    let window = &buf[..buf.len().min(V1_MAX_LEN - 1)];
    let Some(end) = window.iter().position(|&b| b == b'\r' || b == b'\n') else {
        check_line(window, false)?;
        return if buf.len() >= V1_MAX_LEN - 1 {
            Err(Error::V1TooLong)
        } else {
            Ok(None)
        };
    };
    let line = &window[..end];
    match (window[end], buf.get(end + 1)) {
        (b'\r', Some(b'\n')) => {
            let addresses = check_line(line, true)?;
            Ok(Some(Header {
                len: end + 2,
                addresses,
            }))
        }
        (b'\r', None) => check_line(line, false).map(|_| None),
        // A lone CR or LF: report a bad field first, as it says more.
        _ => check_line(line, false).and(Err(Error::V1LineEnd)),
    }
}

/// Checks a header line without its CRLF. With `complete`, the CRLF followed and every
/// field must be whole; without it, the last field may still be arriving. Returns the
/// addresses of a complete `TCP4`/`TCP6` line and `None` otherwise.
fn check_line(line: &[u8], complete: bool) -> Result<Option<(SocketAddr, SocketAddr)>, Error> {
    let (magic, rest) = next_field(line);
    if !is_token(magic, b"PROXY", rest.is_some() || complete) {
        return Err(Error::V1Signature);
    }
    let Some(rest) = rest else {
        return missing(complete);
    };
    let (protocol, mut rest) = next_field(rest);
    if rest.is_none() && !complete {
        return if [&b"TCP4"[..], b"TCP6", b"UNKNOWN"]
            .iter()
            .any(|t| t.starts_with(protocol))
        {
            Ok(None)
        } else {
            Err(Error::V1Protocol)
        };
    }
    let v6 = match protocol {
        b"TCP4" => false,
        b"TCP6" => true,
        b"UNKNOWN" => return Ok(None),
        _ => return Err(Error::V1Protocol),
    };
    let mut ips = [IpAddr::V4(Ipv4Addr::UNSPECIFIED); 2];
    let mut ports = [0u16; 2];
    for i in 0..4 {
        let Some(r) = rest else {
            return missing(complete);
        };
        let (field, next) = next_field(r);
        let closed = next.is_some() || complete;
        if i < 2 {
            match address(field, v6, closed)? {
                Some(ip) => ips[i] = ip,
                None => return Ok(None),
            }
        } else {
            ports[i - 2] = port(field, closed)?;
            if !closed {
                return Ok(None);
            }
        }
        rest = next;
    }
    if rest.is_some() {
        // A space after the destination port: an extra field or a trailing space.
        return Err(Error::V1Fields);
    }
    Ok(Some((
        SocketAddr::new(ips[0], ports[0]),
        SocketAddr::new(ips[1], ports[1]),
    )))
}

/// A line that stopped before its last field: fine while more may come.
fn missing<T>(complete: bool) -> Result<Option<T>, Error> {
    if complete {
        Err(Error::V1Fields)
    } else {
        Ok(None)
    }
}

/// Splits off the field before the first space; the rest is `None` when there is no
/// space (the field is the last so far).
fn next_field(s: &[u8]) -> (&[u8], Option<&[u8]>) {
    match s.iter().position(|&b| b == b' ') {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    }
}

/// Whether `field` is `token` (when closed) or could still become it.
fn is_token(field: &[u8], token: &[u8], closed: bool) -> bool {
    if closed {
        field == token
    } else {
        token.starts_with(field)
    }
}

/// A closed address field parsed, or `None` for a valid prefix of one.
fn address(field: &[u8], v6: bool, closed: bool) -> Result<Option<IpAddr>, Error> {
    if !closed {
        let ok = if v6 {
            field.len() <= MAX_IPV6_TEXT
                && field
                    .iter()
                    .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        } else {
            is_ipv4_prefix(field)
        };
        return if ok { Ok(None) } else { Err(Error::V1Address) };
    }
    // std's parsers are strict: four decimal octets without leading zeros for IPv4,
    // RFC 4291 text without a zone for IPv6.
    let text = std::str::from_utf8(field).map_err(|_| Error::V1Address)?;
    let ip = if v6 {
        text.parse::<Ipv6Addr>().map(IpAddr::V6)
    } else {
        text.parse::<Ipv4Addr>().map(IpAddr::V4)
    };
    ip.map(Some).map_err(|_| Error::V1Address)
}

/// Whether `field` can still become a dotted quad: at most four dot-separated parts of
/// one to three digits, each at most 255 and without a leading zero (the last part may
/// be empty, its digits not yet read).
fn is_ipv4_prefix(field: &[u8]) -> bool {
    let parts = field.split(|&b| b == b'.').count();
    parts <= 4
        && field.split(|&b| b == b'.').enumerate().all(|(i, part)| {
            (!part.is_empty() || i + 1 == parts)
                && part.len() <= 3
                && part.iter().all(u8::is_ascii_digit)
                && !(part.len() > 1 && part[0] == b'0')
                && decimal(part) <= 255
        })
}

/// A port: decimal 0-65535 without leading zeros. An unclosed field is checked as a
/// prefix (it may be empty) and its value is meaningless.
fn port(field: &[u8], closed: bool) -> Result<u16, Error> {
    let ok = field.len() <= 5
        && !(closed && field.is_empty())
        && field.iter().all(u8::is_ascii_digit)
        && !(field.len() > 1 && field[0] == b'0');
    if !ok {
        return Err(Error::V1Port);
    }
    u16::try_from(decimal(field)).map_err(|_| Error::V1Port)
}

/// The value of a short run of ASCII digits (callers bound the length, so it cannot
/// overflow).
fn decimal(digits: &[u8]) -> u32 {
    digits
        .iter()
        .fold(0, |n, &d| n * 10 + u32::from(d.wrapping_sub(b'0')))
}

/// Appends a v1 header for a TCP connection from `src` to `dst`.
///
/// Mixed families (one IPv4, one IPv6) are written as `TCP6` with the IPv4 address
/// v4-mapped (`::ffff:a.b.c.d`), as HAProxy does, so the addresses survive; the
/// receiver sees IPv6 addresses.
pub fn write(out: &mut Vec<u8>, src: SocketAddr, dst: SocketAddr) {
    // Writing into a Vec cannot fail, so the io::Result is always Ok.
    let _ = match (src, dst) {
        (SocketAddr::V4(s), SocketAddr::V4(d)) => write!(
            out,
            "PROXY TCP4 {} {} {} {}\r\n",
            s.ip(),
            d.ip(),
            s.port(),
            d.port()
        ),
        _ => write!(
            out,
            "PROXY TCP6 {} {} {} {}\r\n",
            as_v6(src),
            as_v6(dst),
            src.port(),
            dst.port()
        ),
    };
}

#[cfg(test)]
#[path = "v1_tests.rs"]
mod tests;
