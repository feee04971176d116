//! The keys of one limiter, shared by every worker of a process (so a limit holds
//! for the process, not per worker), in a table that never holds more than
//! `max_keys`: each shard keeps two generations, and a key not touched for a whole
//! generation is dropped with it, an approximation of least-recently-used that
//! costs no list upkeep on the hot path.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use super::{Decision, Gcra};

const SHARDS: usize = 16;

/// A map from key to `V` holding at most a set number of keys, in shards that
/// workers lock one at a time.
#[derive(Debug)]
pub(super) struct Bounded<V> {
    shards: Box<[Mutex<Shard<V>>]>,
    evicted: AtomicU64,
}

#[derive(Debug)]
struct Shard<V> {
    young: HashMap<u64, V, RandomState>,
    old: HashMap<u64, V, RandomState>,
    /// Keys a generation holds before it becomes the old one.
    generation: usize,
}

impl<V: Default> Shard<V> {
    /// The slot of `key`, made young; returns the keys dropped to make room.
    fn slot(&mut self, key: u64) -> (&mut V, usize) {
        if self.young.contains_key(&key) {
            return (self.young.entry(key).or_default(), 0);
        }
        let value = self.old.remove(&key).unwrap_or_default();
        let mut dropped = 0;
        if self.young.len() >= self.generation {
            let young = std::mem::replace(
                &mut self.young,
                HashMap::with_capacity_and_hasher(self.generation, RandomState::new()),
            );
            dropped = std::mem::replace(&mut self.old, young).len();
        }
        (self.young.entry(key).or_insert(value), dropped)
    }

    fn len(&self) -> usize {
        self.young.len() + self.old.len()
    }
}

impl<V: Default> Bounded<V> {
    /// A table of at most `max_keys` keys (at least one per shard).
    pub(super) fn new(max_keys: usize) -> Self {
        let shards = if max_keys >= SHARDS * 2 { SHARDS } else { 1 };
        let generation = (max_keys / shards / 2).max(1);
        let shards = (0..shards)
            .map(|_| {
                Mutex::new(Shard {
                    young: HashMap::with_hasher(RandomState::new()),
                    old: HashMap::with_hasher(RandomState::new()),
                    generation,
                })
            })
            .collect();
        Self {
            shards,
            evicted: AtomicU64::new(0),
        }
    }

    /// Runs `f` on the value of `key` (a default one for a key not held).
    pub(super) fn with<T>(&self, key: u64, f: impl FnOnce(&mut V) -> T) -> T {
        let i = (key.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 58) as usize % self.shards.len();
        // A shard is plain data: a panic elsewhere leaves it usable.
        let mut shard = self.shards[i].lock().unwrap_or_else(|e| e.into_inner());
        let (value, dropped) = shard.slot(key);
        let out = f(value);
        drop(shard);
        if dropped > 0 {
            self.evicted.fetch_add(dropped as u64, Ordering::Relaxed);
        }
        out
    }

    /// Keys held now.
    pub(super) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).len())
            .sum()
    }

    /// Keys dropped to stay within the bound, since the start.
    pub(super) fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }
}

/// One limiter's GCRA and its bounded key table.
#[derive(Debug)]
pub struct Limiter {
    /// The rate and burst.
    pub gcra: Gcra,
    table: Bounded<u64>,
}

impl Limiter {
    /// A limiter holding at most `max_keys` keys.
    pub fn new(gcra: Gcra, max_keys: usize) -> Self {
        Self {
            gcra,
            table: Bounded::new(max_keys),
        }
    }

    /// Decides on one request with `key` at `now` (nanoseconds).
    pub fn check(&self, key: u64, now: u64) -> Decision {
        self.table.with(key, |tat| self.gcra.check(tat, now, 1))
    }

    /// Keys held now.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keys dropped to stay within the bound, since the start.
    pub fn evicted(&self) -> u64 {
        self.table.evicted()
    }
}

#[cfg(test)]
mod tests {
    use super::super::Rate;
    use super::*;

    fn limiter(max_keys: usize) -> Limiter {
        let rate = Rate {
            count: 1,
            per_secs: 60,
        };
        Limiter::new(Gcra::new(rate, 1), max_keys)
    }

    #[test]
    fn a_flood_of_keys_stays_within_the_bound() {
        let l = limiter(1000);
        for key in 0..100_000u64 {
            let _ = l.check(key.wrapping_mul(0x9e37_79b9_7f4a_7c15), 1);
            assert!(l.len() <= 1000, "{} keys at {key}", l.len());
        }
        assert!(l.evicted() >= 99_000);
    }

    #[test]
    fn a_busy_key_survives_a_flood() {
        let l = limiter(1000);
        let busy = 42;
        assert!(matches!(l.check(busy, 1), Decision::Allow { .. }));
        for key in 1000..50_000u64 {
            let _ = l.check(key, 1);
            // Touched often, the key stays young and its budget stays spent.
            if key % 100 == 0 {
                assert!(matches!(l.check(busy, 1), Decision::Deny { .. }), "{key}");
            }
        }
    }

    #[test]
    fn one_key_holds_its_limit_across_threads() {
        let rate = Rate {
            count: 100,
            per_secs: 1,
        };
        let l = Limiter::new(Gcra::new(rate, 100), 1_000_000);
        let allowed = AtomicU64::new(0);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..1000 {
                        if matches!(l.check(7, 5), Decision::Allow { .. }) {
                            allowed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        assert_eq!(allowed.load(Ordering::Relaxed), 100);
    }
}

/// The memory a full table takes, for the README: `cargo test -p fulcrum-core
/// --release -- --ignored --nocapture table_memory` (Linux: reads VmRSS).
#[cfg(test)]
mod memory {
    use super::super::{Gcra, Rate};
    use super::Limiter;

    fn rss_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    #[test]
    #[ignore = "a measurement, not a check: run it alone"]
    fn table_memory() {
        let rate = Rate {
            count: 1,
            per_secs: 3600,
        };
        for max_keys in [100_000usize, 1_000_000] {
            let before = rss_kib();
            let l = Limiter::new(Gcra::new(rate, 1), max_keys);
            // Three times the bound of distinct keys: a flood.
            for key in 0..(3 * max_keys as u64) {
                let _ = l.check(key.wrapping_mul(0x9e37_79b9_7f4a_7c15), 1);
            }
            let after = rss_kib();
            let held = l.len();
            println!(
                "max_keys {max_keys}: {held} keys held after {} distinct, RSS +{} KiB ({:.1} bytes per key bound)",
                3 * max_keys,
                after.saturating_sub(before),
                (after.saturating_sub(before) * 1024) as f64 / max_keys as f64
            );
            assert!(held <= max_keys);
            drop(l);
        }
    }
}
