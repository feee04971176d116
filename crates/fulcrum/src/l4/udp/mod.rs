//! UDP proxying: each client address of a udp listener is a session pinned to one
//! backend of the listener's pool, picked once as a TCP connection's would be
//! (ring_hash and maglev hash the client IP; health, drains and slow start apply).
//!
//! A session has a connected UDP socket of its own toward its backend: the
//! backend sees one stable peer per client, and a reply on that socket can only be
//! for that client. Replies go back from the listener's socket, so the client sees
//! them come from the address it sent to. A session ends after
//! `session_idle_timeout` without a datagram either way, when its backend refuses
//! (ICMP port unreachable) or goes down (the client's next datagram picks again),
//! or when the listener needs room: sessions are bounded by `max_sessions`, and a
//! new client then takes the place of the session idle longest. The table's rules
//! are [`fulcrum_core::udp::Sessions`]; this module does the sockets.
//!
//! Workers: each has its own socket of the listener (SO_REUSEPORT) and its own
//! session table. The kernel hashes a datagram's addresses and ports to one socket
//! of the group, so a client keeps reaching the worker that holds its session.
//! `max_sessions` holds across workers through one shared count: a worker at the
//! limit evicts its own idlest session. A session counts as one open stream and
//! one in-flight request on its backend (least_connections, drains) for its life,
//! and is logged (proto `UDP`) when it ends.

mod session;

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fulcrum_core::config::{DEFAULT_UDP_MAX_SESSIONS, DEFAULT_UDP_SESSION_IDLE_TIMEOUT};
use fulcrum_core::udp::Sessions;
use tokio::net::UdpSocket;

pub use crate::stats::udp::{Counters, Dropped, Kept};
use session::{End, Session};

use crate::access_log::Entry;
use crate::clock;
use crate::http::ProxyError;
use crate::state::{Pool, UdpListener};
use crate::upstream::Lease;
use crate::upstream::{self, Attempts, Pinned, RequestSlot};
use crate::worker::{Busy, Worker};

/// The largest UDP payload (IPv6 without jumbograms): nothing is ever truncated.
const MAX_DATAGRAM: usize = 65_536;

/// Once shutdown starts no client datagram is read, and a session ends after this
/// long without a reply (or its own idle time, if shorter): a reply already on its
/// way still reaches its client.
const STOP_GRACE: Duration = Duration::from_secs(1);

/// One worker's side of one udp listener.
struct Local {
    w: Rc<Worker>,
    name: Rc<str>,
    socket: UdpSocket,
    counters: Arc<Counters>,
    table: RefCell<Sessions<SocketAddr, Rc<Session>>>,
    /// Replies pass through here: a session reads one into it and sends it on at
    /// once, never across an await, so one buffer serves every session.
    reply: RefCell<Box<[u8]>>,
    /// A reload shortened the idle time: the expiry timer is set too late.
    rearm: Cell<bool>,
}

impl Local {
    /// Ends every session idle for the table's idle time by `now`.
    fn expire(&self, now: Duration) {
        let mut table = self.table.borrow_mut();
        while let Some((_, s)) = table.pop_expired(now) {
            s.end(End::Idle);
        }
    }

    /// Takes the listener's current limits (a reload may change them).
    fn fit(&self, l: &UdpListener) {
        let mut table = self.table.borrow_mut();
        if table.max() != l.max_sessions as usize || table.idle() != l.idle {
            self.rearm.set(l.idle < table.idle());
            table.set_limits(l.max_sessions as usize, l.idle);
            while let Some((_, s)) = table.pop_excess() {
                self.counters.evicted();
                s.end(End::Evicted);
            }
        }
    }

    /// Takes `s` out of the table if it is still there (it ended on its own).
    fn forget(&self, s: &Rc<Session>) {
        let mut table = self.table.borrow_mut();
        if table.get(&s.peer).is_some_and(|t| Rc::ptr_eq(t, s)) {
            table.remove(&s.peer);
        }
    }
}

