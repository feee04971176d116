//! Rewriting a head for the other side, into one buffer so it leaves in one write.
//! Which fields cross, and the forwarding fields, are decided once for every codec
//! in [`crate::forward`]; this module only writes them as HTTP/1.1. The framing field
//! is written from the decided [`Framing`], never copied, so what the next hop reads
//! is exactly what was checked here (a response without a body keeps the backend's
//! checked `Content-Length`, which then frames nothing).

use super::head::{parse_length, trim};
use super::Framing;
use crate::forward::{request_fields, response_fields, Forwarded, Hop};

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
    framing_field(out, body);
    request_fields(fields, Hop::H1, host, fwd, |name, value| {
        out.extend_from_slice(name);
        out.extend_from_slice(b": ");
        value.write_to(out);
        out.extend_from_slice(b"\r\n");
    });
    out.extend_from_slice(b"\r\n");
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
    response_fields(fields.clone(), Hop::H1, |name, value| {
        field(out, name, value)
    });
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
