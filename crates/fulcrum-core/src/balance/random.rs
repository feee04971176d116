//! Weighted random, and power of two choices (P2C).
//!
//! Both draw from a splitmix64 stream seeded by `ctx.entropy`, so a pick is a
//! pure function of the pool's state and the context.
//!
//! [`Random`] keeps the pool's prefix sums of weight, built once in `new`: a
//! draw is a binary search, O(log n). A draw that lands on an ineligible
//! backend is redrawn (rejection sampling keeps the draw weighted over the
//! eligible set); after [`REDRAWS`] misses, one exact O(n) weighted pass over
//! the eligible backends decides, so exclusion is always honoured and `None`
//! means nothing is eligible. Weights are those at build time.
//!
//! [`PowerOfTwo`] draws two distinct eligible backends *uniformly* and keeps
//! the less loaded (a tie at random); weight enters through the load, which
//! is divided by it. Load is in-flight requests (`LoadConfig::InFlight`), or
//! linkerd's peak-EWMA cost, latency estimate × (in-flight + 1)
//! (`LoadConfig::PeakEwma`), read at `ctx.now_ns` (see
//! [`BackendState::observe_latency`]). O(1) per pick; when [`REDRAWS`] draws
//! cannot find two eligible backends (only one left, or most of the pool down
//! or excluded) it compares every eligible backend instead.
//!
//! So both algorithms scan, O(n), only in pools that are mostly ineligible; a
//! healthy pool never does.
//!
//! [`BackendState::observe_latency`]: super::BackendState::observe_latency
use super::least_conn::{in_flight, least_loaded, Leader, Load, Mix};
use super::{is_eligible, Backend, BackendId, Balancer, PickCtx};
use crate::config::LoadConfig;

/// Draws per pick before the exact fallback pass.
const REDRAWS: usize = 4;

/// Weighted random choice with `ctx.entropy`, by the weights at build time:
/// O(log n) per pick, and always among the eligible backends only.
#[derive(Debug, Default)]
pub struct Random {
    /// `ends[i]` is the sum of the weights of `pool[..=i]`.
    ends: Vec<u64>,
}

impl Random {
    /// A balancer for `pool`, weighted by each backend's weight now.
    pub fn new(pool: &[Backend]) -> Self {
        let mut total = 0u64;
        let ends = pool
            .iter()
            .map(|b| {
                total += u64::from(b.weight.get());
                total
            })
            .collect();
        Self { ends }
    }
}

impl Balancer for Random {
    fn pick(&self, pool: &[Backend], ctx: &PickCtx<'_>) -> Option<BackendId> {
        let mut rng = Mix::new(ctx.entropy);
        let n = pool.len();
        let total = match self.ends.last() {
            // Built for this pool: weighted draws.
            Some(&total) if self.ends.len() == n => total,
            // Another pool (a caller bug) or an empty one: exact pass only.
            _ => return weighted_pass(pool, ctx, &mut rng),
        };
        for _ in 0..REDRAWS {
            let r = rng.below_u64(total);
            let i = self.ends.partition_point(|&end| end <= r);
            if i < n && is_eligible(&pool[i], i, ctx.exclude) {
                return BackendId::from_index(i);
            }
        }
        weighted_pass(pool, ctx, &mut rng)
    }
}

/// Exact weighted choice among the eligible backends, in two O(n) passes.
fn weighted_pass(pool: &[Backend], ctx: &PickCtx<'_>, rng: &mut Mix) -> Option<BackendId> {
    let eligible = || {
        pool.iter()
            .enumerate()
            .filter(|&(i, b)| is_eligible(b, i, ctx.exclude))
    };
    let total: u64 = eligible().map(|(_, b)| u64::from(b.weight.get())).sum();
    let mut r = rng.below_u64(total);
    for (i, b) in eligible() {
        let w = u64::from(b.weight.get());
        if r < w {
            return BackendId::from_index(i);
        }
        r -= w;
    }
    // Reached only when nothing is eligible (total 0), or if a backend turned
    // ineligible between the passes.
    None
}

/// Power of two choices: the less loaded of two distinct, uniformly drawn
/// eligible backends. Load is in-flight requests per unit of weight, or with
/// [`LoadConfig::PeakEwma`] the peak-EWMA latency at `ctx.now_ns` times
/// (in-flight + 1), per unit of weight, as linkerd does.
#[derive(Debug, Default)]
pub struct PowerOfTwo {
    load: LoadConfig,
}

impl PowerOfTwo {
    /// A P2C balancer comparing backends by `load`.
    pub fn new(load: LoadConfig) -> Self {
        Self { load }
    }

