//! Stage 1. Address → listening sockets → accepted connections handed to their
//! protocol. Owns binding with SO_REUSEPORT so that every worker has its own accept
//! queue on the same port, the listener's `max_connections` cap and the PROXY
//! protocol header. Never reads a byte past that header.

pub mod accept;
pub mod cap;
pub mod live;
pub mod proxy_header;
pub mod quic;
pub mod quic_relay;
pub mod socket;

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};

/// Accept queue length.
const BACKLOG: i32 = 4096;

/// Binds a non-blocking TCP listener that other workers can bind too.
pub fn bind(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}
