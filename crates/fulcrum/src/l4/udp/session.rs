//! One UDP session: its socket toward the backend, the task that relays the
//! backend's replies to the client, and its end (counters, access log line).

use std::cell::{Cell, RefCell};
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use fulcrum_core::health::{Outcome, State};
use socket2::{Domain, Protocol, Type};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::Notify;

use super::Local;
use crate::access_log::Entry;
use crate::clock;
use crate::state::{byte_state, Member, Snapshot};
use crate::stats::udp::{Dropped, Slot};
use crate::stats::ErrorKind;
use crate::upstream::Lease;
use crate::upstream::{self, RequestSlot};

/// Why a session ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum End {
    /// No datagram either way for the idle time: the usual end.
    Idle,
    /// The listener was at `max_sessions` and this was the session idle longest.
    Evicted,
    /// Its backend went down or was ejected; the client's next datagram picks again.
    BackendDown,
    /// The backend refused (ICMP port unreachable).
    Refused,
    /// Its socket failed.
    Failed(io::ErrorKind),
    /// Shutdown, or a reload moved or removed the listener.
    Stopped,
}

impl End {
    /// What the access log says about it (`None` for the usual end).
    fn error(self) -> Option<String> {
        match self {
            End::Idle => None,
            End::Evicted => Some("evicted: max_sessions reached".into()),
            End::BackendDown => Some("backend down".into()),
            End::Refused => Some("backend refused".into()),
            End::Failed(kind) => Some(format!("socket: {kind}")),
            End::Stopped => Some("listener stopped".into()),
        }
    }
}

/// A session as its listener's table holds it.
pub(super) struct Session {
    /// The client.
    pub peer: SocketAddr,
    /// Connected to the backend.
    up: UdpSocket,
    member: Option<Arc<Member>>,
    /// Counts against `max_sessions` until the session leaves the table.
    slot: RefCell<Option<Slot>>,
    why: Cell<Option<End>>,
    /// Tells the relay task to finish.
    ended: Notify,
    /// Datagrams and bytes from the client, then to it.
    sent: Cell<(u64, u64)>,
    replied: Cell<(u64, u64)>,
}

impl Session {
    /// A session of `peer` on `up`, holding `slot`.
    pub fn new(peer: SocketAddr, up: UdpSocket, slot: Slot, member: Option<Arc<Member>>) -> Self {
        Self {
            peer,
            up,
            member,
            slot: RefCell::new(Some(slot)),
            why: Cell::new(None),
            ended: Notify::new(),
            sent: Cell::new((0, 0)),
            replied: Cell::new((0, 0)),
        }
    }

    /// Ends the session (the first reason given stands); its slot is free at once,
    /// its task finishes and logs it.
    pub fn end(&self, why: End) {
        if self.why.get().is_none() {
            self.why.set(Some(why));
        }
        self.slot.borrow_mut().take();
        self.ended.notify_one();
    }

    /// Whether it has ended (its task may not have finished yet).
    pub fn is_ended(&self) -> bool {
        self.why.get().is_some()
    }

    /// Whether its backend failed its health checks or was ejected (a draining
    /// backend keeps its sessions).
    pub fn is_backend_down(&self) -> bool {
        self.member.as_ref().is_some_and(|m| {
            matches!(
                byte_state(m.shown.load(Ordering::Relaxed)),
                State::Down | State::Ejected
            )
        })
    }

    /// Sends a client's datagram on to the backend, without waiting: a datagram
    /// the socket cannot take now is dropped, as the network would.
    pub fn forward(&self, l: &Local, data: &[u8]) {
        match send_now(&self.up, data, None) {
            Ok(n) => {
                let (d, b) = self.sent.get();
                self.sent.set((d + 1, b + n as u64));
            }
            Err(err) => {
                l.counters.dropped(Dropped::Unsent);
                // A refusal of an earlier datagram is reported on a later send.
                match err.kind() {
                    io::ErrorKind::WouldBlock => {}
                    io::ErrorKind::ConnectionRefused => self.end(End::Refused),
                    kind => self.end(End::Failed(kind)),
                }
            }
        }
    }

