//! Opening a backend connection: TCP with Nagle off within a deadline, the PROXY
//! protocol header first when the pool sends one, then TLS when the pool has it.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use fulcrum_core::proxy_protocol::{self, Version};
use tokio::net::TcpStream;

/// Opens a TCP connection with Nagle off, within `limit`.
pub async fn connect(addr: SocketAddr, limit: Duration) -> io::Result<TcpStream> {
    let stream = tokio::time::timeout(limit, TcpStream::connect(addr))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Opens a connection as [`connect`] does and writes `header` (a PROXY protocol
/// header, or nothing) before anything else, within the same `limit`: a backend that
/// requires the header refuses a connection without it, so a failed write is a
/// failed connect.
pub async fn connect_with(
    addr: SocketAddr,
    limit: Duration,
    header: &[u8],
) -> io::Result<TcpStream> {
    let stream = connect(addr, limit).await?;
    if !header.is_empty() {
        crate::io::write_all(&stream, header, limit)
            .await
            .map_err(|e| match e {
                crate::io::IoError::Io(e) => e,
                crate::io::IoError::Timeout => {
                    io::Error::new(io::ErrorKind::TimedOut, "PROXY header write timed out")
                }
            })?;
    }
    Ok(stream)
}

/// The PROXY protocol header of `version` naming `ends`, (the client, the local
/// address it reached); with `None`, a header that names no client (v1 `UNKNOWN`,
/// v2 `LOCAL`), for connections Fulcrum opens on its own behalf.
pub fn proxy_header(version: Version, ends: Option<(SocketAddr, SocketAddr)>) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    match (version, ends) {
        (Version::V1, Some((src, dst))) => proxy_protocol::write_v1(&mut out, src, dst),
        (Version::V2, Some((src, dst))) => proxy_protocol::write_v2(&mut out, src, dst, false),
        (version, None) => proxy_protocol::write_local(&mut out, version),
    }
    out
}

/// Opens a connection to a backend of a pool: TCP with `header` first (see
/// [`connect_with`]), then TLS when the pool has `tls`, all within `limit`.
pub async fn open(
    addr: SocketAddr,
    limit: Duration,
    header: &[u8],
    tls: Option<&crate::tls::Upstream>,
) -> io::Result<crate::io::Conn> {
    let started = tokio::time::Instant::now();
    let tcp = connect_with(addr, limit, header).await?;
    match tls {
        None => Ok(crate::io::Conn::Tcp(tcp)),
        Some(t) => {
            let left = limit.saturating_sub(started.elapsed());
            let conn = t
                .connect(tcp, addr, left, t.speaks_h2())
                .await
                .map_err(|e| io::Error::other(format!("tls: {e}")))?;
            Ok(crate::io::Conn::Tls(Box::new(conn)))
        }
    }
}
