//! The PROXY protocol header at the start of an accepted connection (HAProxy's
//! `accept-proxy`): who may send one, and reading it before the listener's protocol
//! sees a byte.
//!
//! The bytes are judged by `fulcrum_core::proxy_protocol`; this only reads. A buffer
//! is held only while the header is incomplete, and whatever arrived after the header
//! is handed on: it is the start of the client's HTTP request or TCP stream.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use fulcrum_core::proxy_protocol::{self, Version};
use tokio::net::TcpStream;

use crate::io::{self, IoError};

/// Why a connection's header was refused; each closes the connection.
#[derive(Debug, thiserror::Error)]
pub enum HeaderError {
    /// Not a valid header of the listener's version.
    #[error("{0}")]
    Malformed(#[from] proxy_protocol::Error),
    /// The peer closed before the header was complete (or sent nothing).
    #[error("closed before a complete PROXY header")]
    Truncated,
    /// The header was not complete within the listener's `header_timeout`.
    #[error("no complete PROXY header within {0:?}")]
    Timeout(Duration),
    /// The socket failed.
    #[error("{0}")]
    Io(std::io::Error),
}

/// Reads the header of `version` from `conn` within `limit`. Returns the client
/// address it carries (`None` for v1 `UNKNOWN`, v2 `LOCAL` and the like: the caller
/// keeps the socket's peer) and the bytes that followed it (empty, holding no
/// buffer, when there were none).
pub async fn read(
    conn: &TcpStream,
    version: Version,
    limit: Duration,
) -> Result<(Option<SocketAddr>, BytesMut), HeaderError> {
    let deadline = Instant::now() + limit;
    let mut buf = BytesMut::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match io::read_some(conn, &mut buf, left).await {
            Ok(0) => return Err(HeaderError::Truncated),
            Ok(_) => {}
            Err(IoError::Timeout) => return Err(HeaderError::Timeout(limit)),
            Err(IoError::Io(e)) => return Err(HeaderError::Io(e)),
        }
        let Some(header) = proxy_protocol::parse(&buf, version)? else {
            // `parse` decides within `max_len` bytes; the check only bounds the
            // buffer should that promise ever break.
            if buf.len() >= version.max_len() {
                return Err(HeaderError::Truncated);
            }
            continue;
        };
        buf.advance(header.len);
        if buf.is_empty() {
            io::recycle(std::mem::take(&mut buf));
        }
        // A v4-mapped source is the IPv4 client it maps: one client, one address,
        // in X-Forwarded-For, hashing and logs alike.
        let client = header
            .addresses
            .map(|(src, _)| SocketAddr::new(src.ip().to_canonical(), src.port()));
        return Ok((client, buf));
    }
}
