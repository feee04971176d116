//! Listener and route counters kept across reloads: requests by status class,
//! connections, a listener's connection cap and refusals, TLS handshakes. Sharded
//! per worker thread where every request writes.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Requests by status class and client connections of one listener (by name) or
/// route (by index), kept across reloads.
///
/// Every request of a listener lands here, from every worker: one shared counter
/// would bounce its cache line between cores on each request. Each worker thread
/// writes its own shard (a cache line of its own) and a scrape sums them.
#[derive(Debug)]
pub struct Traffic {
    shards: Box<[Shard]>,
    /// A listener's `max_connections` count and refusals (unused for routes).
    pub admission: Admission,
    /// An https listener's handshakes.
    pub tls: HandshakeStats,
    /// An HTTP/3 listener's QUIC counters.
    pub quic: super::quic::QuicStats,
}

/// Shards per [`Traffic`]; worker threads beyond it share.
pub const SHARDS: usize = 16;

#[derive(Debug, Default)]
#[repr(align(64))]
struct Shard {
    requests: [AtomicU64; 5],
    accepted: AtomicU64,
    closed: AtomicU64,
}

impl Default for Traffic {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
            admission: Admission::default(),
            tls: HandshakeStats::default(),
            quic: super::quic::QuicStats::default(),
        }
    }
}

thread_local! {
    /// This thread's shard of every [`Traffic`].
    static SHARD: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Picks the calling thread's shard: each worker calls it once with its id.
pub fn set_shard(worker: usize) {
    SHARD.with(|s| s.set(worker % SHARDS));
}

/// The calling thread's shard, below [`SHARDS`]: other sharded counters (a udp
/// listener's datagrams) use the same one.
pub fn shard() -> usize {
    SHARD.with(std::cell::Cell::get)
}

impl Traffic {
    fn shard(&self) -> &Shard {
        let i = SHARD.with(std::cell::Cell::get);
        // `i < SHARDS` by construction; the fallback keeps this total.
        self.shards.get(i).unwrap_or(&self.shards[0])
    }

    /// Counts one answered request by its status class.
    pub fn count(&self, status: u16) {
        let shard = self.shard();
        if let Some(c) = shard
            .requests
            .get(usize::from(status / 100).wrapping_sub(1))
        {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Requests by status class (`CLASSES` order).
    pub fn requests(&self) -> [u64; 5] {
        let mut sum = [0u64; 5];
        for s in self.shards.iter() {
            for (t, c) in sum.iter_mut().zip(&s.requests) {
                *t += c.load(Ordering::Relaxed);
            }
        }
        sum
    }

    /// Client connections accepted, and of those still open.
    pub fn connections(&self) -> (u64, u64) {
        let (mut accepted, mut closed) = (0u64, 0u64);
        for s in self.shards.iter() {
            accepted += s.accepted.load(Ordering::Relaxed);
            closed += s.closed.load(Ordering::Relaxed);
        }
        (accepted, accepted.saturating_sub(closed))
    }
}

/// Counts one open client connection of a listener until dropped. A connection
/// lives on one worker, so it opens and closes on the same shard.
#[derive(Debug)]
pub struct Open(std::sync::Arc<Traffic>);

impl Open {
    /// Counts a connection just accepted.
    pub fn new(t: std::sync::Arc<Traffic>) -> Self {
        t.shard().accepted.fetch_add(1, Ordering::Relaxed);
        Self(t)
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.shard().closed.fetch_add(1, Ordering::Relaxed);
    }
}

/// Connections of one listener open at once (counted only when it is capped) and
/// the connections it refused, by reason.
#[derive(Debug, Default)]
pub struct Admission {
    /// Connections open, counted only when the listener is capped.
    pub open: AtomicU32,
    /// Refused over `max_connections`.
    pub over_cap: AtomicU64,
    /// Refused for their PROXY header.
    pub proxy: AtomicU64,
    /// Refused by the listener's `allow` / `deny` (layer-4 listeners).
    pub access: AtomicU64,
    /// Refused over `max_connections_per_client`.
    pub per_client: AtomicU64,
    /// Connections open per client address, kept only when the listener caps them.
    pub clients: std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, u32>>,
}

impl Admission {
    /// Connections refused: over `max_connections`, and for their PROXY header (a
    /// peer outside `proxy_protocol_from`, or a missing, malformed or late header).
    pub fn refused(&self) -> (u64, u64) {
        (
            self.over_cap.load(Ordering::Relaxed),
            self.proxy.load(Ordering::Relaxed),
        )
    }

    /// Connections a layer-4 listener's `allow` / `deny` refused.
    pub fn refused_access(&self) -> u64 {
        self.access.load(Ordering::Relaxed)
    }

    /// Counts a connection refused by `allow` / `deny`.
    pub fn refuse_access(&self) {
        self.access.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a connection refused for its PROXY header.
    pub fn refuse_proxy(&self) {
        self.proxy.fetch_add(1, Ordering::Relaxed);
    }
}

/// Handshakes of one listener, by outcome.
#[derive(Debug, Default)]
pub struct HandshakeStats {
    /// Completed handshakes.
    pub ok: AtomicU64,
    /// Of those, the ones that resumed a session (a ticket) instead of a full
    /// handshake.
    pub resumed: AtomicU64,
    /// Failed handshakes, by [`FAILURE_REASONS`].
    pub failed: [AtomicU64; FAILURE_REASONS.len()],
}

/// The reasons a handshake failure is counted under.
pub const FAILURE_REASONS: [&str; 6] = [
    "timeout",
    "closed",
    "protocol",
    "certificate",
    "alert",
    "other",
];

impl HandshakeStats {
    /// Counts a failed handshake under `FAILURE_REASONS[reason]`.
    pub fn fail(&self, reason: usize) {
        if let Some(c) = self.failed.get(reason) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }
}