    /// The load of `backend` at `now_ns`, as an exact fraction.
    fn load_of(&self, backend: &Backend, now_ns: u64) -> Load {
        match self.load {
            LoadConfig::InFlight => Load::in_flight(backend),
            LoadConfig::PeakEwma => {
                let ewma = u128::from(backend.state.ewma_ns(now_ns));
                Load::new(ewma * (u128::from(in_flight(backend)) + 1), backend)
            }
        }
    }
}

impl Balancer for PowerOfTwo {
    fn pick(&self, pool: &[Backend], ctx: &PickCtx<'_>) -> Option<BackendId> {
        let mut rng = Mix::new(ctx.entropy);
        let load = |b: &Backend| self.load_of(b, ctx.now_ns);
        let Some(a) = draw(pool, ctx, &mut rng, None) else {
            // Most of the pool is ineligible: compare every eligible one.
            return least_loaded(pool, ctx, &mut rng, load);
        };
        let Some(b) = draw(pool, ctx, &mut rng, Some(a)) else {
            // `a` may be the only eligible backend, or the worst of a few.
            return least_loaded(pool, ctx, &mut rng, load);
        };
        let mut leader = Leader::default();
        leader.offer(a, load(&pool[a]), &mut rng);
        leader.offer(b, load(&pool[b]), &mut rng);
        leader.index().and_then(BackendId::from_index)
    }
}

