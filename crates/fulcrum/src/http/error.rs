//! Request-path errors: each knows its status, the side at fault, and whether the
//! request may be tried on another backend.

use std::net::SocketAddr;

use bytes::Bytes;

/// Who caused an error (pingora's ErrorSource idea): it picks the status and the log level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The client sent something wrong or went away.
    Client,
    /// A backend failed or misbehaved.
    Backend,
    /// Configuration: nothing routes or nothing is available.
    Proxy,
}

/// Why a request did not get a backend's response.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// Malformed request head or body framing.
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    /// Request head over `max_header_bytes`.
    #[error("request header section too large")]
    HeaderTooLarge,
    /// Request body over `max_body_bytes`.
    #[error("request body too large")]
    BodyTooLarge,
    /// A method the proxy does not forward (CONNECT).
    #[error("method not allowed")]
    MethodNotAllowed,
    /// No route matches.
    #[error("no route")]
    NoRoute,
    /// The pool has no available backend.
    #[error("no backend available")]
    NoBackend,
    /// A circuit limit (`max_requests`, `max_connections`, `max_pending`) refused it.
    #[error("pool over its limits")]
    Overloaded,
    /// The backend answered this status, the response was dropped to retry, and
    /// no retry could be made after all.
    #[error("backend answered {0}; no retry left")]
    Retried(u16),
    /// Connecting failed on every attempt.
    #[error("connect to {addr} failed: {reason}")]
    Connect {
        /// Last backend tried.
        addr: SocketAddr,
        /// Why.
        reason: String,
    },
    /// The backend's response was malformed or it closed early.
    #[error("bad response from backend: {0}")]
    BadResponse(String),
    /// The backend did not answer in time.
    #[error("backend timed out")]
    BackendTimeout,
    /// The client stopped sending or reading in time, or went away.
    #[error("client: {0}")]
    Client(String),
    /// The client did not send a whole request head in time (`header_timeout`).
    #[error("client: request head timed out")]
    ClientTimeout,
    /// A service an edge policy needs (the `forward_auth` service) did not answer.
    #[error("{0}")]
    Unavailable(&'static str),
    /// A request in 0-RTT early data whose method is not safe to replay (RFC 8470).
    #[error("too early: {0} in 0-RTT data")]
    TooEarly(String),
}

impl ProxyError {
    /// The status a client gets for this error.
    pub fn status(&self) -> u16 {
        match self {
            Self::BadRequest(_) | Self::Client(_) => 400,
            Self::ClientTimeout => 408,
            Self::TooEarly(_) => 425,
            Self::HeaderTooLarge => 431,
            Self::BodyTooLarge => 413,
            Self::MethodNotAllowed => 405,
            Self::NoRoute => 404,
            Self::NoBackend | Self::Overloaded | Self::Unavailable(_) => 503,
            Self::Retried(status) => *status,
            Self::Connect { .. } | Self::BadResponse(_) => 502,
            Self::BackendTimeout => 504,
        }
    }

    /// Who caused it.
    pub fn side(&self) -> Side {
        match self {
            Self::BadRequest(_)
            | Self::HeaderTooLarge
            | Self::BodyTooLarge
            | Self::MethodNotAllowed
            | Self::Client(_)
            | Self::ClientTimeout
            | Self::TooEarly(_) => Side::Client,
            Self::NoRoute | Self::NoBackend | Self::Overloaded | Self::Unavailable(_) => {
                Side::Proxy
            }
            Self::Connect { .. }
            | Self::BadResponse(_)
            | Self::BackendTimeout
            | Self::Retried(_) => Side::Backend,
        }
    }

    /// Whether another backend may be tried: only when nothing reached a backend.
    pub fn retryable(&self) -> bool {
        matches!(self, Self::Connect { .. })
    }

    /// Seconds a client should wait before trying again, sent as `Retry-After`:
    /// a circuit limit sheds load that may pass in a moment.
    pub fn retry_after(&self) -> Option<u32> {
        matches!(self, Self::Overloaded).then_some(1)
    }
}

/// A request that failed; `replied` when a response (or part of one) already went out.
#[derive(Debug)]
pub struct Failed {
    /// What went wrong.
    pub err: ProxyError,
    /// Whether the client already got a response head.
    pub replied: bool,
}

impl From<ProxyError> for Failed {
    fn from(err: ProxyError) -> Self {
        Self {
            err,
            replied: false,
        }
    }
}

/// Maps a failure reading the client's body to its error.
pub fn client_body_error(err: super::body::BodyError) -> ProxyError {
    match err {
        super::body::BodyError::TooLarge => ProxyError::BodyTooLarge,
        super::body::BodyError::Chunked(_) => ProxyError::BadRequest("invalid chunked body"),
        other => ProxyError::Client(other.to_string()),
    }
}

/// Appends a complete short error response for an HTTP/1.1 client.
pub fn write_h1_error(
    out: &mut Vec<u8>,
    status: u16,
    close: bool,
    retry_after: Option<u32>,
    request_id: Option<(&str, &str)>,
    body: &ErrorBody,
) {
    let reason = fulcrum_core::http1::reason(status);
    let retry = retry_after.map_or(String::new(), |s| format!("retry-after: {s}\r\n"));
    let rid = request_id.map_or(String::new(), |(name, id)| format!("{name}: {id}\r\n"));
    out.extend_from_slice(
        format!(
            "HTTP/1.1 {status} {reason}\r\ncontent-type: {}\r\ncontent-length: {}\r\n{retry}{rid}{}\r\n",
            body.content_type,
            body.body.len(),
            if close { "connection: close\r\n" } else { "" }
        )
        .as_bytes(),
    );
    out.extend_from_slice(&body.body);
}

