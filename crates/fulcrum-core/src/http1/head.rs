//! Request and response heads: parsed with httparse, kept as offsets into the read
//! buffer (no copy), with the body framing decided once by RFC 9112's rules.

use super::{Framing, Version};

/// Header slots handed to httparse; more headers than this is a 431.
const MAX_HEADERS: usize = 100;

/// A byte range in the buffer a head was parsed from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Span {
    start: u32,
    end: u32,
}

impl Span {
    /// The span of `part`, which must be a sub-slice of `buf`; anything else (which
    /// httparse never hands back) gives an empty span rather than arbitrary bytes.
    fn of(buf: &[u8], part: &[u8]) -> Self {
        let start = (part.as_ptr() as usize).wrapping_sub(buf.as_ptr() as usize);
        let inside = start <= buf.len() && part.len() <= buf.len() - start;
        match (u32::try_from(start), u32::try_from(start + part.len())) {
            (Ok(start), Ok(end)) if inside => Self { start, end },
            _ => Self::default(),
        }
    }

    /// The bytes of this span in `buf` (the buffer the head was parsed from).
    pub fn get<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        buf.get(self.start as usize..self.end as usize)
            .unwrap_or_default()
    }
}

/// One header field as spans.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    /// Name, as received (case preserved).
    pub name: Span,
    /// Value, without surrounding whitespace.
    pub value: Span,
}

/// Why a head was refused. Requests map these to 400 or 431, responses to 502.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    /// Head larger than the limit, or too many fields (431 for requests).
    #[error("header section too large")]
    TooLarge,
    /// Not valid HTTP/1.x, or framing a peer could read differently.
    #[error("malformed: {0}")]
    Malformed(&'static str),
}

/// A parsed request head; spans point into the buffer it was parsed from.
#[derive(Clone, Debug)]
pub struct RequestHead {
    /// Bytes taken by the head, including the final CRLF.
    pub len: usize,
    /// Method token.
    pub method: Span,
    /// Request target as sent (origin-form, absolute-form, `*` or authority-form).
    pub target: Span,
    /// HTTP/1.0 or HTTP/1.1.
    pub version: Version,
    /// Every field in order.
    pub fields: Vec<Field>,
    /// How the body is framed (never `UntilClose` for a request).
    pub body: Framing,
    /// The Host field's value, when present.
    pub host: Option<Span>,
    /// Whether the client wants the connection kept open afterwards.
    pub keep_alive: bool,
    /// `Expect: 100-continue` was sent.
    pub expect_continue: bool,
    /// `Connection: upgrade` with an `Upgrade` field.
    pub upgrade: bool,
}

/// A parsed response head; spans point into the buffer it was parsed from.
#[derive(Clone, Debug)]
pub struct ResponseHead {
    /// Bytes taken by the head, including the final CRLF.
    pub len: usize,
    /// Status code.
    pub status: u16,
    /// HTTP/1.0 or HTTP/1.1.
    pub version: Version,
    /// Every field in order.
    pub fields: Vec<Field>,
    /// How the body is framed.
    pub body: Framing,
    /// Whether the connection may carry another request afterwards.
    pub keep_alive: bool,
}

/// Facts gathered from the fields that decide framing and connection handling.
#[derive(Default)]
struct Scan {
    content_length: Option<u64>,
    transfer_encoding: bool,
    chunked_last: bool,
    te_other: bool,
    host: Option<Span>,
    hosts: u32,
    close: bool,
    keep_alive: bool,
    upgrade_token: bool,
    upgrade_field: bool,
    expect_continue: bool,
}

