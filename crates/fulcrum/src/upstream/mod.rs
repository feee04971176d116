//! Stage 4. Backend choice → a connection to it. Owns connecting with a deadline, the
//! per-worker keep-alive pools (HTTP/1.1 idle sockets, one multiplexed h2c connection
//! per backend) and the in-flight lease. Never parses HTTP.

mod lease;
mod pool;

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;

pub use lease::Lease;
pub use pool::{H1Pool, H2Pool};

/// Opens a TCP connection with Nagle off, within `limit`.
pub async fn connect(addr: SocketAddr, limit: Duration) -> io::Result<TcpStream> {
    let stream = tokio::time::timeout(limit, TcpStream::connect(addr))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
    stream.set_nodelay(true)?;
    Ok(stream)
}
