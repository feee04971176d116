//! Ring hash: ketama-style consistent hashing, with optional bounded loads.
//!
//! Build: each backend puts `virtual_nodes × weight` points on a 64-bit ring,
//! its `i`-th at `stable_hash("{key}-{i}")` (`key` is the backend's configured
//! address, `i` in decimal). Points come from the key, never the position, so
//! every Fulcrum with the same backends builds the same ring whatever their
//! order, and adding or removing one backend moves only the keys on its own
//! points: about 1/N of them. Equal points (a 64-bit collision) are ordered by
//! key, which keeps that true even then.
//!
//! Pick: the first point at or after `ctx.hash` (wrapping), then clockwise to
//! the first point whose backend is eligible. A key whose backend is down or
//! excluded goes to the next backend on the ring and comes back when it
//! returns, with no rebuild, and no other key moves. The walk skips runs of
//! one backend and stops after [`MAX_WALK`] points; past that (nearly the
//! whole pool down) a scan of the pool in key order, starting at a place the
//! hash decides, finds any eligible backend. Without a hash key the pick is a
//! random eligible backend (the caller counts that fallback).
//!
//! Bounded loads (`balance_factor = c`, Mirrokni et al. 2016, as in Envoy and
//! HAProxy): a backend is also passed over while taking this request would
//! bring its in-flight count above `ceil(c × (T + 1) / n)`, where `T` is the
//! in-flight total of the `n` eligible backends. Since the least loaded
//! eligible backend always fits under `ceil((T + 1) / n)`, some backend fits
//! for any `c ≥ 1`. The proxy passes `T` and `n` from its pool-wide counters
//! ([`PickCtx::load`]), so a pick is O(1) however large the pool; without
//! them (`None`) they are counted on each pick, an O(n) pass (about 150 ns at
//! 100 backends, 17 µs at 10,000). The counters may lag a pick by a request
//! or a health tick; the bound is a target, and the walk still ends on a
//! backend under it or, failing that, any eligible one.
use super::{is_eligible, stable_hash, Backend, BackendId, Balancer, PickCtx};
use std::sync::atomic::Ordering;

/// Most ring points walked before the pool scan. Random points put the next
/// eligible backend a step or two away unless most of the pool is down.
const MAX_WALK: usize = 256;

/// Most points on one ring (about 48 MiB). Past it every backend's count is
/// scaled down in proportion (at least one point each), as Envoy caps its
/// ring; a backend keeps a prefix of its points, so scaling only drops points.
const MAX_POINTS: u64 = 1 << 22;

/// Consistent hashing on a ring of virtual nodes, optionally with bounded loads.
#[derive(Debug, Default)]
pub struct RingHash {
    /// Ring points, ascending.
    points: Vec<u64>,
    /// `owners[i]` is the pool index of the backend at `points[i]`.
    owners: Vec<u32>,
    /// Pool indices sorted by key: the fallback scan order, the same on every
    /// Fulcrum whatever the pool order.
    by_key: Vec<u32>,
    /// Bounded-load factor, at least 1; `None` for unbounded.
    balance_factor: Option<f64>,
}

impl RingHash {
    /// The ring for `pool`: `virtual_nodes` points per unit of weight (0 is
    /// taken as 1). A `balance_factor` below 1 is taken as 1; one that is not
    /// finite turns bounded loads off.
    pub fn new(pool: &[Backend], virtual_nodes: u32, balance_factor: Option<f64>) -> Self {
        let per_weight = u64::from(virtual_nodes.max(1));
        let counts: Vec<u64> = pool
            .iter()
            .map(|b| per_weight.saturating_mul(u64::from(b.weight.get())))
            .collect();
        let wanted = counts.iter().fold(0u64, |sum, &c| sum.saturating_add(c));
        let scale = if wanted > MAX_POINTS {
            MAX_POINTS as f64 / wanted as f64
        } else {
            1.0
        };
        let mut ring: Vec<(u64, u32)> = Vec::with_capacity(wanted.min(MAX_POINTS) as usize);
        let mut name = Vec::new();
        for ((index, backend), &count) in pool.iter().enumerate().zip(&counts) {
            let Ok(owner) = u32::try_from(index) else {
                break;
            };
            let count = ((count as f64 * scale) as u64).max(1);
            name.clear();
            name.extend_from_slice(backend.key.0.as_bytes());
            name.push(b'-');
            let prefix = name.len();
            for i in 0..count {
                name.truncate(prefix);
                push_decimal(&mut name, i);
                ring.push((stable_hash(&name), owner));
            }
        }
        ring.sort_unstable_by(|a, b| {
            a.0.cmp(&b.0)
                .then_with(|| pool[a.1 as usize].key.cmp(&pool[b.1 as usize].key))
        });
        Self {
            points: ring.iter().map(|p| p.0).collect(),
            owners: ring.iter().map(|p| p.1).collect(),
            by_key: key_order(pool),
            balance_factor: balance_factor.filter(|c| c.is_finite()).map(|c| c.max(1.0)),
        }
    }

