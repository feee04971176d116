//! Per-worker connection pools. A worker owns its pools (`RefCell`, no locks), as in
//! nginx and HAProxy; an idle HTTP/1.1 socket is checked for EOF before reuse.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::{is_reusable, Conn};
use bytes::Bytes;

/// Idle time after which a pooled connection is probed for EOF before reuse.
const PROBE_AFTER: Duration = Duration::from_secs(1);

struct Idle {
    stream: Conn,
    since: Instant,
}

/// Which connections may carry a pool's request: the backend's address and the
/// pool's TLS settings ([`crate::tls::Upstream::id`], 0 for plain TCP).
pub type ConnKey = (SocketAddr, u64);

/// Idle HTTP/1.1 connections by backend address and TLS settings, newest last.
#[derive(Default)]
pub struct H1Pool {
    idle: RefCell<HashMap<ConnKey, Vec<Idle>>>,
}

impl H1Pool {
    /// An idle, still-open connection to `addr` younger than `max_age`, newest first.
    pub fn take(&self, addr: ConnKey, max_age: Duration) -> Option<Conn> {
        let mut idle = self.idle.borrow_mut();
        let list = idle.get_mut(&addr)?;
        while let Some(conn) = list.pop() {
            let idle = conn.since.elapsed();
            // A probe costs a syscall per request, so only connections idle long
            // enough for a backend's keep-alive timeout to matter are probed; a
            // fresher one that turns out closed is retried by the caller.
            if idle < max_age && (idle < PROBE_AFTER || is_reusable(&conn.stream)) {
                return Some(conn.stream);
            }
        }
        None
    }

    /// Keeps a connection for reuse unless `max_idle` are already kept.
    pub fn put(&self, addr: ConnKey, stream: Conn, max_idle: usize) {
        let mut idle = self.idle.borrow_mut();
        let list = idle.entry(addr).or_default();
        if list.len() < max_idle {
            list.push(Idle {
                stream,
                since: Instant::now(),
            });
        }
    }

    /// Closes connections idle longer than `max_age` or closed by the backend.
    pub fn sweep(&self, max_age: impl Fn(SocketAddr) -> Duration) {
        let mut idle = self.idle.borrow_mut();
        idle.retain(|addr, list| {
            let age = max_age(addr.0);
            list.retain(|c| c.since.elapsed() < age && is_reusable(&c.stream));
            !list.is_empty()
        });
    }

    /// Closes every idle connection.
    pub fn clear(&self) {
        self.idle.borrow_mut().clear();
    }
}

/// One multiplexed HTTP/2 connection per backend address and TLS settings.
#[derive(Default)]
pub struct H2Pool {
    conns: RefCell<HashMap<ConnKey, h2::client::SendRequest<Bytes>>>,
}

impl H2Pool {
    /// The open connection to `addr`, if any.
    pub fn get(&self, addr: ConnKey) -> Option<h2::client::SendRequest<Bytes>> {
        self.conns.borrow().get(&addr).cloned()
    }

    /// Remembers a new connection to `addr`.
    pub fn put(&self, addr: ConnKey, conn: h2::client::SendRequest<Bytes>) {
        self.conns.borrow_mut().insert(addr, conn);
    }

    /// Forgets a broken connection.
    pub fn remove(&self, addr: ConnKey) {
        self.conns.borrow_mut().remove(&addr);
    }

    /// Drops every connection.
    pub fn clear(&self) {
        self.conns.borrow_mut().clear();
    }
}