/// An error page from `error_pages`, read with the config.
#[derive(Debug)]
pub struct Page {
    /// The file's bytes.
    pub body: Bytes,
    /// Its type, by extension.
    pub content_type: &'static str,
}

/// Largest error page file: a page is held in memory for every listener and route.
pub const MAX_PAGE_BYTES: u64 = 1024 * 1024;

impl Page {
    /// Reads `path`; an error says which file and why.
    pub fn load(path: &str) -> Result<Self, String> {
        let meta = std::fs::metadata(path).map_err(|e| format!("{path}: {e}"))?;
        if !meta.is_file() {
            return Err(format!("{path}: not a file"));
        }
        if meta.len() > MAX_PAGE_BYTES {
            return Err(format!("{path}: larger than 1 MiB"));
        }
        let body = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
        let ext = std::path::Path::new(path)
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        let content_type = match ext.as_deref() {
            Some("json") => "application/json",
            Some("txt") => "text/plain; charset=utf-8",
            _ => "text/html; charset=utf-8",
        };
        Ok(Self {
            body: Bytes::from(body),
            content_type,
        })
    }
}

/// The body of an error Fulcrum answers itself, and its type.
#[derive(Debug)]
pub struct ErrorBody {
    /// `Content-Type`.
    pub content_type: &'static str,
    /// The body.
    pub body: Bytes,
}

impl ErrorBody {
    /// JSON for a client that asks for it, else the configured page, else the
    /// reason phrase as text.
    pub fn new(status: u16, page: Option<&Page>, json: bool, request_id: Option<&str>) -> Self {
        let reason = fulcrum_core::http1::reason(status);
        if json {
            let mut body = format!("{{\"status\":{status},\"error\":\"{reason}\"");
            if let Some(id) = request_id.filter(|id| !id.is_empty()) {
                body.push_str(",\"request_id\":\"");
                for c in id.chars() {
                    match c {
                        '"' | '\\' => {
                            body.push('\\');
                            body.push(c);
                        }
                        c if c.is_control() => {}
                        c => body.push(c),
                    }
                }
                body.push('"');
            }
            body.push_str("}\n");
            return Self {
                content_type: "application/json",
                body: Bytes::from(body),
            };
        }
        match page {
            Some(p) => Self {
                content_type: p.content_type,
                body: p.body.clone(),
            },
            None => Self {
                content_type: "text/plain",
                body: Bytes::from(format!("{reason}\n")),
            },
        }
    }
}

/// Whether an `Accept` value asks for JSON rather than a page: it lists
/// `application/json` (or a `+json` type) and no `text/html`, each with q > 0.
pub fn wants_json(accept: Option<&[u8]>) -> bool {
    let Some(accept) = accept.and_then(|a| std::str::from_utf8(a).ok()) else {
        return false;
    };
    let mut json = false;
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        let refused = parts.any(|p| {
            let p = p.trim();
            p.strip_prefix("q=")
                .is_some_and(|q| q.trim().parse::<f32>().is_ok_and(|q| q <= 0.0))
        });
        if refused {
            continue;
        }
        if media == "text/html" {
            return false;
        }
        json |= media == "application/json" || media.ends_with("+json");
    }
    json
}

/// The `grpc-status` and `grpc-message` of an error Fulcrum answers a gRPC call
/// with itself: the code for its HTTP status, and its text percent-encoded, kept to
/// printable ASCII.
pub fn grpc_status(err: &ProxyError) -> (&'static str, String) {
    let code = fulcrum_core::grpc::Code::for_http_status(err.status());
    let message: String = err
        .to_string()
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect::<String>()
        .replace('%', "%25");
    (code.as_str(), message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_for_clients_that_ask_for_it() {
        assert!(wants_json(Some(b"application/json")));
        assert!(wants_json(Some(b"application/problem+json, */*;q=0.1")));
        assert!(!wants_json(Some(
            b"text/html,application/xhtml+xml,application/json;q=0.9"
        )));
        assert!(!wants_json(Some(b"*/*")));
        assert!(!wants_json(Some(b"application/json;q=0")));
        assert!(!wants_json(None));
    }

    #[test]
    fn error_bodies() {
        let json = ErrorBody::new(502, None, true, Some("ab\"c"));
        assert_eq!(
            &json.body[..],
            b"{\"status\":502,\"error\":\"Bad Gateway\",\"request_id\":\"ab\\\"c\"}\n"
        );
        let page = Page {
            body: Bytes::from_static(b"<h1>down</h1>"),
            content_type: "text/html; charset=utf-8",
        };
        let html = ErrorBody::new(502, Some(&page), false, None);
        assert_eq!(
            (&html.body[..], html.content_type),
            (&b"<h1>down</h1>"[..], "text/html; charset=utf-8")
        );
        assert_eq!(
            &ErrorBody::new(404, None, false, None).body[..],
            b"Not Found\n"
        );
    }
}
