//! One worker: a thread with a current-thread runtime, its own listener sockets
//! (SO_REUSEPORT) and its own upstream pools. Nothing on the hot path is shared
//! between workers but the snapshot pointer and backend atomics.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::sync::Notify;

use crate::access_log::{AccessLog, WorkerLog};
use crate::io::pool::{H1Pool, H2Pool};
use crate::state::{Registry, Snapshot};

/// The published snapshot, swapped on reload.
pub type Shared = Arc<ArcSwap<Snapshot>>;

/// Per-worker state, shared by the worker's tasks through `Rc`.
pub struct Worker {
    /// Current snapshot.
    pub shared: Shared,
    /// Idle HTTP/1.1 upstream connections.
    pub h1_pool: H1Pool,
    /// Multiplexed h2c upstream connections.
    pub h2_pool: H2Pool,
    /// This worker's access log buffer.
    pub log: WorkerLog,
    /// Where sampled requests' spans go.
    pub spans: crate::spans::Spans,
    /// Backend health shared with the health task (ejections wake it).
    pub registry: Arc<Registry>,
    /// Set once shutdown starts; connections finish their request and close.
    pub stopping: Cell<bool>,
    /// Woken when shutdown starts (accept loops and HTTP/2 connections listen).
    pub stop: Notify,
    /// Requests (and HTTP/2 connections) in progress: shutdown waits for these.
    pub busy: Cell<usize>,
    /// Wakes the shutdown waiter as work finishes.
    pub idle: Notify,
    rng: Cell<u64>,
    /// Request and trace IDs: seeded from the OS, so two instances of a fleet
    /// (same pid, same worker number) never make the same IDs.
    ids: Cell<u64>,
}

impl Worker {
    /// A worker reading `shared`.
    pub fn new(
        shared: Shared,
        (log, spans): (AccessLog, crate::spans::Spans),
        registry: Arc<Registry>,
        seed: u64,
    ) -> Rc<Self> {
        Rc::new(Self {
            shared,
            registry,
            h1_pool: H1Pool::default(),
            h2_pool: H2Pool::default(),
            log: WorkerLog::new(log),
            spans,
            stopping: Cell::new(false),
            stop: Notify::new(),
            busy: Cell::new(0),
            idle: Notify::new(),
            rng: Cell::new(seed | 1),
            ids: Cell::new(os_seed()),
        })
    }

    /// Random bits for balancer tie-breaks (xorshift64*: fast, per worker, unshared).
    pub fn entropy(&self) -> u64 {
        let mut x = self.rng.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng.set(x);
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// 64 random bits for IDs (splitmix64 over an OS-seeded counter).
    pub fn random_u64(&self) -> u64 {
        let x = self.ids.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
        self.ids.set(x);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Monotonic nanoseconds for the balancers' time-based state (peak EWMA), on
    /// the process-wide clock that health state shares.
    pub fn now_ns(&self) -> u64 {
        crate::clock::now_ns()
    }

    /// Begins shutdown: no new connections; busy ones close after their request.
    pub fn begin_stop(&self) {
        self.stopping.set(true);
        self.stop.notify_waiters();
    }
}

/// 64 bits from the OS's randomness (std seeds `RandomState` from it).
fn os_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(crate::clock::now_ns());
    h.finish()
}

/// Counts work in progress for graceful shutdown, until dropped.
pub struct Busy(Rc<Worker>);

impl Busy {
    /// Counts one more.
    pub fn new(w: &Rc<Worker>) -> Self {
        w.busy.set(w.busy.get() + 1);
        Self(w.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.busy.set(self.0.busy.get().saturating_sub(1));
        self.0.idle.notify_waiters();
    }
}
