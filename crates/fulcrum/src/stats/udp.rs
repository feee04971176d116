//! A udp listener's counters, shared by its workers and kept across reloads by
//! listener name: sessions open (the `max_sessions` bound across workers and the
//! gauge), sessions started and evicted, and datagrams and bytes each way.
//!
//! The datagram counters change on every datagram from every worker, so, like a
//! listener's [`Traffic`](crate::stats::Traffic), each worker thread writes a
//! shard of its own and a scrape sums them. The session counters change once per
//! session and are plain atomics.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::stats::SHARDS;

/// Why a datagram went nowhere.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dropped {
    /// No session could be made: no backend, a pool limit, or no socket (the
    /// access log line says which).
    Refused,
    /// The listener was at `max_sessions` and this worker had no session to evict.
    Full,
    /// A socket could not take it (its buffer full, or an error), either way.
    Unsent,
}

impl Dropped {
    /// Every reason, in label order.
    pub const ALL: [Dropped; 3] = [Dropped::Refused, Dropped::Full, Dropped::Unsent];

    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Dropped::Refused => "refused",
            Dropped::Full => "full",
            Dropped::Unsent => "unsent",
        }
    }
}

/// One listener's counters.
#[derive(Debug)]
pub struct Counters {
    /// Sessions open now, on every worker.
    open: AtomicU32,
    started: AtomicU64,
    evicted: AtomicU64,
    shards: Box<[Shard]>,
}

#[derive(Debug, Default)]
#[repr(align(64))]
struct Shard {
    /// Datagrams from clients, and their bytes.
    datagrams_in: AtomicU64,
    bytes_in: AtomicU64,
    /// Datagrams to clients, and their bytes.
    datagrams_out: AtomicU64,
    bytes_out: AtomicU64,
    dropped: [AtomicU64; 3],
}

impl Default for Counters {
    fn default() -> Self {
        Self {
            open: AtomicU32::new(0),
            started: AtomicU64::new(0),
            evicted: AtomicU64::new(0),
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
        }
    }
}

/// Holds one session against the listener's `max_sessions` until dropped.
#[derive(Debug)]
pub struct Slot(Arc<Counters>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Counters {
    fn shard(&self) -> &Shard {
        let i = crate::stats::shard();
        // `i < SHARDS` by construction; the fallback keeps this total.
        self.shards.get(i).unwrap_or(&self.shards[0])
    }

    /// A session slot if fewer than `max` are open on all workers together;
    /// counts the session as started.
    pub fn take_slot(self: &Arc<Self>, max: u32) -> Option<Slot> {
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()?;
        self.started.fetch_add(1, Ordering::Relaxed);
        Some(Slot(self.clone()))
    }

    /// Counts a session ended to make room for a new one.
    pub fn evicted(&self) {
        self.evicted.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a datagram of `bytes` from a client.
    pub fn received(&self, bytes: usize) {
        let s = self.shard();
        s.datagrams_in.fetch_add(1, Ordering::Relaxed);
        s.bytes_in.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Counts a datagram of `bytes` sent to a client.
    pub fn sent(&self, bytes: usize) {
        let s = self.shard();
        s.datagrams_out.fetch_add(1, Ordering::Relaxed);
        s.bytes_out.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Counts a datagram that went nowhere.
    pub fn dropped(&self, why: Dropped) {
        let i = Dropped::ALL.iter().position(|d| *d == why).unwrap_or(0);
        if let Some(c) = self.shard().dropped.get(i) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Sessions open now.
    pub fn open(&self) -> u32 {
        self.open.load(Ordering::Relaxed)
    }

    /// Sessions started, and of those evicted to make room.
    pub fn sessions(&self) -> (u64, u64) {
        (
            self.started.load(Ordering::Relaxed),
            self.evicted.load(Ordering::Relaxed),
        )
    }

    /// `(datagrams, bytes)` from clients, then to clients.
    pub fn datagrams(&self) -> [(u64, u64); 2] {
        let mut sum = [(0, 0); 2];
        for s in self.shards.iter() {
            sum[0].0 += s.datagrams_in.load(Ordering::Relaxed);
            sum[0].1 += s.bytes_in.load(Ordering::Relaxed);
            sum[1].0 += s.datagrams_out.load(Ordering::Relaxed);
            sum[1].1 += s.bytes_out.load(Ordering::Relaxed);
        }
        sum
    }

    /// Datagrams dropped, by reason (`Dropped::ALL` order).
    pub fn drops(&self) -> [u64; 3] {
        let mut sum = [0; 3];
        for s in self.shards.iter() {
            for (t, c) in sum.iter_mut().zip(&s.dropped) {
                *t += c.load(Ordering::Relaxed);
            }
        }
        sum
    }
}

/// Every udp listener's counters by name, kept across reloads (in the
/// registry of state kept across reloads).
#[derive(Debug, Default)]
pub struct Kept(Mutex<HashMap<String, Arc<Counters>>>);

impl Kept {
    /// The counters of listener `name`.
    pub fn get(&self, name: &str) -> Arc<Counters> {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(name.to_owned()).or_default().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_bound_open_sessions_and_free_on_drop() {
        let c = Arc::new(Counters::default());
        let a = c.take_slot(2).unwrap();
        let _b = c.take_slot(2).unwrap();
        assert!(c.take_slot(2).is_none());
        assert_eq!(c.open(), 2);
        drop(a);
        assert_eq!(c.open(), 1);
        let _c = c.take_slot(2).unwrap();
        assert_eq!(c.sessions(), (3, 0));
    }

    #[test]
    fn datagrams_and_drops_sum_over_shards() {
        let c = Counters::default();
        c.received(10);
        c.received(5);
        c.sent(7);
        c.dropped(Dropped::Full);
        c.dropped(Dropped::Unsent);
        c.dropped(Dropped::Unsent);
        assert_eq!(c.datagrams(), [(2, 15), (1, 7)]);
        assert_eq!(c.drops(), [0, 1, 2]);
    }
}