    /// Number of points on the ring.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// Whether the ring has no points (an empty pool).
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }
}

impl Balancer for RingHash {
    fn pick(&self, pool: &[Backend], ctx: &PickCtx<'_>) -> Option<BackendId> {
        let eligible = |i: usize| pool.get(i).is_some_and(|b| is_eligible(b, i, ctx.exclude));
        let Some(hash) = ctx.hash else {
            return scan(&self.by_key, ctx.entropy, eligible);
        };
        let bound = match (self.balance_factor, ctx.load) {
            (None, _) => None,
            // O(1): the caller's pool-wide counters. Backends this request
            // already tried leave the eligible set.
            (Some(factor), Some(load)) => {
                let eligible = load.eligible.saturating_sub(ctx.exclude.len() as u64);
                Some(bound_of(factor, load.in_flight, eligible.max(1)))
            }
            (Some(factor), None) => Some(load_bound(pool, ctx.exclude, factor)?),
        };
        let fits = |i: usize| {
            eligible(i)
                && bound.is_none_or(|max| {
                    u64::from(pool[i].state.in_flight.load(Ordering::Relaxed)) < max
                })
        };
        let len = self.points.len();
        let start = self.points.partition_point(|&p| p < hash);
        let mut rejected = None;
        for step in 0..len.min(MAX_WALK) {
            let at = (start + step) % len;
            let owner = self.owners[at];
            if rejected == Some(owner) {
                continue;
            }
            if fits(owner as usize) {
                return BackendId::from_index(owner as usize);
            }
            rejected = Some(owner);
        }
        // Nearly everything is down or full. Leases taken between `load_bound`
        // and here can leave nothing under the bound: then any eligible backend.
        scan(&self.by_key, hash, fits).or_else(|| scan(&self.by_key, hash, eligible))
    }
}

/// Pool indices sorted by backend key.
pub(super) fn key_order(pool: &[Backend]) -> Vec<u32> {
    let mut order: Vec<u32> = (0..pool.len())
        .map_while(|i| u32::try_from(i).ok())
        .collect();
    order.sort_by(|&a, &b| pool[a as usize].key.cmp(&pool[b as usize].key));
    order
}

/// The first backend in `order` that `accept`s, starting at `start % len` and
/// wrapping: O(n), for fallbacks only.
pub(super) fn scan(order: &[u32], start: u64, accept: impl Fn(usize) -> bool) -> Option<BackendId> {
    let len = order.len();
    if len == 0 {
        return None;
    }
    let start = (start % len as u64) as usize;
    (0..len)
        .map(|k| order[(start + k) % len] as usize)
        .find(|&i| accept(i))
        .and_then(BackendId::from_index)
}

/// `ceil(factor × (T + 1) / n)` over the eligible backends, or `None` when
/// there are none.
fn load_bound(pool: &[Backend], exclude: &[BackendId], factor: f64) -> Option<u64> {
    let (mut total, mut eligible) = (0u64, 0u64);
    for (i, b) in pool.iter().enumerate() {
        if is_eligible(b, i, exclude) {
            total += u64::from(b.state.in_flight.load(Ordering::Relaxed));
            eligible += 1;
        }
    }
    (eligible > 0).then(|| bound_of(factor, total, eligible))
}

/// `ceil(factor × (in_flight + 1) / eligible)`: the most one backend may carry.
fn bound_of(factor: f64, in_flight: u64, eligible: u64) -> u64 {
    (factor * (in_flight + 1) as f64 / eligible as f64).ceil() as u64
}