    /// Relays one reply, if one is waiting: `Ok(true)` when one came. `Err` when
    /// the socket has an error pending (a refusal comes as an error alone, which
    /// does not make the socket readable).
    fn relay(&self, l: &Local, ready: tokio::io::Ready) -> io::Result<bool> {
        if ready.is_error() {
            if let Some(err) = self.up.take_error()? {
                return Err(err);
            }
            // Nothing pending after all: clear the readiness, or it wakes us again.
            let _ = self.up.try_io(Interest::ERROR, || {
                Err::<(), _>(io::Error::from(io::ErrorKind::WouldBlock))
            });
        }
        let mut buf = l.reply.borrow_mut();
        let n = match self.up.try_recv(&mut buf) {
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(err) => return Err(err),
        };
        let data = buf.get(..n).unwrap_or_default();
        match send_now(&l.socket, data, Some(self.peer)) {
            Ok(_) => {
                l.counters.sent(n);
                let (d, b) = self.replied.get();
                self.replied.set((d + 1, b + n as u64));
            }
            Err(_) => l.counters.dropped(Dropped::Unsent),
        }
        if !self.is_ended() {
            l.table.borrow_mut().touch(&self.peer, clock::now());
        }
        Ok(true)
    }
}

/// Sends a datagram now or not at all (to `to`, or to the connected peer). Straight
/// to the socket: tokio's `try_send` answers WouldBlock until its reactor has seen
/// the socket writable, which a session's new socket has not, and sends here never
/// wait for writability anyway.
pub(super) fn send_now(
    socket: &UdpSocket,
    data: &[u8],
    to: Option<SocketAddr>,
) -> io::Result<usize> {
    let socket = socket2::SockRef::from(socket);
    match to {
        Some(to) => socket.send_to(data, &to.into()),
        None => socket.send(data),
    }
}

/// A UDP socket connected to `backend`: replies from anyone else are dropped by
/// the kernel, and a refusal is reported on it. Two system calls: the socket is
/// made non-blocking as it is created, and `connect` picks its local port.
pub(super) fn connect(backend: SocketAddr) -> io::Result<UdpSocket> {
    let socket = socket2::Socket::new(
        Domain::for_address(backend),
        Type::DGRAM.nonblocking(),
        Some(Protocol::UDP),
    )?;
    socket.connect(&backend.into())?;
    UdpSocket::from_std(socket.into())
}

/// Relays the backend's replies until the session ends, then records and logs
/// it. Holds the session's admission and in-flight lease (least_connections,
/// drains) to the end; `at` is `(pool, backend)` by index in `snap`.
pub(super) async fn run(
    l: Rc<Local>,
    s: Rc<Session>,
    snap: Arc<Snapshot>,
    at: (usize, usize),
    held: (RequestSlot, Lease),
    started: Instant,
) {
    let _held = held;
    let Some(pool) = snap.pools.get(at.0) else {
        return;
    };
    let Some(backend) = pool.backends.get(at.1) else {
        return;
    };
    let member = pool.members.get(at.1).map(|m| &**m);
    let _open = member.map(|m| m.stats.stream_opened());
    let mut e = Entry {
        listener: &l.name,
        client: Some(s.peer),
        proto: "UDP",
        pool: &pool.name,
        backend: Some(backend.addr),
        member: member.map(|m| &m.stats),
        attempts: 1,
        status: 200,
        ..Entry::default()
    };
    let mut waiting = true;
    while !s.is_ended() {
        tokio::select! {
            biased;
            () = s.ended.notified() => {}
            r = s.up.ready(Interest::READABLE | Interest::ERROR) => {
                match r.and_then(|ready| s.relay(&l, ready)) {
                    Ok(true) if waiting => {
                        // The first reply: the backend answers (outlier detection)
                        // and its time feeds latency-aware balancing.
                        waiting = false;
                        let rtt = started.elapsed();
                        upstream::observed(&l.w, pool, backend, member, 200, rtt, &mut e);
                    }
                    Ok(_) => {}
                    Err(err) if err.kind() == io::ErrorKind::ConnectionRefused => {
                        s.end(End::Refused);
                    }
                    Err(err) => s.end(End::Failed(err.kind())),
                }
            }
        }
    }
    l.forget(&s);
    s.slot.borrow_mut().take();
    let why = s.why.get().unwrap_or(End::Stopped);
    if why == End::Refused {
        tracing::warn!(backend = %backend.addr, pool = %pool.name, "udp backend refused");
        if let Some(m) = member {
            m.stats.error(ErrorKind::Connect);
            upstream::outcome(&l.w, pool, m, Outcome::gateway_failure());
        }
        e.status = 502;
    } else {
        tracing::debug!(listener = %l.name, peer = %s.peer, ?why, "udp session ended");
    }
    e.duration = started.elapsed();
    pool.state.streams.observe(e.duration);
    (e.bytes_in, e.bytes_out) = (s.sent.get().1, s.replied.get().1);
    e.error = why.error();
    crate::access_log::record(&e);
    if l.w.log.enabled() {
        l.w.log.write(&e);
    }
}
