//! Header fields between HTTP/2's `HeaderMap` and the byte pairs every rule and
//! writer takes, and the framing decisions both codecs share. The forwarding rules
//! themselves are `fulcrum_core::forward`'s, once for every protocol.

use fulcrum_core::forward::{self, FieldList, Forwarded, Hop};
use fulcrum_core::http1::Framing;
use http::header::{HeaderMap, HeaderName, HeaderValue};

/// Request fields for an HTTP/2 backend, by the forwarding rules.
pub fn request_map<'a, I>(fields: I, host: &str, fwd: &Forwarded<'_>) -> HeaderMap
where
    I: Iterator<Item = (&'a [u8], &'a [u8])> + Clone,
{
    let mut map = HeaderMap::new();
    forward::request_fields(fields, Hop::H2, host.as_bytes(), fwd, |name, value| {
        let value = match (value.earlier, value.last) {
            ([], [one]) => HeaderValue::from_bytes(one),
            _ => HeaderValue::from_bytes(&value.to_vec()),
        };
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name), value) {
            map.append(n, v);
        }
    });
    map
}

/// Response fields for an HTTP/2 client, by the forwarding rules.
pub fn response_map<'a, I>(fields: I) -> HeaderMap
where
    I: Iterator<Item = (&'a [u8], &'a [u8])> + Clone,
{
    let mut map = HeaderMap::new();
    forward::response_fields(fields, Hop::H2, |name, value| {
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
            map.append(n, v);
        }
    });
    map
}

/// Fields of an `http` map as byte pairs (`HeaderMap`'s iterator cannot be cloned,
/// and the writers walk the fields more than once).
pub fn map_fields(map: &HeaderMap) -> Vec<(&[u8], &[u8])> {
    map.iter()
        .map(|(n, v)| (n.as_str().as_bytes(), v.as_bytes()))
        .collect()
}

/// The framing of an HTTP/2 message's body as an HTTP/1.1 peer would see it: its
/// content-length when valid, else chunked (or nothing when the stream already
/// ended).
pub fn map_framing(map: &HeaderMap, ended: bool) -> Framing {
    if ended {
        return Framing::Empty;
    }
    let len = map
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    len.map_or(Framing::Chunked, Framing::Length)
}

/// Whether a method carries a body by convention, so an empty one gets
/// `Content-Length: 0` (some servers answer 411 without it).
pub fn expects_body(method: &str) -> bool {
    matches!(method, "POST" | "PUT" | "PATCH")
}

/// The framing of an empty response body for an HTTP/1.1 client: `Content-Length: 0`
/// unless the status never has a body, so the client need not wait for a close.
pub fn empty_framing(status: u16) -> Framing {
    if (100..200).contains(&status) || status == 204 || status == 304 {
        Framing::Empty
    } else {
        Framing::Length(0)
    }
}

/// The framing an HTTP/1.1 client gets for a response whose body the backend framed
/// as `framing`: a HEAD keeps the announced length, an unknown length is chunked
/// for HTTP/1.1 and ends with a close for HTTP/1.0.
pub fn client_framing(
    framing: Framing,
    status: u16,
    fields: FieldList<'_>,
    is_head: bool,
    client_11: bool,
) -> Framing {
    match framing {
        Framing::Empty if is_head => fields
            .get(b"content-length")
            .and_then(|v| std::str::from_utf8(v).ok()?.trim().parse().ok())
            .map_or(Framing::Empty, Framing::Length),
        Framing::Empty => empty_framing(status),
        Framing::Length(n) => Framing::Length(n),
        Framing::Chunked | Framing::UntilClose if client_11 => Framing::Chunked,
        Framing::Chunked | Framing::UntilClose => Framing::UntilClose,
    }
}

/// Whether a response's body is an event stream (`text/event-stream`), which lives
/// while quiet by the route's `stream_idle_timeout` rather than `upstream_timeout`.
pub fn is_event_stream<'a>(mut fields: impl Iterator<Item = (&'a [u8], &'a [u8])>) -> bool {
    fields.any(|(n, v)| {
        n.eq_ignore_ascii_case(b"content-type")
            && v.get(..17)
                .is_some_and(|t| t.eq_ignore_ascii_case(b"text/event-stream"))
    })
}

/// A response compressed on its way: the fields it changes (`Content-Encoding`,
/// `Vary`, a weakened `ETag`; the length goes with the framing) and its encoder.
pub struct Coded {
    coding: Option<fulcrum_core::shape::encoding::Compression>,
    etag: Option<String>,
}