fn scan(
    buf: &[u8],
    headers: &[httparse::Header<'_>],
    fields: &mut Vec<Field>,
) -> Result<Scan, HeadError> {
    let mut s = Scan::default();
    for h in headers {
        let value = trim(h.value);
        fields.push(Field {
            name: Span::of(buf, h.name.as_bytes()),
            value: Span::of(buf, value),
        });
        let name = h.name;
        if name.eq_ignore_ascii_case("content-length") {
            for part in value.split(|&b| b == b',') {
                let n = parse_length(trim(part))
                    .ok_or(HeadError::Malformed("invalid content-length"))?;
                match s.content_length {
                    Some(prev) if prev != n => {
                        return Err(HeadError::Malformed("conflicting content-length"))
                    }
                    _ => s.content_length = Some(n),
                }
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            // The field's presence counts even when its list is empty: a peer that
            // keys on the name alone would otherwise read a body we think is absent.
            s.transfer_encoding = true;
            let mut codings = 0;
            for coding in value.split(|&b| b == b',').map(trim) {
                if coding.is_empty() {
                    continue;
                }
                codings += 1;
                if s.chunked_last {
                    // A coding after chunked: the body would not end where chunked says.
                    s.te_other = true;
                }
                if coding.eq_ignore_ascii_case(b"chunked") {
                    if s.chunked_last {
                        s.te_other = true;
                    }
                    s.chunked_last = true;
                } else {
                    s.te_other = true;
                    s.chunked_last = false;
                }
            }
            if codings == 0 {
                // An empty field line reads as "no coding" to some peers and is
                // invalid to others (RFC 9112 §6.1 wants at least one).
                s.te_other = true;
            }
        } else if name.eq_ignore_ascii_case("host") {
            s.hosts += 1;
            s.host = Some(Span::of(buf, value));
        } else if name.eq_ignore_ascii_case("connection") {
            for token in value.split(|&b| b == b',').map(trim) {
                if token.eq_ignore_ascii_case(b"close") {
                    s.close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    s.keep_alive = true;
                } else if token.eq_ignore_ascii_case(b"upgrade") {
                    s.upgrade_token = true;
                }
            }
        } else if name.eq_ignore_ascii_case("upgrade") {
            s.upgrade_field = true;
        } else if name.eq_ignore_ascii_case("expect") && value.eq_ignore_ascii_case(b"100-continue")
        {
            s.expect_continue = true;
        }
    }
    Ok(s)
}

/// The length of a complete head from httparse's answer, `None` while incomplete,
/// with the size limit and the bare-LF rule (httparse accepts bare LF) applied.
fn complete(
    buf: &[u8],
    max: usize,
    parsed: httparse::Result<usize>,
) -> Result<Option<usize>, HeadError> {
    let len = match parsed {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= max => return Err(HeadError::TooLarge),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(e) => return Err(HeadError::Malformed(httparse_reason(e))),
    };
    if len > max {
        return Err(HeadError::TooLarge);
    }
    if has_bare_lf(buf.get(..len).unwrap_or_default()) {
        return Err(HeadError::Malformed("bare LF line ending"));
    }
    Ok(Some(len))
}

/// Parses a request head from the start of `buf`.
///
/// `Ok(None)` means more bytes are needed. A head longer than `max`, or still
/// incomplete when `buf` holds `max` bytes, is [`HeadError::TooLarge`].
pub fn parse_request(buf: &[u8], max: usize) -> Result<Option<RequestHead>, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let Some(len) = complete(buf, max, req.parse(buf))? else {
        return Ok(None);
    };
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(HeadError::Malformed("incomplete request line"));
    };
    let version = if minor == 1 {
        Version::Http11
    } else {
        Version::Http10
    };
    let mut fields = Vec::with_capacity(req.headers.len());
    let s = scan(buf, req.headers, &mut fields)?;

    let body = if s.transfer_encoding {
        if s.content_length.is_some() {
            return Err(HeadError::Malformed(
                "both content-length and transfer-encoding",
            ));
        }
        if version == Version::Http10 {
            return Err(HeadError::Malformed(
                "transfer-encoding in an HTTP/1.0 request",
            ));
        }
        if s.te_other || !s.chunked_last {
            return Err(HeadError::Malformed("unsupported transfer-encoding"));
        }
        Framing::Chunked
    } else {
        match s.content_length {
            Some(0) | None => Framing::Empty,
            Some(n) => Framing::Length(n),
        }
    };
    if s.hosts > 1 {
        return Err(HeadError::Malformed("more than one host"));
    }
    if version == Version::Http11 && s.host.is_none() {
        return Err(HeadError::Malformed("missing host"));
    }
    if let Some(h) = s.host {
        if !valid_host(h.get(buf)) {
            return Err(HeadError::Malformed("invalid host"));
        }
    }
    let keep_alive = match version {
        Version::Http11 => !s.close,
        Version::Http10 => s.keep_alive && !s.close,
    };
    Ok(Some(RequestHead {
        len,
        method: Span::of(buf, method.as_bytes()),
        target: Span::of(buf, target.as_bytes()),
        version,
        fields,
        body,
        host: s.host,
        keep_alive,
        // RFC 9110 §10.1.1 and §7.8: HTTP/1.0 requests cannot expect 100 or upgrade.
        expect_continue: version == Version::Http11 && s.expect_continue,
        upgrade: version == Version::Http11 && s.upgrade_token && s.upgrade_field,
    }))
}