/// Appends `n` in decimal ASCII, without allocating.
fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut len = 0;
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend(digits[..len].iter().rev());
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{counts, pool};
    use super::*;

    fn at(hash: u64) -> PickCtx<'static> {
        PickCtx {
            hash: Some(hash),
            ..PickCtx::default()
        }
    }

    #[test]
    fn points_are_virtual_nodes_times_weight() {
        let pool = pool(&[1, 2, 3]);
        assert_eq!(RingHash::new(&pool, 10, None).len(), 60);
        assert_eq!(RingHash::new(&pool, 0, None).len(), 6);
        assert!(RingHash::new(&[], 160, None).is_empty());
    }

    #[test]
    fn point_names_are_key_dash_index() {
        let pool = pool(&[1]);
        let ring = RingHash::new(&pool, 3, None);
        let mut want: Vec<u64> = (0..3)
            .map(|i| stable_hash(format!("127.0.0.1:9000-{i}").as_bytes()))
            .collect();
        want.sort_unstable();
        assert_eq!(ring.points, want);
        let mut buf = Vec::new();
        push_decimal(&mut buf, 1_234_567_890);
        push_decimal(&mut buf, 0);
        assert_eq!(buf, b"12345678900");
    }

    #[test]
    fn same_hash_same_backend_and_wraps() {
        let pool = pool(&[1, 1, 1]);
        let ring = RingHash::new(&pool, 160, None);
        for h in [0, 1, u64::MAX / 3, u64::MAX] {
            let first = ring.pick(&pool, &at(h));
            assert!(first.is_some());
            assert_eq!(counts(&ring, &pool, &at(h), 10)[first.unwrap().index()], 10);
        }
        // Past the last point wraps to the first.
        let last = *ring.points.last().unwrap();
        assert_eq!(
            ring.pick(&pool, &at(last.saturating_add(1))),
            ring.pick(&pool, &at(0))
        );
    }

    #[test]
    fn unavailable_key_moves_clockwise_and_returns() {
        let pool = pool(&[1, 1, 1, 1]);
        let ring = RingHash::new(&pool, 50, None);
        let h = ring.points[7];
        let own = ring.owners[7];
        let next = ring.owners[8..]
            .iter()
            .find(|&&o| o != own)
            .copied()
            .unwrap();
        pool[own as usize].state.set_available(false);
        assert_eq!(ring.pick(&pool, &at(h)), Some(BackendId(next)));
        pool[own as usize].state.set_available(true);
        assert_eq!(ring.pick(&pool, &at(h)), Some(BackendId(own)));
        let exclude = [BackendId(own)];
        let ctx = PickCtx {
            hash: Some(h),
            exclude: &exclude,
            ..PickCtx::default()
        };
        assert_eq!(ring.pick(&pool, &ctx), Some(BackendId(next)));
    }

    #[test]
    fn none_only_when_nothing_eligible() {
        let pool = pool(&[1; 40]);
        let ring = RingHash::new(&pool, 160, Some(1.25));
        for b in &pool[1..] {
            b.state.set_available(false);
        }
        // Far past MAX_WALK points of down backends: the scan still finds #0.
        for h in [0, 99, u64::MAX] {
            assert_eq!(ring.pick(&pool, &at(h)), Some(BackendId(0)));
        }
        pool[0].state.set_available(false);
        assert_eq!(ring.pick(&pool, &at(5)), None);
        assert_eq!(ring.pick(&pool, &PickCtx::default()), None);
    }

    #[test]
    fn no_hash_gives_a_random_eligible_backend() {
        let pool = pool(&[1, 1, 1]);
        pool[1].state.set_available(false);
        let ring = RingHash::new(&pool, 160, None);
        let mut seen = [0; 3];
        for entropy in 0..300 {
            let ctx = PickCtx {
                entropy,
                ..PickCtx::default()
            };
            seen[ring.pick(&pool, &ctx).unwrap().index()] += 1;
        }
        assert_eq!(seen[1], 0);
        assert!(seen[0] > 0 && seen[2] > 0, "{seen:?}");
    }

    #[test]
    fn bounded_load_passes_over_a_full_backend() {
        let pool = pool(&[1, 1, 1, 1]);
        let ring = RingHash::new(&pool, 160, Some(1.5));
        let own = ring.pick(&pool, &at(42)).unwrap();
        // T = 2, so the bound is ceil(1.5 × 3 / 4) = 2: at 2, `own` is full.
        pool[own.index()]
            .state
            .in_flight
            .store(2, Ordering::Relaxed);
        let moved = ring.pick(&pool, &at(42)).unwrap();
        assert_ne!(moved, own);
        // T = 0: the bound is ceil(1.5 / 4) = 1 and `own` fits again.
        pool[own.index()]
            .state
            .in_flight
            .store(0, Ordering::Relaxed);
        assert_eq!(ring.pick(&pool, &at(42)), Some(own));
        // Unbounded, the same state keeps the key home.
        pool[own.index()]
            .state
            .in_flight
            .store(100, Ordering::Relaxed);
        let unbounded = RingHash::new(&pool, 160, None);
        assert_eq!(unbounded.pick(&pool, &at(42)), Some(own));
    }

    #[test]
    fn bounded_load_reads_the_callers_counters() {
        let pool = pool(&[1, 1, 1, 1]);
        let ring = RingHash::new(&pool, 160, Some(1.5));
        let own = ring.pick(&pool, &at(42)).unwrap();
        pool[own.index()]
            .state
            .in_flight
            .store(2, Ordering::Relaxed);
        let with = |in_flight, eligible| PickCtx {
            load: Some(super::super::PoolLoad {
                in_flight,
                eligible,
            }),
            ..at(42)
        };
        // The counters agree with the backends (T = 2, n = 4): bound 2, `own` is full.
        assert_ne!(ring.pick(&pool, &with(2, 4)), Some(own));
        // The counters say the pool is busier (T = 10): bound 5, `own` fits.
        // Only the counters are read, not the backends' sum.
        assert_eq!(ring.pick(&pool, &with(10, 4)), Some(own));
    }

    #[test]
    fn odd_factors_are_tamed() {
        let pool = pool(&[1]);
        assert_eq!(RingHash::new(&pool, 1, Some(0.5)).balance_factor, Some(1.0));
        assert_eq!(RingHash::new(&pool, 1, Some(f64::NAN)).balance_factor, None);
    }
}
