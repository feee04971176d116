//! TLS passthrough: reads a connection's ClientHello (without terminating TLS) to
//! learn its server name, so the listener's `sni` routes can pick the pool; the
//! bytes read are then sent on to the backend first, unchanged.

use std::time::{Duration, Instant};

use bytes::BytesMut;
use fulcrum_core::client_hello::{self, Peek, MAX_CLIENT_HELLO};
use tokio::net::TcpStream;

use crate::io::{self, IoError};

/// Why a connection was closed before its ClientHello was routed.
#[derive(Debug, thiserror::Error)]
pub enum PeekError {
    /// The bytes are not a ClientHello.
    #[error("{0}")]
    Hello(#[from] client_hello::ClientHelloError),
    /// The client closed, failed, or was too slow.
    #[error("no whole ClientHello: {0}")]
    Read(String),
}

/// Reads until the ClientHello is complete (within `limit`); returns its server
/// name and every byte read, which the backend must get first.
pub async fn read_sni(
    client: &TcpStream,
    limit: Duration,
) -> Result<(Option<String>, BytesMut), PeekError> {
    let deadline = Instant::now() + limit;
    let mut buf = BytesMut::with_capacity(2048);
    loop {
        if !buf.is_empty() {
            if let Peek::Done(name) = client_hello::peek(&buf)? {
                return Ok((name, buf));
            }
        }
        if buf.len() > MAX_CLIENT_HELLO + 64 {
            return Err(client_hello::ClientHelloError::TooLarge.into());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match io::read_some(client, &mut buf, left).await {
            Ok(0) => return Err(PeekError::Read("closed".into())),
            Ok(_) => {}
            Err(IoError::Timeout) => return Err(PeekError::Read("timed out".into())),
            Err(IoError::Io(e)) => return Err(PeekError::Read(e.to_string())),
        }
    }
}
