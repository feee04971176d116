//! Request-path errors: each knows its status, the side at fault, and whether the
//! request may be tried on another backend.

use std::net::SocketAddr;

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
}

impl ProxyError {
    /// The status a client gets for this error.
    pub fn status(&self) -> u16 {
        match self {
            Self::BadRequest(_) | Self::Client(_) => 400,
            Self::ClientTimeout => 408,
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
            | Self::ClientTimeout => Side::Client,
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
) {
    let reason = fulcrum_core::http1::reason(status);
    let body_len = reason.len() + 1;
    let retry = retry_after.map_or(String::new(), |s| format!("retry-after: {s}\r\n"));
    let rid = request_id.map_or(String::new(), |(name, id)| format!("{name}: {id}\r\n"));
    out.extend_from_slice(
        format!(
            "HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain\r\ncontent-length: {body_len}\r\n{retry}{rid}{}\r\n{reason}\n",
            if close { "connection: close\r\n" } else { "" }
        )
        .as_bytes(),
    );
}
