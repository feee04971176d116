//! A listener's socket of either kind: a TCP listening socket (http, tcp
//! listeners) or a UDP socket (udp listeners). Both are bound per worker with
//! SO_REUSEPORT, kept for reloads and handed to a successor by an upgrade.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use socket2::{Domain, Protocol, Type};

/// Receive buffer asked for on a UDP listener socket (the kernel caps it at
/// `net.core.rmem_max`): a burst of datagrams waits there while the worker is busy,
/// instead of being dropped at the default ~200 KiB.
const UDP_RECV_BUFFER: usize = 4 << 20;

/// One worker's socket of one listener.
#[derive(Debug)]
pub enum Socket {
    /// Accepts connections.
    Tcp(std::net::TcpListener),
    /// Receives datagrams.
    Udp(std::net::UdpSocket),
}

impl Socket {
    /// Binds `addr` as UDP when `udp`, else as a TCP listener; other workers can
    /// bind the same address (SO_REUSEPORT).
    pub fn bind(addr: SocketAddr, udp: bool) -> io::Result<Self> {
        if udp {
            bind_udp(addr).map(Self::Udp)
        } else {
            super::bind(addr).map(Self::Tcp)
        }
    }

    /// Whether this is a UDP socket.
    pub fn is_udp(&self) -> bool {
        matches!(self, Self::Udp(_))
    }

    /// The address bound.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match self {
            Self::Tcp(s) => s.local_addr(),
            Self::Udp(s) => s.local_addr(),
        }
    }

    /// Another handle on the same socket.
    pub fn try_clone(&self) -> io::Result<Self> {
        match self {
            Self::Tcp(s) => s.try_clone().map(Self::Tcp),
            Self::Udp(s) => s.try_clone().map(Self::Udp),
        }
    }

    /// A socket received from another process, by its type (SO_TYPE).
    pub fn from_fd(fd: OwnedFd) -> io::Result<Self> {
        let kind = socket2::SockRef::from(&fd).r#type()?;
        if kind == Type::DGRAM {
            Ok(Self::Udp(fd.into()))
        } else {
            Ok(Self::Tcp(fd.into()))
        }
    }
}

impl AsFd for Socket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Self::Tcp(s) => s.as_fd(),
            Self::Udp(s) => s.as_fd(),
        }
    }
}

/// Binds a non-blocking UDP socket that other workers can bind too. The kernel
/// hashes each datagram's addresses and ports to one socket of the group, so one
/// client keeps reaching the same worker (and its session) while the group is
/// unchanged. No SO_REUSEADDR: for UDP it would let a later socket on the same
/// address take the datagrams.
///
/// Port 0 is bound before SO_REUSEPORT is set: Linux lets a UDP `bind` to port 0
/// with SO_REUSEPORT land on a port that another group of the same user holds,
/// and join that group (two Fulcrums would then share each other's traffic).
/// Without the option the kernel picks a port nobody holds; setting it afterwards
/// still lets the other workers join this socket.
pub fn bind_udp(addr: SocketAddr) -> io::Result<std::net::UdpSocket> {
    let socket = socket2::Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_nonblocking(true)?;
    // Best effort: a smaller buffer only means earlier drops under a burst.
    let _ = socket.set_recv_buffer_size(UDP_RECV_BUFFER);
    if addr.port() == 0 {
        socket.bind(&addr.into())?;
        socket.set_reuse_port(true)?;
    } else {
        socket.set_reuse_port(true)?;
        socket.bind(&addr.into())?;
    }
    Ok(socket.into())
}

/// One listener's sockets, as handed over: its name, address and one socket per
/// worker of the old process (TCP or UDP; the new process tells them apart by
/// their type).
#[derive(Debug)]
pub struct Listening {
    /// Listener name in the config (`@admin` for the admin listener).
    pub name: String,
    /// The bound address (port 0 resolved).
    pub addr: SocketAddr,
    /// The sockets.
    pub sockets: Vec<Socket>,
}
