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
}

impl ProxyError {
    /// The status a client gets for this error.
    pub fn status(&self) -> u16 {
        match self {
            Self::BadRequest(_) | Self::Client(_) => 400,
            Self::HeaderTooLarge => 431,
            Self::BodyTooLarge => 413,
            Self::MethodNotAllowed => 405,
            Self::NoRoute => 404,
            Self::NoBackend => 503,
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
            | Self::Client(_) => Side::Client,
            Self::NoRoute | Self::NoBackend => Side::Proxy,
            Self::Connect { .. } | Self::BadResponse(_) | Self::BackendTimeout => Side::Backend,
        }
    }

    /// Whether another backend may be tried: only when nothing reached a backend.
    pub fn retryable(&self) -> bool {
        matches!(self, Self::Connect { .. })
    }
}

/// Appends a complete short error response for an HTTP/1.1 client.
pub fn write_h1_error(out: &mut Vec<u8>, status: u16, close: bool) {
    let reason = fulcrum_core::http1::reason(status);
    let body_len = reason.len() + 1;
    out.extend_from_slice(
        format!(
            "HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain\r\ncontent-length: {body_len}\r\n{}\r\n{reason}\n",
            if close { "connection: close\r\n" } else { "" }
        )
        .as_bytes(),
    );
}