impl Coded {
    /// For a response with `fields`, compressed with `coding` when it is `Some`.
    pub fn new<'a>(
        coding: Option<fulcrum_core::shape::encoding::Compression>,
        mut fields: impl Iterator<Item = (&'a [u8], &'a [u8])>,
    ) -> Self {
        let etag = coding.and_then(|_| {
            let (_, v) = fields.find(|(n, _)| n.eq_ignore_ascii_case(b"etag"))?;
            let v = std::str::from_utf8(v).ok()?;
            Some(fulcrum_core::shape::encoding::weaken_etag(v).into_owned())
        });
        Self { coding, etag }
    }

    /// Whether the backend's field `name` goes on as it is.
    pub fn keeps(&self, name: &[u8]) -> bool {
        self.coding.is_none()
            || !(name.eq_ignore_ascii_case(b"etag") || name.eq_ignore_ascii_case(b"content-length"))
    }

    /// The fields added.
    pub fn fields(&self) -> impl Iterator<Item = (&[u8], &[u8])> + Clone {
        let coding = self.coding.map(|c| {
            [
                (&b"content-encoding"[..], c.coding.token().as_bytes()),
                (&b"vary"[..], &b"Accept-Encoding"[..]),
            ]
        });
        coding
            .into_iter()
            .flatten()
            .chain(self.etag.as_deref().map(|e| (&b"etag"[..], e.as_bytes())))
    }

    /// The body's encoder, when it is compressed.
    pub fn encoder(&self) -> Result<Option<super::body::Encoder>, super::Failed> {
        self.coding
            .map(super::body::Encoder::new)
            .transpose()
            .map_err(|e| super::ProxyError::BadResponse(format!("compressor: {e}")).into())
    }
}

/// A backend's response made ready for an HTTP/2 or HTTP/3 client: the head
/// `client_head` builds, and what streaming the body needs.
pub struct StreamHead {
    /// The head to send.
    pub head: http::Response<()>,
    /// The status, for the access log.
    pub status: u16,
    /// The body's framing (`Empty` for a HEAD request).
    pub framing: Framing,
    /// The body's compression.
    pub coded: Coded,
    /// Where the body comes from.
    pub body: super::ResponseBody,
    /// A gRPC call's deadline.
    pub deadline: Option<tokio::time::Instant>,
}

/// Splits `resp` into the head an HTTP/2 or HTTP/3 client gets and its body's parts.
pub fn stream_head(
    resp: super::Response,
    is_head: bool,
    request_id: Option<(&str, &str)>,
) -> Result<StreamHead, super::ProxyError> {
    let super::Response {
        status,
        head,
        framing,
        body,
        set_cookie,
        deadline,
        bodyless,
        edits,
        encode,
    } = resp;
    let mut pairs = Vec::new();
    let fields = head.fields(&mut pairs);
    let edits = edits.as_deref();
    let coded = Coded::new(encode, fields.iter());
    let head = client_head(
        status,
        fields,
        edits,
        &coded,
        (framing, is_head, bodyless),
        set_cookie,
        request_id,
    )?;
    Ok(StreamHead {
        head,
        status,
        framing: if is_head { Framing::Empty } else { framing },
        coded,
        body,
        deadline,
    })
}

/// What a backend's response head becomes for an HTTP/2 or HTTP/3 client: the
/// backend's fields less what the route's edits and the chosen compression drop,
/// plus what they add; a HEAD answer's length; no framing fields on a bodiless
/// status; the sticky cookie and the request ID.
pub fn client_head(
    status: u16,
    fields: FieldList<'_>,
    edits: Option<&super::Edits>,
    coded: &Coded,
    (framing, is_head, bodyless): (Framing, bool, bool),
    set_cookie: Option<String>,
    request_id: Option<(&str, &str)>,
) -> Result<http::Response<()>, super::ProxyError> {
    let mut headers = response_map(
        fields
            .iter()
            .filter(|(n, _)| super::Edits::keeps(edits, n) && coded.keeps(n))
            .chain(super::Edits::fields(edits))
            .chain(coded.fields()),
    );
    if is_head {
        if let Framing::Length(n) = client_framing(framing, status, fields, true, true) {
            headers.insert(http::header::CONTENT_LENGTH, n.into());
        }
    }
    if bodyless {
        headers.remove(http::header::CONTENT_LENGTH);
        headers.remove(http::header::TRANSFER_ENCODING);
    }
    if let Some(v) = set_cookie.and_then(|v| HeaderValue::try_from(v).ok()) {
        headers.append(http::header::SET_COOKIE, v);
    }
    set_request_id(&mut headers, request_id);
    let mut res = http::Response::new(());
    *res.status_mut() = http::StatusCode::from_u16(status)
        .map_err(|_| super::ProxyError::BadResponse("invalid status".into()))?;
    *res.headers_mut() = headers;
    Ok(res)
}

