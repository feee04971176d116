//! The forwarding-header rules, once for every client codec and both backend legs.
//!
//! Hop-by-hop fields (RFC 9110 §7.6.1) never cross: `Connection` and every field it
//! names, `Keep-Alive`, `Proxy-Connection`, `TE`, `Transfer-Encoding`, `Upgrade`. One
//! exception: toward an HTTP/2 backend, `TE: trailers` is kept (RFC 9113 §8.2.2 allows
//! exactly that value), because gRPC servers built on C-core reset every call that
//! lacks it. Fulcrum then sets `X-Forwarded-For` (appended), `X-Forwarded-Proto`,
//! `X-Forwarded-Host` and `Via` (appended), dropping a client's own proto and host.
//!
//! Fields the proxy drops or sets are matched with an underscore standing for a dash:
//! CGI-style backends read `X_Forwarded_For` as `X-Forwarded-For`, so a client could
//! otherwise send a value that overrides the proxy's.

use crate::http1::trim;

/// What the proxy adds about the client when forwarding a request.
#[derive(Clone, Copy, Debug)]
pub struct Forwarded<'a> {
    /// The client's address, appended to `X-Forwarded-For`.
    pub client_ip: &'a str,
    /// `http` or `https`, set as `X-Forwarded-Proto`.
    pub proto: &'a str,
    /// The protocol version the client spoke (`1.0`, `1.1`, `2`), for `Via`.
    pub via_version: &'a str,
    /// The peer is a trusted proxy: its `X-Forwarded-For` chain and `Forwarded`
    /// go on (with `client_ip`, the peer, appended). Otherwise they are replaced:
    /// a client could have written them.
    pub keep_chain: bool,
    /// The client's host when the backend is sent another (a pool's `host`): it
    /// stays the `X-Forwarded-Host`.
    pub original_host: Option<&'a str>,
}

/// The protocol of the hop a message is written for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hop {
    /// HTTP/1.1: the framing field is written from the decided framing, never copied.
    H1,
    /// HTTP/2 (and HTTP/3): `Content-Length` is kept for the peer to check against the
    /// data, and `TE: trailers` may cross.
    H2,
}

/// A field value to emit: `earlier` values joined by `, `, then the parts of `last`
/// concatenated. Lets the HTTP/1.1 writer emit appended fields without building a
/// string.
#[derive(Clone, Copy, Debug)]
pub struct Value<'v> {
    /// Values received from earlier hops (empty ones skipped).
    pub earlier: &'v [&'v [u8]],
    /// This hop's value, in pieces.
    pub last: &'v [&'v [u8]],
}

impl<'v> Value<'v> {
    /// A value in one piece.
    pub fn plain(v: &'v [&'v [u8]]) -> Self {
        Self {
            earlier: &[],
            last: v,
        }
    }

    /// Appends the value's bytes to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        for v in self.earlier.iter().filter(|v| !v.is_empty()) {
            out.extend_from_slice(v);
            out.extend_from_slice(b", ");
        }
        for part in self.last {
            out.extend_from_slice(part);
        }
    }

    /// The value as one buffer.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        self.write_to(&mut out);
        out
    }
}

/// Whether a field never crosses a proxy (independent of `Connection`'s list). Case is
/// ignored and an underscore matches a dash (`Transfer_Encoding` counts too).
pub fn is_hop_by_hop(name: &[u8]) -> bool {
    const HOP: [&[u8]; 6] = [
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"transfer-encoding",
        b"upgrade",
    ];
    HOP.iter().any(|h| same_name(name, h))
}

/// Compares a received name with a lowercase one, an underscore matching a dash.
pub fn same_name(name: &[u8], lower: &[u8]) -> bool {
    name.len() == lower.len()
        && name
            .iter()
            .zip(lower)
            .all(|(&a, &b)| a.to_ascii_lowercase() == b || (a == b'_' && b == b'-'))
}

/// Whether `Connection`'s values name `name`.
fn named_by_connection<'a, I>(fields: I, name: &[u8]) -> bool
where
    I: Iterator<Item = (&'a [u8], &'a [u8])>,
{
    fields
        .filter(|(n, _)| same_name(n, b"connection"))
        .flat_map(|(_, v)| v.split(|&b| b == b','))
        .any(|token| trim(token).eq_ignore_ascii_case(name))
}

