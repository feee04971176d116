//! Smooth weighted round robin, exactly as nginx does it.
//!
//! Each pick adds every eligible backend's weight to its `current`, chooses the
//! largest `current` (the first on ties), and subtracts the total eligible
//! weight from the chosen one. With every backend eligible, a cycle of
//! `sum(weights)` picks from a fresh balancer gives each backend exactly its
//! weight, spread out: weights 3,1,1 give `a, b, a, c, a`, never `a, a, a`.
//!
//! A backend that is unavailable or excluded is left out of that pick entirely
//! (its `current` is untouched), so the others keep their rhythm. The sum of
//! all `current` values stays zero across every pick.
//!
//! The state is a `Mutex<Vec<i64>>`: held for one O(n) pass with no allocation
//! and no I/O. Weights are read from the pool on each pick, so a later
//! per-backend weight (slow start) needs no rebuild.
//!
//! Pools over [`LARGE`] backends would make that pass (and the lock) too costly per
//! pick, so their cycle is computed once at build: each backend's `w` picks are
//! placed at evenly spaced deadlines `(2k + 1) / 2w` of the cycle and sorted
//! (earliest deadline first), then picks walk the cycle with an atomic cursor: O(1),
//! lock-free, still exact per cycle and evenly spread. Ineligible entries are
//! skipped; when too many are, the pick falls back to the nginx pass.
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use super::{is_eligible, Backend, BackendId, Balancer, PickCtx};

/// Pools with more backends than this use the precomputed cycle.
pub const LARGE: usize = 64;
/// Largest precomputed cycle (sum of weights); bigger pools keep the nginx pass.
const MAX_CYCLE: u64 = 1 << 20;
/// Entries a pick may skip in the precomputed cycle before falling back.
const MAX_SKIP: usize = 64;

/// Smooth weighted round robin (nginx's algorithm).
#[derive(Debug, Default)]
pub struct WeightedRoundRobin {
    /// `current` weight per backend, by position in the pool.
    current: Mutex<Vec<i64>>,
    /// For large pools: one cycle of backend positions, and the cursor into it.
    cycle: Option<(Vec<u32>, AtomicUsize)>,
}

impl WeightedRoundRobin {
    /// A balancer for `pool`, starting a fresh cycle.
    pub fn new(pool: &[Backend]) -> Self {
        let total: u64 = pool.iter().map(|b| u64::from(b.weight.get())).sum();
        let cycle = (pool.len() > LARGE && total <= MAX_CYCLE)
            .then(|| (edf_cycle(pool), AtomicUsize::new(0)));
        Self {
            current: Mutex::new(vec![0; pool.len()]),
            cycle,
        }
    }
}

/// One cycle where backend `i` appears `w_i` times, at deadlines `(2k+1)/(2 w_i)`,
/// earliest first (ties by position, so every instance builds the same cycle).
fn edf_cycle(pool: &[Backend]) -> Vec<u32> {
    let mut entries: Vec<(u64, u64, u32)> = Vec::new();
    for (i, b) in pool.iter().enumerate() {
        let w = u64::from(b.weight.get());
        for k in 0..w {
            entries.push((2 * k + 1, 2 * w, i as u32));
        }
    }
    // a/b < c/d  <=>  a*d < c*b (all small enough for u128).
    entries.sort_by(|x, y| {
        (u128::from(x.0) * u128::from(y.1))
            .cmp(&(u128::from(y.0) * u128::from(x.1)))
            .then(x.2.cmp(&y.2))
    });
    entries.into_iter().map(|(_, _, i)| i).collect()
}

impl Balancer for WeightedRoundRobin {
    fn pick(&self, pool: &[Backend], ctx: &PickCtx<'_>) -> Option<BackendId> {
        if let Some((cycle, cursor)) = &self.cycle {
            if !cycle.is_empty() && pool.len() > LARGE {
                for _ in 0..MAX_SKIP.min(cycle.len()) {
                    let at = cursor.fetch_add(1, Ordering::Relaxed) % cycle.len();
                    let i = cycle.get(at).copied().unwrap_or(0) as usize;
                    if pool.get(i).is_some_and(|b| is_eligible(b, i, ctx.exclude)) {
                        return BackendId::from_index(i);
                    }
                }
            }
        }
        self.nginx_pick(pool, ctx)
    }
}

