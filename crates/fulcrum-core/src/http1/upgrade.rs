//! Protocol upgrades (RFC 9110 §7.8) across the proxy: which protocol of a client's
//! `Upgrade` a route lets through, whether a backend's `101` agrees to it, and the
//! heads that carry `Connection: upgrade` for that one hop.
//!
//! `Upgrade` and `Connection` are hop-by-hop, so the usual rewrite drops them; an
//! allowed upgrade puts back exactly one protocol, chosen here, never the client's
//! list as sent.

use super::head::trim;
use super::rewrite::{write_request_head, write_response_head};
use super::Framing;
use crate::forward::Forwarded;

/// The protocols a client's `Upgrade` fields offer, in its order (empty ones skipped).
fn offered<'a, I>(fields: I) -> impl Iterator<Item = &'a [u8]>
where
    I: Iterator<Item = (&'a [u8], &'a [u8])>,
{
    fields
        .filter(|(n, _)| n.eq_ignore_ascii_case(b"upgrade"))
        .flat_map(|(_, v)| v.split(|&b| b == b','))
        .map(trim)
        .filter(|p| !p.is_empty())
}

/// A protocol's name without its `/version`.
fn name(protocol: &[u8]) -> &[u8] {
    protocol.split(|&b| b == b'/').next().unwrap_or_default()
}

/// The first protocol the client offers that `allowed` lists (names compared in any
/// case; an allowed entry with a version must match it exactly).
pub fn choose<'a, I, S>(fields: I, allowed: &[S]) -> Option<&'a [u8]>
where
    I: Iterator<Item = (&'a [u8], &'a [u8])>,
    S: AsRef<str>,
{
    offered(fields).find(|p| {
        allowed.iter().any(|a| {
            let a = a.as_ref().as_bytes();
            if a.contains(&b'/') {
                p.eq_ignore_ascii_case(a)
            } else {
                name(p).eq_ignore_ascii_case(a)
            }
        })
    })
}

/// Whether a `101` response with `fields` switches to `asked` (same protocol name):
/// a backend switching to anything else would leave both ends speaking apart.
pub fn is_accepted<'a, I>(fields: I, asked: &[u8]) -> bool
where
    I: Iterator<Item = (&'a [u8], &'a [u8])>,
{
    let mut offered = offered(fields);
    matches!((offered.next(), offered.next()), (Some(p), None) if name(p).eq_ignore_ascii_case(name(asked)))
}

/// Writes `Connection: upgrade` and `Upgrade: protocol`, ending the head.
fn end_with_upgrade(out: &mut Vec<u8>, protocol: &[u8]) {
    // Both writers end the head with an empty line: reopen it.
    if out.ends_with(b"\r\n\r\n") {
        out.truncate(out.len() - 2);
    }
    out.extend_from_slice(b"connection: upgrade\r\nupgrade: ");
    out.extend_from_slice(protocol);
    out.extend_from_slice(b"\r\n\r\n");
}

/// Writes a request head for a backend as [`write_request_head`] does, asking it to
/// switch to `protocol`. An upgrade request carries no body.
pub fn write_upgrade_request<'a, I>(
    out: &mut Vec<u8>,
    method: &[u8],
    target: &[u8],
    host: &[u8],
    fields: I,
    fwd: &Forwarded<'_>,
    protocol: &[u8],
) where
    I: Iterator<Item = (&'a [u8], &'a [u8])> + Clone,
{
    write_request_head(out, method, target, host, fields, Framing::Empty, fwd);
    end_with_upgrade(out, protocol);
}

/// Writes the `101 Switching Protocols` head for a client: the backend's end-to-end
/// fields, then the one protocol both sides agreed on.
pub fn write_switching_head<'a, I>(out: &mut Vec<u8>, fields: I, protocol: &[u8])
where
    I: Iterator<Item = (&'a [u8], &'a [u8])> + Clone,
{
    write_response_head(out, 101, fields, Framing::Empty, false, false);
    end_with_upgrade(out, protocol);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f<'a>(list: &'a [(&'a str, &'a str)]) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + Clone {
        list.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes()))
    }

    #[test]
    fn choose_takes_the_first_allowed_in_client_order() {
        let allowed = ["websocket", "foo/2"];
        let fields = [("Upgrade", "h2c, WebSocket"), ("upgrade", "foo/2")];
        assert_eq!(choose(f(&fields), &allowed), Some(&b"WebSocket"[..]));
        assert_eq!(choose(f(&[("Upgrade", "h2c")]), &allowed), None);
        assert_eq!(choose(f(&[("Upgrade", "foo/1")]), &allowed), None);
        assert_eq!(
            choose(f(&[("Upgrade", " foo/2 ")]), &allowed),
            Some(&b"foo/2"[..])
        );
        assert_eq!(
            choose(f(&[("Upgrade", "websocket/13")]), &allowed),
            Some(&b"websocket/13"[..])
        );
        assert_eq!(choose(f(&[("Upgrade", "websocket")]), &[] as &[&str]), None);
        assert_eq!(choose(f(&[("X-Upgrade", "websocket")]), &allowed), None);
    }

    #[test]
    fn a_101_must_name_the_asked_protocol_alone() {
        assert!(is_accepted(f(&[("Upgrade", "WebSocket")]), b"websocket"));
        assert!(!is_accepted(f(&[("Upgrade", "h2c")]), b"websocket"));
        assert!(!is_accepted(f(&[]), b"websocket"));
        assert!(!is_accepted(
            f(&[("Upgrade", "websocket, h2c")]),
            b"websocket"
        ));
    }

    #[test]
    fn heads_carry_one_upgrade_and_no_client_hop_fields() {
        let fwd = Forwarded {
            original_host: None,
            keep_chain: false,
            client_ip: "10.0.0.1",
            proto: "http",
            via_version: "1.1",
        };
        let fields = [
            ("Connection", "keep-alive, Upgrade, X-Secret"),
            ("Upgrade", "h2c, websocket"),
            ("X-Secret", "1"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ];
        let mut out = Vec::new();
        write_upgrade_request(
            &mut out,
            b"GET",
            b"/chat",
            b"example.com",
            f(&fields),
            &fwd,
            b"websocket",
        );
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with("GET /chat HTTP/1.1\r\nhost: example.com\r\n"),
            "{text}"
        );
        assert!(
            text.ends_with("connection: upgrade\r\nupgrade: websocket\r\n\r\n"),
            "{text}"
        );
        assert_eq!(text.matches("\r\n\r\n").count(), 1, "{text}");
        assert!(
            !text.contains("X-Secret") && !text.contains("h2c"),
            "{text}"
        );
        assert!(
            text.contains("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"),
            "{text}"
        );
        assert!(
            !text.to_ascii_lowercase().contains("content-length"),
            "{text}"
        );

        let mut out = Vec::new();
        let resp = [
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        ];
        write_switching_head(&mut out, f(&resp), b"websocket");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
             connection: upgrade\r\nupgrade: websocket\r\n\r\n"
        );
    }
}
