//! Rewriting a head for the other side, into one buffer so it leaves in one write.
//!
//! Hop-by-hop fields (RFC 9110 §7.6.1) never cross: `Connection` and every field it
//! names, `Keep-Alive`, `Proxy-Connection`, `TE`, `Transfer-Encoding`, `Upgrade`. The
//! framing field is written from the decided [`Framing`], never copied, so what the
//! next hop reads is exactly what was checked here (a response without a body keeps
//! the backend's checked `Content-Length`, which then frames nothing).
//!
//! Fields the proxy drops or sets are matched with an underscore standing for a dash:
//! CGI-style backends read `X_Forwarded_For` as `X-Forwarded-For`, so a client could
//! otherwise send a value that overrides the proxy's.

use super::head::{parse_length, trim};
use super::Framing;

/// What the proxy adds about the client when forwarding a request.
#[derive(Clone, Copy, Debug)]
pub struct Forwarded<'a> {
    /// The client's address, appended to `X-Forwarded-For`.
    pub client_ip: &'a str,
    /// `http` or `https`, set as `X-Forwarded-Proto`.
    pub proto: &'a str,
    /// The protocol version the client spoke (`1.0`, `1.1`, `2`), for `Via`.
    pub via_version: &'a str,
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
fn same_name(name: &[u8], lower: &[u8]) -> bool {
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
/// hop-by-hop fields, which spares the quadratic check on most requests.
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

fn field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

fn framing_field(out: &mut Vec<u8>, body: Framing) {
    match body {
        Framing::Length(n) => {
            out.extend_from_slice(b"content-length: ");
            out.extend_from_slice(n.to_string().as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        Framing::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        Framing::Empty | Framing::UntilClose => {}
    }
}

/// Writes an HTTP/1.1 request head for a backend.
///
/// `target` must be origin-form (the caller converts absolute-form); `host` is the
/// value to send as `Host` (the client's, unchanged). `body` is the framing the proxy
/// will send, `Framing::Length(0)` for methods that expect a body but have none.
pub fn write_request_head<'a, I>(
    out: &mut Vec<u8>,
    method: &[u8],
    target: &[u8],
    host: &[u8],
    fields: I,
    body: Framing,
    fwd: &Forwarded<'_>,
) where
    I: Iterator<Item = (&'a [u8], &'a [u8])> + Clone,
{
    out.extend_from_slice(method);
    out.push(b' ');
    out.extend_from_slice(target);
    out.extend_from_slice(b" HTTP/1.1\r\n");
    field(out, b"host", host);
    let check_named = names_other_fields(fields.clone());
    let mut xff: Vec<&[u8]> = Vec::new();
    let mut via: Vec<&[u8]> = Vec::new();
    for (name, value) in fields.clone() {
        if same_name(name, b"x-forwarded-for") {
            xff.push(value);
            continue;
        }
        if same_name(name, b"via") {
            via.push(value);
            continue;
        }
        if is_hop_by_hop(name)
            || same_name(name, b"host")
            || same_name(name, b"content-length")
            || same_name(name, b"expect")
            || same_name(name, b"x-forwarded-proto")
            || same_name(name, b"x-forwarded-host")
            || (check_named && named_by_connection(fields.clone(), name))
        {
            continue;
        }
        field(out, name, value);
    }
    framing_field(out, body);
    out.extend_from_slice(b"x-forwarded-for: ");
    for v in xff.iter().filter(|v| !v.is_empty()) {
        out.extend_from_slice(v);
        out.extend_from_slice(b", ");
    }
    out.extend_from_slice(fwd.client_ip.as_bytes());
    out.extend_from_slice(b"\r\n");
    field(out, b"x-forwarded-proto", fwd.proto.as_bytes());
    field(out, b"x-forwarded-host", host);
    out.extend_from_slice(b"via: ");
    for v in via.iter().filter(|v| !v.is_empty()) {
        out.extend_from_slice(v);
        out.extend_from_slice(b", ");
    }
    out.extend_from_slice(fwd.via_version.as_bytes());
    out.extend_from_slice(b" fulcrum\r\n\r\n");
}

/// Writes an HTTP/1.1 response head for a client. `close` adds `Connection: close`
/// (so does `Framing::UntilClose`, whose end only a close can mark); `keep_alive_10`
/// adds `Connection: keep-alive` for an HTTP/1.0 client kept open.
///
/// With `Framing::Empty` the backend's `Content-Length` is kept, canonical, except on
/// 1xx and 204: on a HEAD or 304 response it describes the representation, and on any
/// other it is 0, without which the client would read until close. A response the
/// proxy makes up with no body and no such field must pass `Framing::Length(0)`.
pub fn write_response_head<'a, I>(
    out: &mut Vec<u8>,
    status: u16,
    fields: I,
    body: Framing,
    close: bool,
    keep_alive_10: bool,
) where
    I: Iterator<Item = (&'a [u8], &'a [u8])> + Clone,
{
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(reason(status).as_bytes());
    out.extend_from_slice(b"\r\n");
    let check_named = names_other_fields(fields.clone());
    for (name, value) in fields.clone() {
        if is_hop_by_hop(name)
            || same_name(name, b"content-length")
            || (check_named && named_by_connection(fields.clone(), name))
        {
            continue;
        }
        field(out, name, value);
    }
    match body {
        Framing::Empty if status >= 200 && status != 204 => {
            if let Some(n) = content_length(fields) {
                framing_field(out, Framing::Length(n));
            }
        }
        _ => framing_field(out, body),
    }
    if close || body == Framing::UntilClose {
        out.extend_from_slice(b"connection: close\r\n");
    } else if keep_alive_10 {
        out.extend_from_slice(b"connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// The value of the `Content-Length` fields when they agree on one valid length.
fn content_length<'a, I>(fields: I) -> Option<u64>
where
    I: Iterator<Item = (&'a [u8], &'a [u8])>,
{
    let mut found = None;
    for (_, value) in fields.filter(|(n, _)| n.eq_ignore_ascii_case(b"content-length")) {
        for part in value.split(|&b| b == b',') {
            let n = parse_length(trim(part))?;
            if found.is_some_and(|prev| prev != n) {
                return None;
            }
            found = Some(n);
        }
    }
    found
}

/// The canonical reason phrase; a backend's own phrase is not forwarded (it may carry
/// bytes a client reads differently, and HTTP/2 has none).
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        102 => "Processing",
        103 => "Early Hints",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        207 => "Multi-Status",
        208 => "Already Reported",
        226 => "IM Used",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        423 => "Locked",
        424 => "Failed Dependency",
        425 => "Too Early",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        451 => "Unavailable For Legal Reasons",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        506 => "Variant Also Negotiates",
        507 => "Insufficient Storage",
        508 => "Loop Detected",
        511 => "Network Authentication Required",
        _ => "Status",
    }
}

#[cfg(test)]
#[path = "rewrite_tests.rs"]
mod tests;