/// Up to [`REDRAWS`] uniform draws for an eligible backend other than `other`.
fn draw(pool: &[Backend], ctx: &PickCtx<'_>, rng: &mut Mix, other: Option<usize>) -> Option<usize> {
    let n = pool.len();
    let (range, skip) = match other {
        // Draw from the n - 1 others, stepping over `other`: distinct in one draw.
        Some(o) => (n.checked_sub(1)?, o),
        None => (n, usize::MAX),
    };
    if range == 0 {
        return None;
    }
    (0..REDRAWS).find_map(|_| {
        let mut i = rng.below(range);
        if i >= skip {
            i += 1;
        }
        is_eligible(&pool[i], i, ctx.exclude).then_some(i)
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering::Relaxed;

    use super::super::test_support::pool;
    use super::*;

    fn ctx(entropy: u64) -> PickCtx<'static> {
        PickCtx {
            entropy,
            ..PickCtx::default()
        }
    }

    /// Counts over `n` picks with entropy `0..n` (each pick its own stream).
    fn spread(b: &dyn Balancer, pool: &[Backend], exclude: &[BackendId], n: u64) -> Vec<u64> {
        let mut seen = vec![0; pool.len()];
        for e in 0..n {
            let ctx = PickCtx {
                exclude,
                entropy: e,
                ..PickCtx::default()
            };
            seen[b.pick(pool, &ctx).unwrap().index()] += 1;
        }
        seen
    }

    /// Each count within `tol` (a fraction) of its weighted share.
    fn assert_weighted(seen: &[u64], weights: &[u64], tol: f64) {
        let n: u64 = seen.iter().sum();
        let w: u64 = weights.iter().sum();
        for (&s, &wi) in seen.iter().zip(weights) {
            let want = (n * wi) as f64 / w as f64;
            assert!(
                (s as f64 - want).abs() <= want * tol,
                "{seen:?} vs weights {weights:?}"
            );
        }
    }

    #[test]
    fn random_follows_weights() {
        let pool = pool(&[1, 2, 3, 10]);
        let seen = spread(&Random::new(&pool), &pool, &[], 100_000);
        assert_weighted(&seen, &[1, 2, 3, 10], 0.05);
    }

    #[test]
    fn random_weighted_over_the_eligible() {
        let pool = pool(&[5, 1, 2, 3]);
        pool[0].state.set_available(false);
        let seen = spread(&Random::new(&pool), &pool, &[BackendId(2)], 100_000);
        assert_eq!((seen[0], seen[2]), (0, 0));
        assert_weighted(&[seen[1], seen[3]], &[1, 3], 0.05);
    }

    #[test]
    fn random_finds_the_one_eligible_in_a_big_pool() {
        let pool = pool(&vec![1; 10_000]);
        for b in &pool {
            b.state.set_available(false);
        }
        pool[7_777].state.set_available(true);
        let r = Random::new(&pool);
        assert_eq!(r.pick(&pool, &ctx(1)), Some(BackendId(7_777)));
        pool[7_777].state.set_available(false);
        assert_eq!(r.pick(&pool, &ctx(1)), None);
    }

    #[test]
    fn random_none_when_empty_or_nothing_eligible() {
        assert_eq!(Random::new(&[]).pick(&[], &ctx(0)), None);
        let pool = pool(&[1, 1]);
        let r = Random::new(&pool);
        let exclude = [BackendId(0), BackendId(1)];
        let c = PickCtx {
            exclude: &exclude,
            ..PickCtx::default()
        };
        assert_eq!(r.pick(&pool, &c), None);
    }

    #[test]
    fn random_with_another_pool_still_weighted() {
        let r = Random::new(&pool(&[1]));
        let pool = pool(&[1, 3]);
        assert_weighted(&spread(&r, &pool, &[], 40_000), &[1, 3], 0.05);
    }

    #[test]
    fn p2c_prefers_the_less_loaded() {
        let pool = pool(&[1, 1]);
        pool[0].state.in_flight.store(3, Relaxed);
        let p2c = PowerOfTwo::new(LoadConfig::InFlight);
        assert_eq!(spread(&p2c, &pool, &[], 1_000), [0, 1_000]);
        // Weight divides load: 3/4 beats 1/1.
        let pool = self::pool(&[4, 1]);
        pool[0].state.in_flight.store(3, Relaxed);
        pool[1].state.in_flight.store(1, Relaxed);
        assert_eq!(spread(&p2c, &pool, &[], 1_000), [1_000, 0]);
    }

    #[test]
    fn p2c_most_loaded_of_three_never_picked() {
        // Any pair holding backend 2 has a less loaded member.
        let pool = pool(&[1, 1, 1]);
        pool[2].state.in_flight.store(9, Relaxed);
        let seen = spread(&PowerOfTwo::new(LoadConfig::InFlight), &pool, &[], 30_000);
        assert_eq!(seen[2], 0);
        assert_weighted(&seen[..2], &[1, 1], 0.05);
    }

    #[test]
    fn p2c_peak_ewma_avoids_the_slow() {
        let pool = pool(&[1, 1]);
        let now = 1_000_000_000;
        pool[0].state.observe_latency(50_000_000, now);
        pool[1].state.observe_latency(5_000_000, now);
        // Slow and idle (50 ms × 1) vs fast with 3 in flight (5 ms × 4).
        pool[1].state.in_flight.store(3, Relaxed);
        let p2c = PowerOfTwo::new(LoadConfig::PeakEwma);
        let at = |now_ns| PickCtx {
            now_ns,
            ..PickCtx::default()
        };
        assert_eq!(p2c.pick(&pool, &at(now)), Some(BackendId(1)));
        // A minute without a slow sample decays its estimate (×e^-6) while
        // the fast one keeps reporting 5 ms: the slow one is retried.
        pool[1]
            .state
            .observe_latency(5_000_000, now + 60_000_000_000);
        assert_eq!(
            p2c.pick(&pool, &at(now + 60_000_000_000)),
            Some(BackendId(0))
        );
    }

    #[test]
    fn p2c_honours_exclusion_and_none() {
        let p2c = PowerOfTwo::new(LoadConfig::PeakEwma);
        assert_eq!(p2c.pick(&[], &ctx(0)), None);
        let pool = pool(&vec![1; 500]);
        for b in &pool[1..] {
            b.state.set_available(false);
        }
        assert_eq!(p2c.pick(&pool, &ctx(3)), Some(BackendId(0)));
        let exclude = [BackendId(0)];
        let c = PickCtx {
            exclude: &exclude,
            ..PickCtx::default()
        };
        assert_eq!(p2c.pick(&pool, &c), None);
        let pool = self::pool(&[1, 1]);
        assert_eq!(spread(&p2c, &pool, &exclude, 100), [0, 100]);
    }

    #[test]
    fn peak_ewma_jumps_up_and_decays() {
        let s = super::super::BackendState::default();
        assert_eq!(s.ewma_ns(0), super::super::BackendState::EWMA_DEFAULT_NS);
        let ms = 1_000_000;
        let sec = 1_000_000_000;
        s.observe_latency(10 * ms, 0);
        assert_eq!(s.ewma_ns(0), 10 * ms);
        // A slow sample is taken at once, however recent the last.
        s.observe_latency(100 * ms, 1);
        assert_eq!(s.ewma_ns(1), 100 * ms);
        // A fast sample 10 s (one tau) later keeps e^-1 of the old estimate.
        s.observe_latency(10 * ms, 10 * sec + 1);
        let want = 100.0 * (-1f64).exp() + 10.0 * (1.0 - (-1f64).exp());
        let got = s.ewma_ns(10 * sec + 1) as f64 / ms as f64;
        assert!((got - want).abs() < 0.01, "{got} vs {want}");
        // Unobserved, the estimate decays toward zero: ×e^-2 after 20 s more.
        let later = s.ewma_ns(30 * sec + 1) as f64 / ms as f64;
        assert!((later - want * (-2f64).exp()).abs() < 0.01, "{later}");
        // A clock read behind the last sample does not inflate the estimate.
        assert_eq!(s.ewma_ns(0), s.ewma_ns(10 * sec + 1));
    }
}