/// Parses a response head from the start of `buf`; `head_request` says whether it
/// answers a HEAD (whose response never has a body, whatever its fields say).
pub fn parse_response(
    buf: &[u8],
    max: usize,
    head_request: bool,
) -> Result<Option<ResponseHead>, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut res = httparse::Response::new(&mut headers);
    let Some(len) = complete(buf, max, res.parse(buf))? else {
        return Ok(None);
    };
    let (Some(status), Some(minor)) = (res.code, res.version) else {
        return Err(HeadError::Malformed("incomplete status line"));
    };
    if status < 100 {
        // httparse takes any three digits; `000` would be re-sent as a broken line.
        return Err(HeadError::Malformed("invalid status"));
    }
    let version = if minor == 1 {
        Version::Http11
    } else {
        Version::Http10
    };
    let mut fields = Vec::with_capacity(res.headers.len());
    let s = scan(buf, res.headers, &mut fields)?;
    let mut keep_alive = match version {
        Version::Http11 => !s.close,
        Version::Http10 => s.keep_alive && !s.close,
    };
    if s.transfer_encoding {
        // Refused whatever the status: even where no body follows, the head is one a
        // peer could frame differently (RFC 9112 §6.1 calls both cases faulty).
        if s.content_length.is_some() {
            return Err(HeadError::Malformed(
                "both content-length and transfer-encoding",
            ));
        }
        if version == Version::Http10 {
            return Err(HeadError::Malformed(
                "transfer-encoding in an HTTP/1.0 response",
            ));
        }
        // RFC 9112 §6.3 would read another coding until close, but Transfer-Encoding
        // is hop-by-hop and not forwarded, so the client could not decode the body.
        if s.te_other || !s.chunked_last {
            return Err(HeadError::Malformed("unsupported transfer-encoding"));
        }
    }
    let body = if head_request || (100..200).contains(&status) || status == 204 || status == 304 {
        Framing::Empty
    } else if s.transfer_encoding {
        Framing::Chunked
    } else {
        match s.content_length {
            Some(0) => Framing::Empty,
            Some(n) => Framing::Length(n),
            None => Framing::UntilClose,
        }
    };
    if body == Framing::UntilClose {
        keep_alive = false;
    }
    Ok(Some(ResponseHead {
        len,
        status,
        version,
        fields,
        body,
        keep_alive,
    }))
}

impl RequestHead {
    /// Fields as `(name, value)` byte pairs.
    pub fn fields<'a>(
        &'a self,
        buf: &'a [u8],
    ) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + Clone + 'a {
        self.fields
            .iter()
            .map(move |f| (f.name.get(buf), f.value.get(buf)))
    }
}

impl ResponseHead {
    /// Fields as `(name, value)` byte pairs.
    pub fn fields<'a>(
        &'a self,
        buf: &'a [u8],
    ) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + Clone + 'a {
        self.fields
            .iter()
            .map(move |f| (f.name.get(buf), f.value.get(buf)))
    }
}

/// Whether a head has a line ending in LF alone. httparse accepts one; we refuse it,
/// because a peer in front of or behind us may not, and would end a line (or the
/// head) at another byte than we do.
fn has_bare_lf(head: &[u8]) -> bool {
    // Branch-free so that it vectorises: it runs over every head, and the obvious
    // `iter().any(..)` costs twice what httparse does.
    let mut bare = false;
    let mut prev = 0u8;
    for &b in head {
        bare |= (b == b'\n') & (prev != b'\r');
        prev = b;
    }
    bare
}

/// Digits only: no sign, no inner whitespace, no overflow.
pub(super) fn parse_length(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    v.iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// `uri-host [ ":" port ]` (RFC 9110 §7.2): a bracketed IP literal or a reg-name, then
/// digits only for the port; no userinfo. A comma is refused although RFC 3986 allows
/// it: a peer that joins repeated fields reads `Host: a, b` as two hosts, which is the
/// ambiguity that two Host fields are refused for.
fn valid_host(h: &[u8]) -> bool {
    const NAME_PUNCT: &[u8] = b"-._~%!$&'()*+;=";
    let name_char = |c: &u8| c.is_ascii_alphanumeric() || NAME_PUNCT.contains(c);
    let port = |p: &[u8]| match p {
        [] => true,
        [b':', digits @ ..] => digits.iter().all(u8::is_ascii_digit),
        _ => false,
    };
    if let Some(rest) = h.strip_prefix(b"[") {
        let Some(close) = rest.iter().position(|&c| c == b']') else {
            return false;
        };
        let literal = rest.get(..close).unwrap_or_default();
        return !literal.is_empty()
            && literal.iter().all(|c| name_char(c) || *c == b':')
            && port(rest.get(close + 1..).unwrap_or_default());
    }
    let colon = h.iter().position(|&c| c == b':').unwrap_or(h.len());
    let name = h.get(..colon).unwrap_or_default();
    !name.is_empty() && name.iter().all(name_char) && port(h.get(colon..).unwrap_or_default())
}

pub(crate) fn trim(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t'))
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t'))
        .map_or(start, |e| e + 1);
    v.get(start..end).unwrap_or_default()
}

fn httparse_reason(e: httparse::Error) -> &'static str {
    match e {
        httparse::Error::HeaderName => "invalid header name",
        httparse::Error::HeaderValue => "invalid header value",
        httparse::Error::NewLine => "invalid line ending",
        httparse::Error::Status => "invalid status",
        httparse::Error::Token => "invalid token",
        httparse::Error::Version => "invalid version",
        httparse::Error::TooManyHeaders => "too many headers",
    }
}

#[cfg(test)]
#[path = "head_tests.rs"]
mod tests;
