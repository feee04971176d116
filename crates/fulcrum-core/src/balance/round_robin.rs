//! Round robin: each eligible backend in turn, weights ignored.
//!
//! Lock-free: one shared `AtomicUsize` cursor. With every backend eligible a
//! pick is a single `fetch_add`. When the backend under the cursor is not
//! eligible the pick scans forward and then moves the cursor past the scanned
//! run, so the next pick does not land on the same backend again: with `b`
//! down, `a, b, c` gives `a, c, a, c`, not `a, c, c, a, c, c`.
use std::sync::atomic::{AtomicUsize, Ordering};

use super::{is_eligible, Backend, BackendId, Balancer, PickCtx};

/// Each eligible backend in turn.
#[derive(Debug, Default)]
pub struct RoundRobin {
    /// Monotonic count of positions handed out; `cursor % pool.len()` is next.
    cursor: AtomicUsize,
}

impl RoundRobin {
    /// A balancer whose first pick is the first eligible backend.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Balancer for RoundRobin {
    fn pick(&self, pool: &[Backend], ctx: &PickCtx<'_>) -> Option<BackendId> {
        let n = pool.len();
        if n == 0 {
            return None;
        }
        // Relaxed: the cursor orders nothing else; concurrent picks only need
        // distinct positions, which fetch_add gives.
        let start = self.cursor.fetch_add(1, Ordering::Relaxed);
        for skipped in 0..n {
            let i = start.wrapping_add(skipped) % n;
            if is_eligible(&pool[i], i, ctx.exclude) {
                if skipped > 0 {
                    self.cursor.fetch_add(skipped, Ordering::Relaxed);
                }
                return BackendId::from_index(i);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{counts, pool};
    use super::*;

    fn ids(rr: &RoundRobin, pool: &[Backend], ctx: &PickCtx<'_>, n: usize) -> Vec<u32> {
        (0..n).map(|_| rr.pick(pool, ctx).unwrap().0).collect()
    }

    #[test]
    fn each_in_turn_ignoring_weights() {
        let pool = pool(&[5, 1, 1]);
        let rr = RoundRobin::new();
        assert_eq!(
            ids(&rr, &pool, &PickCtx::default(), 7),
            [0, 1, 2, 0, 1, 2, 0]
        );
    }

    #[test]
    fn equal_share() {
        let pool = pool(&[1; 7]);
        let rr = RoundRobin::new();
        assert_eq!(counts(&rr, &pool, &PickCtx::default(), 7 * 100), [100; 7]);
    }

    #[test]
    fn equal_share_across_threads() {
        let pool = pool(&[1; 4]);
        let rr = RoundRobin::new();
        let total: Vec<usize> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| s.spawn(|| counts(&rr, &pool, &PickCtx::default(), 1000)))
                .collect();
            let mut total = vec![0; 4];
            for h in handles {
                for (t, c) in total.iter_mut().zip(h.join().unwrap()) {
                    *t += c;
                }
            }
            total
        });
        assert_eq!(total, [1000; 4]);
    }

    #[test]
    fn unavailable_skipped_without_doubling_the_next() {
        let pool = pool(&[1, 1, 1]);
        pool[1].state.set_available(false);
        let rr = RoundRobin::new();
        assert_eq!(ids(&rr, &pool, &PickCtx::default(), 6), [0, 2, 0, 2, 0, 2]);
        pool[1].state.set_available(true);
        assert_eq!(
            counts(&rr, &pool, &PickCtx::default(), 300),
            [100, 100, 100]
        );
    }

    #[test]
    fn excluded_skipped() {
        let pool = pool(&[1, 1, 1]);
        let rr = RoundRobin::new();
        let exclude = [BackendId(0), BackendId(2)];
        let ctx = PickCtx {
            exclude: &exclude,
            ..PickCtx::default()
        };
        assert_eq!(ids(&rr, &pool, &ctx, 4), [1, 1, 1, 1]);
    }

    #[test]
    fn none_when_nothing_eligible() {
        let pool = pool(&[1, 1, 1]);
        let rr = RoundRobin::new();
        pool[0].state.set_available(false);
        pool[1].state.set_available(false);
        let exclude = [BackendId(2)];
        let ctx = PickCtx {
            exclude: &exclude,
            ..PickCtx::default()
        };
        assert_eq!(rr.pick(&pool, &ctx), None);
        assert_eq!(rr.pick(&pool, &PickCtx::default()), Some(BackendId(2)));
    }
}