impl WeightedRoundRobin {
    /// nginx's pass over every backend.
    fn nginx_pick(&self, pool: &[Backend], ctx: &PickCtx<'_>) -> Option<BackendId> {
        // Nothing below panics; if it ever did mid-pass, the weights are still
        // plain integers and the cost is one uneven cycle, so reuse them.
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if current.len() != pool.len() {
            // Caller passed a different pool than it built with: restart the cycle.
            current.clear();
            current.resize(pool.len(), 0);
        }
        let mut total: i64 = 0;
        // The leader so far. Strictly greater wins, so ties go to the first
        // backend, as in nginx; `i64::MIN` is below any reachable `current`.
        let mut best = None;
        let mut best_current = i64::MIN;
        for (i, (backend, cur)) in pool.iter().zip(current.iter_mut()).enumerate() {
            if !is_eligible(backend, i, ctx.exclude) {
                continue;
            }
            let weight = i64::from(backend.weight.get());
            *cur += weight;
            total += weight;
            if *cur > best_current {
                best = Some(i);
                best_current = *cur;
            }
        }
        let chosen = best?;
        current[chosen] -= total;
        BackendId::from_index(chosen)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{counts, pool};
    use super::*;

    fn names(wrr: &WeightedRoundRobin, pool: &[Backend], ctx: &PickCtx<'_>, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b'a' + wrr.pick(pool, ctx).unwrap().0 as u8))
            .collect()
    }

    #[test]
    fn large_pools_are_exact_per_cycle_without_a_pass() {
        let weights: Vec<u32> = (0..1000).map(|i| 1 + (i % 4)).collect();
        let pool = pool(&weights);
        let wrr = WeightedRoundRobin::new(&pool);
        assert!(wrr.cycle.is_some());
        let total: u32 = weights.iter().sum();
        let got = counts(&wrr, &pool, &PickCtx::default(), total as usize * 3);
        let want: Vec<usize> = weights.iter().map(|&w| w as usize * 3).collect();
        assert_eq!(got, want);
        // An excluded backend is skipped for that pick only.
        let ex = [BackendId(0)];
        let ctx = PickCtx {
            exclude: &ex,
            ..PickCtx::default()
        };
        for _ in 0..5000 {
            assert_ne!(wrr.pick(&pool, &ctx), Some(BackendId(0)));
        }
    }

    #[test]
    fn exact_over_a_cycle() {
        let pool = pool(&[5, 1, 1]);
        let wrr = WeightedRoundRobin::new(&pool);
        assert_eq!(counts(&wrr, &pool, &PickCtx::default(), 7), [5, 1, 1]);
        assert_eq!(
            counts(&wrr, &pool, &PickCtx::default(), 700),
            [500, 100, 100]
        );
    }

    #[test]
    fn interleaved_like_nginx() {
        let pool = pool(&[3, 1, 1]);
        let wrr = WeightedRoundRobin::new(&pool);
        assert_eq!(names(&wrr, &pool, &PickCtx::default(), 10), "abacaabaca");
        let pool = self::pool(&[5, 1, 1]);
        let wrr = WeightedRoundRobin::new(&pool);
        assert_eq!(names(&wrr, &pool, &PickCtx::default(), 7), "aabacaa");
    }

    #[test]
    fn never_three_in_a_row_for_weight_three_of_five() {
        let pool = pool(&[3, 1, 1]);
        let wrr = WeightedRoundRobin::new(&pool);
        let seq = names(&wrr, &pool, &PickCtx::default(), 500);
        assert!(!seq.contains("aaa"), "{seq}");
    }

    #[test]
    fn exact_across_threads() {
        let pool = pool(&[4, 2, 1, 1]);
        let wrr = WeightedRoundRobin::new(&pool);
        let total: Vec<usize> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| s.spawn(|| counts(&wrr, &pool, &PickCtx::default(), 800)))
                .collect();
            let mut total = vec![0; 4];
            for h in handles {
                for (t, c) in total.iter_mut().zip(h.join().unwrap()) {
                    *t += c;
                }
            }
            total
        });
        assert_eq!(total, [1600, 800, 400, 400]);
    }

    #[test]
    fn unavailable_skipped_others_keep_their_ratio() {
        let pool = pool(&[3, 2, 1]);
        pool[0].state.set_available(false);
        let wrr = WeightedRoundRobin::new(&pool);
        assert_eq!(counts(&wrr, &pool, &PickCtx::default(), 30), [0, 20, 10]);
    }

    #[test]
    fn excluded_skipped_for_that_pick_only() {
        let pool = pool(&[2, 1]);
        let wrr = WeightedRoundRobin::new(&pool);
        let exclude = [BackendId(0)];
        let ctx = PickCtx {
            exclude: &exclude,
            ..PickCtx::default()
        };
        assert_eq!(wrr.pick(&pool, &ctx), Some(BackendId(1)));
        // As in nginx, `a` gained nothing while left out and `b` paid for its
        // pick, so both are back at zero and the next cycle is a fresh one.
        assert_eq!(names(&wrr, &pool, &PickCtx::default(), 6), "abaaba");
    }

    #[test]
    fn none_when_nothing_eligible() {
        let pool = pool(&[2, 1]);
        let wrr = WeightedRoundRobin::new(&pool);
        pool[0].state.set_available(false);
        let exclude = [BackendId(1)];
        let ctx = PickCtx {
            exclude: &exclude,
            ..PickCtx::default()
        };
        assert_eq!(wrr.pick(&pool, &ctx), None);
        pool[0].state.set_available(true);
        assert_eq!(wrr.pick(&pool, &ctx), Some(BackendId(0)));
    }

    #[test]
    fn pool_of_another_size_restarts_the_cycle() {
        let wrr = WeightedRoundRobin::new(&pool(&[1]));
        let pool = pool(&[1, 1]);
        assert_eq!(counts(&wrr, &pool, &PickCtx::default(), 4), [2, 2]);
    }
}
