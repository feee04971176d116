//! Weighted least connections: the eligible backend with the fewest requests
//! in flight per unit of weight, ties broken at random.
//!
//! Loads are compared as fractions by cross-multiplying (`a.in_flight *
//! b.weight < b.in_flight * a.weight`), never as floats, so equal shares tie
//! exactly. Ties go to a uniformly random member of the tied set (reservoir
//! sampling over a splitmix64 stream seeded from `ctx.entropy`), so an idle
//! pool spreads its first requests instead of piling onto the first backend.
//!
//! In-flight counts are written by upstream leases, outside the balancer, so
//! no index can track them without a hook on every lease. Instead:
//! - pools of up to [`EXACT_MAX`] backends are scanned: the pick is exactly
//!   the least loaded;
//! - larger pools take the least loaded of [`SAMPLES`] random eligible
//!   backends (best of k, as in P2C with k = 8), so a pick costs O(1) at
//!   10,000 backends. Only when the draws find nothing eligible (most of the
//!   pool down or excluded) does it fall back to the exact scan, so `None`
//!   still means that nothing is eligible.
//!
//! Also home to the helpers the randomised balancers share ([`Mix`],
//! [`Load`], [`least_loaded`]).
use std::cmp::Ordering;

use super::{is_eligible, Backend, BackendId, Balancer, PickCtx};

/// Largest pool scanned exactly; larger pools are sampled.
const EXACT_MAX: usize = 64;
/// Candidates drawn per pick in pools larger than [`EXACT_MAX`].
const SAMPLES: usize = 8;

/// Weighted least connections: the eligible backend with the fewest requests
/// in flight per unit of weight, ties broken at random with `ctx.entropy`.
///
/// Exact in pools of up to 64 backends (one pass); in larger pools, the least
/// loaded of 8 random eligible backends, so a pick stays O(1) at 10,000.
#[derive(Debug, Default)]
pub struct LeastConnections {
    _private: (),
}

impl LeastConnections {
    /// A least-connections balancer; it keeps no state of its own.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Balancer for LeastConnections {
    fn pick(&self, pool: &[Backend], ctx: &PickCtx<'_>) -> Option<BackendId> {
        let n = pool.len();
        let mut rng = Mix::new(ctx.entropy);
        if n <= EXACT_MAX {
            return least_loaded(pool, ctx, &mut rng, Load::in_flight);
        }
        let mut leader = Leader::default();
        let mut found = 0;
        // Twice the draws of the samples wanted: a pool a quarter down still
        // fills the sample almost always, and the loop stays bounded.
        for _ in 0..2 * SAMPLES {
            let i = rng.below(n);
            if is_eligible(&pool[i], i, ctx.exclude) {
                leader.offer(i, Load::in_flight(&pool[i]), &mut rng);
                found += 1;
                if found == SAMPLES {
                    break;
                }
            }
        }
        match leader.index() {
            Some(i) => BackendId::from_index(i),
            None => least_loaded(pool, ctx, &mut rng, Load::in_flight),
        }
    }
}

// === helpers shared with `random` ===

/// splitmix64 over caller-supplied entropy: one pick's private random stream.
#[derive(Debug)]
pub(super) struct Mix(u64);

