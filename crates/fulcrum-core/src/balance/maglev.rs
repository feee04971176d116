//! Maglev: consistent hashing through a lookup table (Eisenbud et al. 2016).
//!
//! Build: the table has `M` entries, `M` prime (65,537 by default). Each
//! backend walks its own permutation of the slots, `offset + j × skip (mod M)`,
//! with `offset = h1(key) % M` and `skip = h2(key) % (M − 1) + 1`, where `h1`
//! and `h2` are [`stable_hash`] of the backend's key prefixed by `maglev-offset:`
//! and `maglev-skip:` (a skip another backend already has moves to the next free
//! value, in key order). Backends take turns, in key order, claiming the next
//! free slot of their permutation until the table is full. Everything is
//! derived from the keys, so every Fulcrum with the same backends builds the
//! same table whatever their order.
//!
//! Weights (Envoy's weighted Maglev): a backend of the largest weight takes a
//! turn in every round, one of weight `w` in `w / w_max` of the rounds, so
//! entries end up proportional to weight. With equal weights every backend
//! gets `⌊M/N⌋` or `⌈M/N⌉` entries.
//!
//! Pick: `table[hash % M]`, O(1). Removing one of N backends moves its 1/N of
//! the keys plus a small share of the others (the table is rebuilt, and the
//! paper's permutations trade exact minimal disruption for even spread).
//! When the backend in the slot is down or excluded the key is rehashed
//! ([`stable_hash`] of the hash and the attempt) up to [`REHASHES`] times,
//! then a scan of the pool in key order finds any eligible backend; that moves
//! only the keys of ineligible backends, spread over the rest, and they come
//! back when it returns, with no rebuild. Without a hash key the pick is a
//! random eligible backend (the caller counts that fallback).
use super::ring_hash::{key_order, scan};
use super::{is_eligible, stable_hash, Backend, BackendId, Balancer, PickCtx};

/// Slots tried after the first before the pool scan.
const REHASHES: u64 = 8;

/// Sizes above this are lowered to it (then raised to the next prime,
/// 16,777,259): 64 MiB of table, enough for 160,000 backends at 100 entries each.
const MAX_TABLE_SIZE: u32 = 1 << 24;

/// Consistent hashing through a prime-sized lookup table.
#[derive(Debug, Default)]
pub struct Maglev {
    /// Pool index per slot; empty for an empty pool.
    table: Vec<u32>,
    /// Pool indices sorted by key: the fallback scan order.
    by_key: Vec<u32>,
}

impl Maglev {
    /// The table for `pool`. `table_size` should be a prime well above the
    /// number of backends (the paper suggests 100×); one that is not prime is
    /// raised to the next prime, and it is kept between 2 and about 2^24.
    pub fn new(pool: &[Backend], table_size: u32) -> Self {
        let by_key = key_order(pool);
        let m = next_prime(table_size.clamp(2, MAX_TABLE_SIZE));
        if by_key.is_empty() {
            return Self {
                table: Vec::new(),
                by_key,
            };
        }
        Self {
            table: fill(pool, &by_key, m),
            by_key,
        }
    }

    /// The table size in use (a prime), 0 for an empty pool.
    pub fn table_size(&self) -> usize {
        self.table.len()
    }
}

impl Balancer for Maglev {
    fn pick(&self, pool: &[Backend], ctx: &PickCtx<'_>) -> Option<BackendId> {
        let eligible = |i: usize| pool.get(i).is_some_and(|b| is_eligible(b, i, ctx.exclude));
        let Some(hash) = ctx.hash else {
            return scan(&self.by_key, ctx.entropy, eligible);
        };
        let m = self.table.len() as u64;
        if m > 0 {
            let mut h = hash;
            for attempt in 1..=REHASHES + 1 {
                let owner = self.table[(h % m) as usize] as usize;
                if eligible(owner) {
                    return BackendId::from_index(owner);
                }
                h = rehash(hash, attempt);
            }
        }
        scan(&self.by_key, hash, eligible)
    }
}