/// Whether `Connection` names a field that is not already hop-by-hop, so each field
/// must be checked against its list. The usual `keep-alive` and `upgrade` name only
/// hop-by-hop fields, which spares the quadratic check on most messages.
fn names_other_fields<'a, I>(fields: I) -> bool
where
    I: Iterator<Item = (&'a [u8], &'a [u8])>,
{
    fields
        .filter(|(n, _)| same_name(n, b"connection"))
        .flat_map(|(_, v)| v.split(|&b| b == b','))
        .any(|token| {
            let token = trim(token);
            !token.is_empty() && !is_hop_by_hop(token)
        })
}

/// Whether a `TE` value lists `trailers` (its only value that may cross to HTTP/2).
fn te_lists_trailers(value: &[u8]) -> bool {
    value.split(|&b| b == b',').any(|t| {
        trim(t.split(|&b| b == b';').next().unwrap_or_default()).eq_ignore_ascii_case(b"trailers")
    })
}

/// Visits the request fields to send to a backend over `hop`, then the forwarding
/// fields Fulcrum sets; `host` is the request's host (sent as `X-Forwarded-Host`).
///
/// Never emitted: `Host` (the HTTP/1.1 writer puts it first, HTTP/2 sends
/// `:authority`), `Expect` (Fulcrum answers `100-continue` itself), and on HTTP/1.1
/// `Content-Length` (written from the decided framing).
pub fn request_fields<'a, I, F>(fields: I, hop: Hop, host: &[u8], fwd: &Forwarded<'_>, mut emit: F)
where
    I: Iterator<Item = (&'a [u8], &'a [u8])> + Clone,
    F: FnMut(&[u8], Value<'_>),
{
    let check_named = names_other_fields(fields.clone());
    let mut xff: Vec<&[u8]> = Vec::new();
    let mut via: Vec<&[u8]> = Vec::new();
    let mut trailers = false;
    for (name, value) in fields.clone() {
        if same_name(name, b"x-forwarded-for") {
            if fwd.keep_chain {
                xff.push(value);
            }
            continue;
        }
        if same_name(name, b"forwarded") && !fwd.keep_chain {
            continue;
        }
        if same_name(name, b"via") {
            via.push(value);
            continue;
        }
        if same_name(name, b"te") {
            trailers |= te_lists_trailers(value);
            continue;
        }
        if is_hop_by_hop(name)
            || same_name(name, b"host")
            || (hop == Hop::H1 && same_name(name, b"content-length"))
            || same_name(name, b"expect")
            || same_name(name, b"x-forwarded-proto")
            || same_name(name, b"x-forwarded-host")
            || (check_named && named_by_connection(fields.clone(), name))
        {
            continue;
        }
        emit(name, Value::plain(&[value]));
    }
    if trailers && hop == Hop::H2 {
        emit(b"te", Value::plain(&[b"trailers"]));
    }
    emit(
        b"x-forwarded-for",
        Value {
            earlier: &xff,
            last: &[fwd.client_ip.as_bytes()],
        },
    );
    emit(b"x-forwarded-proto", Value::plain(&[fwd.proto.as_bytes()]));
    let host = fwd.original_host.map_or(host, str::as_bytes);
    emit(b"x-forwarded-host", Value::plain(&[host]));
    emit(
        b"via",
        Value {
            earlier: &via,
            last: &[fwd.via_version.as_bytes(), b" fulcrum"],
        },
    );
}

/// Visits the response fields to send to a client over `hop`: hop-by-hop and
/// `Connection`-named fields removed, and on HTTP/1.1 `Content-Length` too (the
/// writer frames the body itself).
pub fn response_fields<'a, I, F>(fields: I, hop: Hop, mut emit: F)
where
    I: Iterator<Item = (&'a [u8], &'a [u8])> + Clone,
    F: FnMut(&'a [u8], &'a [u8]),
{
    let check_named = names_other_fields(fields.clone());
    for (name, value) in fields.clone() {
        if is_hop_by_hop(name)
            || (hop == Hop::H1 && same_name(name, b"content-length"))
            || (check_named && named_by_connection(fields.clone(), name))
        {
            continue;
        }
        emit(name, value);
    }
}

#[cfg(test)]
#[path = "headers_tests.rs"]
mod tests;