/// Sets the request ID field (a backend's own of that name replaced).
pub fn set_request_id(map: &mut HeaderMap, field: Option<(&str, &str)>) {
    let Some((name, value)) = field else { return };
    if let (Ok(n), Ok(v)) = (
        HeaderName::from_bytes(name.as_bytes()),
        HeaderValue::from_str(value),
    ) {
        map.insert(n, v);
    }
}

/// The host (`:authority`, else `Host`) and the path with its query of an HTTP/2 or
/// HTTP/3 request.
pub fn host_and_path(parts: &http::request::Parts) -> (&str, &str) {
    let host = parts
        .uri
        .authority()
        .map(|a| a.as_str())
        .or_else(|| {
            parts
                .headers
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
        })
        .unwrap_or("");
    (host, parts.uri.path_and_query().map_or("/", |p| p.as_str()))
}

/// Whether a request's `content-type` says gRPC.
pub fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|ct| fulcrum_core::grpc::is_grpc(ct.as_bytes()))
}

/// The head of an answer Fulcrum makes itself (a policy's, a static file's) for an
/// HTTP/2 or HTTP/3 client: its fields, then any `extra` a route adds, and the
/// request ID. Fields whose value a header cannot hold are left out.
pub fn answer_head<'a>(
    status: u16,
    fields: Vec<(&'static str, String)>,
    extra: impl IntoIterator<Item = &'a (Box<str>, String)>,
    request_id: Option<(&str, &str)>,
) -> http::Response<()> {
    let mut res = http::Response::new(());
    *res.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK);
    let map = res.headers_mut();
    for (name, value) in fields {
        if let Ok(v) = HeaderValue::try_from(value) {
            map.append(name, v);
        }
    }
    for (name, value) in extra {
        let name = HeaderName::from_bytes(name.as_bytes());
        if let (Ok(n), Ok(v)) = (name, HeaderValue::from_str(value)) {
            map.append(n, v);
        }
    }
    set_request_id(map, request_id);
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn te_trailers_reaches_an_http2_backend() {
        let fwd = Forwarded {
            original_host: None,
            keep_chain: true,
            client_ip: "10.0.0.9",
            proto: "http",
            via_version: "2",
        };
        let fields: [(&[u8], &[u8]); 3] = [
            (b"te", b"trailers"),
            (b"content-type", b"application/grpc"),
            (b"connection", b"close"),
        ];
        let map = request_map(fields.iter().copied(), "svc", &fwd);
        assert_eq!(map.get("te").unwrap(), "trailers");
        assert_eq!(map.get("x-forwarded-for").unwrap(), "10.0.0.9");
        assert_eq!(map.get("via").unwrap(), "2 fulcrum");
        assert!(map.get("connection").is_none());
    }

    #[test]
    fn framings() {
        let mut map = HeaderMap::new();
        assert_eq!(map_framing(&map, true), Framing::Empty);
        assert_eq!(map_framing(&map, false), Framing::Chunked);
        map.insert(http::header::CONTENT_LENGTH, HeaderValue::from_static("12"));
        assert_eq!(map_framing(&map, false), Framing::Length(12));
        let cl: [(&[u8], &[u8]); 1] = [(b"Content-Length", b"7")];
        let list = FieldList::Pairs(&cl);
        assert_eq!(
            client_framing(Framing::Empty, 200, list, true, true),
            Framing::Length(7)
        );
        assert_eq!(
            client_framing(Framing::Empty, 200, list, false, true),
            Framing::Length(0)
        );
        assert_eq!(
            client_framing(Framing::Empty, 204, list, false, true),
            Framing::Empty
        );
        assert_eq!(
            client_framing(Framing::Chunked, 200, list, false, false),
            Framing::UntilClose
        );
        assert_eq!(
            client_framing(Framing::UntilClose, 200, list, false, true),
            Framing::Chunked
        );
    }
}