/// One backend's walk through its permutation, and its weighted turn.
struct Filler {
    index: u32,
    /// Next slot to try, `offset + j × skip (mod M)`.
    next: u64,
    skip: u64,
    weight: u64,
    /// Round from which this backend takes its next turn, scaled by `w_max`.
    due: u64,
}

/// The Maglev population loop, weighted as Envoy does it.
fn fill(pool: &[Backend], by_key: &[u32], m: u32) -> Vec<u32> {
    let m64 = u64::from(m);
    let max_weight = pool
        .iter()
        .map(|b| u64::from(b.weight.get()))
        .max()
        .unwrap_or(1);
    let mut fillers: Vec<Filler> = by_key
        .iter()
        .map(|&index| {
            let b = &pool[index as usize];
            Filler {
                index,
                next: salted(b"maglev-offset:", &b.key.0) % m64,
                skip: salted(b"maglev-skip:", &b.key.0) % (m64 - 1) + 1,
                weight: u64::from(b.weight.get()),
                due: max_weight,
            }
        })
        .collect();
    distinct_skips(&mut fillers, m64);
    let mut table = vec![u32::MAX; m as usize];
    let mut filled = 0u64;
    let mut round = 0u64;
    while filled < m64 {
        round += 1;
        for f in &mut fillers {
            if round.saturating_mul(f.weight) < f.due {
                continue;
            }
            f.due = f.due.saturating_add(max_weight);
            // Each permutation visits every slot, so a free one is found
            // while the table is not full.
            while table[f.next as usize] != u32::MAX {
                f.next = (f.next + f.skip) % m64;
            }
            table[f.next as usize] = f.index;
            f.next = (f.next + f.skip) % m64;
            filled += 1;
            if filled == m64 {
                break;
            }
        }
    }
    table
}

/// Gives every backend its own `skip`, moving a taken one to the next free value
/// (in key order, so every Fulcrum builds the same table). Two backends with one
/// skip walk the same cycle a few steps apart and trade many slots whenever the
/// turn order changes: removing any third backend then moved keys between them,
/// up to 2.8% of all keys in a pool of 55 where 1.8% (1/N) should move.
fn distinct_skips(fillers: &mut [Filler], m: u64) {
    let mut taken = std::collections::BTreeSet::new();
    for f in fillers {
        // Every value 1..M is a full permutation (M is prime); with fewer backends
        // than M − 1 a free one always exists.
        for _ in 1..m {
            if taken.insert(f.skip) {
                break;
            }
            f.skip = f.skip % (m - 1) + 1;
        }
    }
}

/// `stable_hash(salt ++ key)`.
fn salted(salt: &[u8], key: &str) -> u64 {
    let mut bytes = Vec::with_capacity(salt.len() + key.len());
    bytes.extend_from_slice(salt);
    bytes.extend_from_slice(key.as_bytes());
    stable_hash(&bytes)
}

/// The `attempt`-th alternative hash: `stable_hash` of both, little-endian.
fn rehash(hash: u64, attempt: u64) -> u64 {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&hash.to_le_bytes());
    bytes[8..].copy_from_slice(&attempt.to_le_bytes());
    stable_hash(&bytes)
}