/// Ends every session of a worker's listener when its task goes: shutdown, or a
/// reload that moved or removed the listener.
struct EndAll(Rc<Local>);

impl Drop for EndAll {
    fn drop(&mut self) {
        if let Ok(mut table) = self.0.table.try_borrow_mut() {
            while let Some((_, s)) = table.pop_idlest() {
                s.end(End::Stopped);
            }
        }
    }
}

/// Serves one worker's socket of udp listener `name` until shutdown, or until a
/// reload moves or removes the listener (the task is dropped).
pub async fn serve(w: Rc<Worker>, socket: std::net::UdpSocket, name: Rc<str>) {
    let socket = match UdpSocket::from_std(socket) {
        Ok(s) => s,
        Err(error) => {
            tracing::error!(listener = %name, %error, "udp listener setup failed");
            return;
        }
    };
    let (max, idle) = w.shared.load().udp_listeners.get(&*name).map_or(
        (
            DEFAULT_UDP_MAX_SESSIONS,
            DEFAULT_UDP_SESSION_IDLE_TIMEOUT.get(),
        ),
        |l| (l.max_sessions, l.idle),
    );
    let l = Rc::new(Local {
        counters: w.registry.udp.get(&name),
        w,
        name,
        socket,
        table: RefCell::new(Sessions::new(max as usize, idle)),
        reply: RefCell::new(vec![0; MAX_DATAGRAM].into_boxed_slice()),
        rearm: Cell::new(false),
    });
    let _end = EndAll(l.clone());
    let mut buf = vec![0u8; MAX_DATAGRAM].into_boxed_slice();
    // Set for the idlest session's expiry. Activity only pushes expiries later, so
    // it may fire early (then re-armed) but never late, and a datagram never has
    // to reset it; only a shorter idle time from a reload does.
    let timer = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(timer);
    let mut armed = false;
    while !l.w.stopping.get() {
        if !armed || l.rearm.take() {
            if let Some(at) = l.table.borrow().next_expiry() {
                timer.as_mut().reset(deadline(at));
                armed = true;
            }
        }
        tokio::select! {
            r = l.socket.recv_from(&mut buf) => match r {
                Ok((n, peer)) => datagram(&l, buf.get(..n).unwrap_or_default(), peer).await,
                Err(error) => {
                    // Not a client's doing on an unconnected socket: back off.
                    tracing::warn!(listener = %l.name, %error, "udp receive failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            () = &mut timer, if armed => {
                armed = false;
                l.expire(clock::now());
            }
            () = l.w.stop.notified() => break,
        }
    }
    drain(&l).await;
}

/// Shutdown: no client datagram is read any more (an upgraded process reads them
/// from the same socket), and sessions end once quiet for [`STOP_GRACE`].
async fn drain(l: &Rc<Local>) {
    if l.table.borrow().is_empty() {
        return;
    }
    let _busy = Busy::new(&l.w);
    {
        let mut table = l.table.borrow_mut();
        let (max, idle) = (table.max(), table.idle().min(STOP_GRACE));
        table.set_limits(max, idle);
    }
    loop {
        let Some(at) = l.table.borrow().next_expiry() else {
            return;
        };
        tokio::time::sleep_until(deadline(at)).await;
        l.expire(clock::now());
    }
}

/// The runtime's instant for `at` on the process clock.
fn deadline(at: Duration) -> tokio::time::Instant {
    tokio::time::Instant::now() + at.saturating_sub(clock::now())
}

/// One datagram from `peer`: on to its session's backend, or the start of a session.
async fn datagram(l: &Rc<Local>, data: &[u8], peer: SocketAddr) {
    let now = clock::now();
    l.counters.received(data.len());
    let known = l.table.borrow_mut().touch(&peer, now).cloned();
    if let Some(s) = known {
        if !s.is_ended() && !s.is_backend_down() {
            s.forward(l, data);
            return;
        }
        // Its backend failed its health checks, was ejected or refused the last
        // datagram: pick again.
        l.table.borrow_mut().remove(&peer);
        s.end(End::BackendDown);
    }
    start(l, data, peer, now).await;
}

/// What a new session needs from its pool: an admission, a backend and a socket.
struct Picked {
    admitted: RequestSlot,
    backend: usize,
    lease: Lease,
    up: UdpSocket,
}

/// Starts a session for `peer` with its first datagram `data`.
async fn start(l: &Rc<Local>, data: &[u8], peer: SocketAddr, now: Duration) {
    let snap = l.w.shared.load_full();
    let Some(cfg) = snap.udp_listeners.get(&*l.name) else {
        l.counters.dropped(Dropped::Refused);
        return;
    };
    l.fit(cfg);
    let Some(pool) = snap.pools.get(cfg.pool) else {
        l.counters.dropped(Dropped::Refused);
        return;
    };
    // A slot now if one is free; else room is made below, once a backend is had,
    // so a pool without backends evicts nothing.
    let mut slot = cfg.counters.take_slot(cfg.max_sessions);
    if slot.is_none() && l.table.borrow().is_empty() {
        l.counters.dropped(Dropped::Full);
        return;
    }
    let started = Instant::now();
    let mut e = Entry {
        listener: &cfg.name,
        client: Some(peer),
        proto: "UDP",
        pool: &pool.name,
        ..Entry::default()
    };
    let picked = match pick(&l.w, pool, peer, &mut e).await {
        Ok(p) => p,
        Err(err) => {
            tracing::debug!(listener = %l.name, %peer, error = %err, "udp session not started");
            l.counters.dropped(Dropped::Refused);
            e.status = err.status();
            e.error = Some(err.to_string());
            e.duration = started.elapsed();
            crate::access_log::record(&e);
            if l.w.log.enabled() {
                l.w.log.write(&e);
            }
            return;
        }
    };
    let slot = loop {
        if let Some(slot) = slot.take() {
            break slot;
        }
        let Some((_, idlest)) = l.table.borrow_mut().pop_idlest() else {
            l.counters.dropped(Dropped::Full);
            return;
        };
        l.counters.evicted();
        idlest.end(End::Evicted);
        slot = cfg.counters.take_slot(cfg.max_sessions);
    };
    let member = pool.members.get(picked.backend).cloned();
    let s = Rc::new(Session::new(peer, picked.up, slot, member));
    s.forward(l, data);
    if let Some((_, old)) = l.table.borrow_mut().insert(peer, s.clone(), now) {
        l.counters.evicted();
        old.end(End::Evicted);
    }
    let run = session::run(
        l.clone(),
        s,
        snap.clone(),
        (cfg.pool, picked.backend),
        (picked.admitted, picked.lease),
        started,
    );
    tokio::task::spawn_local(run);
}

/// Admits a session to `pool` and picks its backend, as a TCP connection's.
async fn pick<'p>(
    w: &Worker,
    pool: &'p Pool,
    peer: SocketAddr,
    e: &mut Entry<'p>,
) -> Result<Picked, ProxyError> {
    let admitted = upstream::admit(pool)?;
    // Validated: a udp listener's hashing pool hashes the client address.
    let hash = pool
        .hash_key
        .as_ref()
        .and_then(|key| key.hash(peer.ip(), "", |_| None));
    let mut attempts = Attempts::new(pool, hash, Pinned::default(), false);
    let Some(backend) = attempts.next(w, e).await else {
        return Err(attempts.exhausted());
    };
    let index = pool
        .backends
        .iter()
        .position(|b| std::ptr::eq(b, backend))
        .ok_or(ProxyError::NoBackend)?;
    // Only a local failure (out of descriptors or ports) can stop this; the
    // backend is not to blame.
    let up = session::connect(backend.addr).map_err(|err| ProxyError::Connect {
        addr: backend.addr,
        reason: err.to_string(),
    })?;
    Ok(Picked {
        admitted,
        backend: index,
        lease: Lease::new(&backend.state),
        up,
    })
}