impl Mix {
    /// A stream seeded from `ctx.entropy` (any value, zero included, works).
    pub(super) fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub(super) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `0..n` (multiply-shift; bias below 2^-32 for any real `n`).
    /// Zero when `n` is zero.
    pub(super) fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// A value in `0..n` for 64-bit `n` (weights sums).
    pub(super) fn below_u64(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

/// A backend's load as the exact fraction `cost / weight`, ordered by
/// cross-multiplication. `cost` is in-flight requests, or peak-EWMA ns times
/// (in-flight + 1); both products fit in `u128` for any `u64`/`u32` inputs.
#[derive(Clone, Copy, Debug)]
pub(super) struct Load {
    cost: u128,
    weight: u32,
}

impl Load {
    /// `cost / weight` for `backend`.
    pub(super) fn new(cost: u128, backend: &Backend) -> Self {
        Self {
            cost,
            weight: backend.weight.get(),
        }
    }

    /// Requests in flight per unit of weight.
    pub(super) fn in_flight(backend: &Backend) -> Self {
        Self::new(u128::from(in_flight(backend)), backend)
    }
}

/// Requests currently leased to `backend`.
pub(super) fn in_flight(backend: &Backend) -> u32 {
    // Relaxed: an advisory count; a stale read costs one slightly worse pick.
    backend
        .state
        .in_flight
        .load(std::sync::atomic::Ordering::Relaxed)
}

impl Ord for Load {
    fn cmp(&self, other: &Self) -> Ordering {
        // cost ≤ 2^96 and weight < 2^32, so neither product overflows.
        let a = self.cost.saturating_mul(u128::from(other.weight));
        let b = other.cost.saturating_mul(u128::from(self.weight));
        a.cmp(&b)
    }
}

impl PartialOrd for Load {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Load {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Load {}

/// The least loaded backend offered so far, with a uniform choice among ties.
#[derive(Debug, Default)]
pub(super) struct Leader {
    best: Option<(usize, Load)>,
    ties: u64,
}

impl Leader {
    /// Considers `pool[index]` with `load`.
    pub(super) fn offer(&mut self, index: usize, load: Load, rng: &mut Mix) {
        match self.best {
            Some((_, best)) if load > best => {}
            Some((_, best)) if load == best => {
                // Reservoir sampling: the k-th tied backend wins with 1/k.
                self.ties += 1;
                if rng.below_u64(self.ties) == 0 {
                    self.best = Some((index, load));
                }
            }
            _ => {
                self.best = Some((index, load));
                self.ties = 1;
            }
        }
    }

    /// The chosen position, if anything was offered.
    pub(super) fn index(&self) -> Option<usize> {
        self.best.map(|(i, _)| i)
    }
}

/// Exact O(n) scan: the eligible backend of least `load`, ties at random.
pub(super) fn least_loaded(
    pool: &[Backend],
    ctx: &PickCtx<'_>,
    rng: &mut Mix,
    load: impl Fn(&Backend) -> Load,
) -> Option<BackendId> {
    let mut leader = Leader::default();
    for (i, backend) in pool.iter().enumerate() {
        if is_eligible(backend, i, ctx.exclude) {
            leader.offer(i, load(backend), rng);
        }
    }
    leader.index().and_then(BackendId::from_index)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering::Relaxed;

    use super::super::test_support::{counts, pool};
    use super::*;

    fn set_in_flight(pool: &[Backend], counts: &[u32]) {
        for (b, &c) in pool.iter().zip(counts) {
            b.state.in_flight.store(c, Relaxed);
        }
    }

    fn ctx(entropy: u64) -> PickCtx<'static> {
        PickCtx {
            entropy,
            ..PickCtx::default()
        }
    }

    #[test]
    fn least_in_flight_per_weight() {
        let pool = pool(&[1, 4, 2]);
        // Loads 3/1, 8/4, 5/2: 2 and 2.5 beat 3; backend 1 wins.
        set_in_flight(&pool, &[3, 8, 5]);
        let lc = LeastConnections::new();
        for e in 0..100 {
            assert_eq!(lc.pick(&pool, &ctx(e)), Some(BackendId(1)));
        }
    }

    #[test]
    fn equal_fractions_tie_and_spread() {
        // 2/1 == 4/2 == 6/3: a three-way tie, broken uniformly; 7/3 loses.
        let pool = pool(&[1, 2, 3, 3]);
        set_in_flight(&pool, &[2, 4, 6, 7]);
        let lc = LeastConnections::new();
        let mut seen = [0usize; 4];
        for e in 0..30_000 {
            seen[lc.pick(&pool, &ctx(e)).unwrap().index()] += 1;
        }
        assert_eq!(seen[3], 0);
        for &c in &seen[..3] {
            assert!((9_000..11_000).contains(&c), "{seen:?}");
        }
    }

    #[test]
    fn same_entropy_same_pick() {
        let pool = pool(&[1; 5]);
        let lc = LeastConnections::new();
        let first = lc.pick(&pool, &ctx(42));
        for _ in 0..10 {
            assert_eq!(lc.pick(&pool, &ctx(42)), first);
        }
    }

    #[test]
    fn unavailable_and_excluded_skipped() {
        let pool = pool(&[1, 1, 1, 1]);
        set_in_flight(&pool, &[0, 5, 9, 0]);
        pool[0].state.set_available(false);
        let exclude = [BackendId(3)];
        let ctx = PickCtx {
            exclude: &exclude,
            ..PickCtx::default()
        };
        assert_eq!(
            counts(&LeastConnections::new(), &pool, &ctx, 10),
            [0, 10, 0, 0]
        );
    }

    #[test]
    fn none_when_nothing_eligible() {
        let lc = LeastConnections::new();
        assert_eq!(lc.pick(&[], &PickCtx::default()), None);
        for n in [3, 200] {
            let pool = pool(&vec![1; n]);
            for b in &pool[1..] {
                b.state.set_available(false);
            }
            let exclude = [BackendId(0)];
            let ctx = PickCtx {
                exclude: &exclude,
                ..PickCtx::default()
            };
            assert_eq!(lc.pick(&pool, &ctx), None);
            // One eligible backend in 200 is beyond the sample's reach, so the
            // fallback scan must find it.
            assert_eq!(lc.pick(&pool, &PickCtx::default()), Some(BackendId(0)));
        }
    }

    #[test]
    fn large_pool_samples_and_avoids_the_busy() {
        // Half the pool busy: best of 8 lands on an idle one unless all 8
        // draws are busy (1/256).
        let pool = pool(&vec![1; 1_000]);
        for b in pool.iter().step_by(2) {
            b.state.in_flight.store(50, Relaxed);
        }
        let lc = LeastConnections::new();
        let idle = (0..10_000u64)
            .filter(|&e| lc.pick(&pool, &ctx(e)).unwrap().index() % 2 == 1)
            .count();
        assert!(idle > 9_900, "{idle}");
    }

    #[test]
    fn load_orders_fractions_exactly() {
        let pool = pool(&[3, 7]);
        let a = Load::new(u128::from(u64::MAX) << 32, &pool[0]);
        let b = Load::new(u128::from(u64::MAX) << 32, &pool[1]);
        assert!(b < a);
        assert_eq!(Load::new(6, &pool[0]), Load::new(14, &pool[1]));
    }
}