/// The smallest prime `>= n` (n ≥ 2), by trial division: fine at table sizes.
fn next_prime(n: u32) -> u32 {
    let is_prime = |k: u64| k >= 2 && (2..).take_while(|d| d * d <= k).all(|d| k % d != 0);
    (u64::from(n)..)
        .find(|&k| is_prime(k))
        .and_then(|k| u32::try_from(k).ok())
        .unwrap_or(n)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::pool;
    use super::*;

    fn at(hash: u64) -> PickCtx<'static> {
        PickCtx {
            hash: Some(hash),
            ..PickCtx::default()
        }
    }

    /// Entries per backend, read through picks: hash `s` lands on slot `s`.
    fn entries(maglev: &Maglev, pool: &[Backend]) -> Vec<usize> {
        let mut counts = vec![0; pool.len()];
        for s in 0..maglev.table_size() as u64 {
            counts[maglev.pick(pool, &at(s)).unwrap().index()] += 1;
        }
        counts
    }

    #[test]
    fn table_size_is_raised_to_a_prime() {
        assert_eq!(next_prime(65_537), 65_537);
        assert_eq!(next_prime(65_536), 65_537);
        assert_eq!(next_prime(2), 2);
        assert_eq!(next_prime(100), 101);
        let pool = pool(&[1, 1]);
        assert_eq!(Maglev::new(&pool, 100).table_size(), 101);
        assert_eq!(Maglev::new(&pool, 0).table_size(), 2);
        assert_eq!(Maglev::new(&[], 65_537).table_size(), 0);
    }

    #[test]
    fn equal_weights_differ_by_at_most_one_entry() {
        let pool = pool(&[1; 7]);
        let maglev = Maglev::new(&pool, 65_537);
        let e = entries(&maglev, &pool);
        assert_eq!(e.iter().sum::<usize>(), 65_537);
        assert!(
            e.iter().all(|&c| c == 65_537 / 7 || c == 65_537 / 7 + 1),
            "{e:?}"
        );
    }

    #[test]
    fn entries_follow_weights() {
        let pool = pool(&[4, 2, 1, 1]);
        let maglev = Maglev::new(&pool, 8_009);
        let e = entries(&maglev, &pool);
        for (c, w) in e.iter().zip([4, 2, 1, 1]) {
            assert!(c.abs_diff(8_009 * w / 8) <= 1, "{e:?}");
        }
    }

    #[test]
    fn unavailable_keys_spread_and_return() {
        let pool = pool(&[1, 1, 1, 1]);
        let maglev = Maglev::new(&pool, 1_009);
        let before: Vec<_> = (0..1_009).map(|s| maglev.pick(&pool, &at(s))).collect();
        pool[2].state.set_available(false);
        let mut moved_to = [0; 4];
        for (s, was) in (0..1_009).zip(&before) {
            let now = maglev.pick(&pool, &at(s)).unwrap();
            if *was == Some(BackendId(2)) {
                moved_to[now.index()] += 1;
            } else {
                assert_eq!(Some(now), *was);
            }
        }
        assert_eq!(moved_to[2], 0);
        assert!(
            moved_to.iter().filter(|&&c| c > 0).count() == 3,
            "{moved_to:?}"
        );
        pool[2].state.set_available(true);
        let after: Vec<_> = (0..1_009).map(|s| maglev.pick(&pool, &at(s))).collect();
        assert_eq!(before, after);
    }

    #[test]
    fn none_only_when_nothing_eligible() {
        let pool = pool(&[1; 50]);
        let maglev = Maglev::new(&pool, 65_537);
        for b in &pool[1..] {
            b.state.set_available(false);
        }
        // Rehashes almost surely miss #0; the scan finds it.
        for h in 0..100 {
            assert_eq!(maglev.pick(&pool, &at(h)), Some(BackendId(0)));
        }
        let exclude = [BackendId(0)];
        let ctx = PickCtx {
            hash: Some(1),
            exclude: &exclude,
            ..PickCtx::default()
        };
        assert_eq!(maglev.pick(&pool, &ctx), None);
        pool[0].state.set_available(false);
        assert_eq!(maglev.pick(&pool, &PickCtx::default()), None);
        assert_eq!(Maglev::new(&[], 7).pick(&[], &at(3)), None);
    }

    #[test]
    fn no_hash_gives_a_random_eligible_backend() {
        let pool = pool(&[1, 1, 1]);
        pool[0].state.set_available(false);
        let maglev = Maglev::new(&pool, 101);
        let mut seen = [0; 3];
        for entropy in 0..300 {
            let ctx = PickCtx {
                entropy,
                ..PickCtx::default()
            };
            seen[maglev.pick(&pool, &ctx).unwrap().index()] += 1;
        }
        assert_eq!(seen[0], 0);
        assert!(seen[1] > 0 && seen[2] > 0, "{seen:?}");
    }
}
