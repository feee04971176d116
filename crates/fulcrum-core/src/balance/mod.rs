//! Stage: pool → backend.
//!
//! Input: one pool snapshot (`&[Backend]`) and a [`PickCtx`] (backends this
//! request already tried, a hash key, caller-supplied randomness). Output: the
//! [`BackendId`] to try next, or `None` when no backend is eligible (→ 503).
//!
//! Owns the algorithms and their small mutable state (a cursor, smooth weights).
//! Never does I/O, never reads a clock, never draws its own randomness: the same
//! inputs give the same picks, so simulations replay exactly.
//!
//! A backend is *eligible* for a pick when it is available
//! ([`BackendState::is_available`]) and not in `ctx.exclude`. Balancers are
//! built off the data path on each reload ([`build`]); per-backend live state
//! sits behind `Arc<BackendState>` so the caller can carry it over by
//! [`BackendKey`].
//!
//! Slow start is applied on top of any algorithm by [`pick_ramped`], which
//! reads each backend's ramp ([`BackendState::ramp_permille`]).
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use crate::config::{BalanceConfig, LoadConfig, PoolConfig};

mod key;
mod least_conn;
mod maglev;
mod ramp;
mod random;
mod ring_hash;
mod round_robin;
mod sticky;
mod weighted;

pub use key::HashKey;
pub use least_conn::LeastConnections;
pub use maglev::Maglev;
pub use ramp::pick_ramped;
pub use random::{PowerOfTwo, Random};
pub use ring_hash::RingHash;
pub use round_robin::RoundRobin;
pub use sticky::{is_cookie_name, Pin, Sticky};
pub use weighted::WeightedRoundRobin;

/// Position of a backend in one pool snapshot. Cheap to copy; not stable across reloads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BackendId(pub u32);

impl BackendId {
    /// The id of the backend at `index` in the pool, or `None` past `u32::MAX`.
    pub fn from_index(index: usize) -> Option<Self> {
        u32::try_from(index).ok().map(Self)
    }

    /// The position of this backend in its pool slice.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// Stable identity of a backend (address or name). Per-backend state is carried across
/// reloads by this key, so in-flight counts and health survive a rebuild.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BackendKey(pub String);

/// Live, shared state of one backend: written by health and upstream, read by balancers.
///
/// The default is *available*: until health checks land, every backend is
/// eligible unless something marks it otherwise.
#[derive(Debug, Default)]
pub struct BackendState {
    /// Requests (or connections) currently leased to this backend.
    pub in_flight: AtomicU32,
    /// Inverted so that `Default` means available.
    unavailable: AtomicBool,
    /// Peak-EWMA latency in ns as `f64` bits; `0` means never observed.
    ewma_bits: AtomicU64,
    /// Caller's `now_ns` at the last latency observation.
    ewma_at: AtomicU64,
    /// `1000 - ramp_permille`, so that `Default` means fully ramped.
    cold_permille: AtomicU32,
}

impl BackendState {
    /// Whether balancers may pick this backend.
    pub fn is_available(&self) -> bool {
        // Relaxed: a flag read on every pick; a stale read costs one pick at most.
        !self.unavailable.load(Ordering::Relaxed)
    }

    /// Marks the backend available (`true`) or not (`false`) for later picks.
    pub fn set_available(&self, available: bool) {
        self.unavailable.store(!available, Ordering::Relaxed);
    }

    /// Slow-start share of full weight, in permille (1..=1000; 1000 when not
    /// ramping). Read by [`pick_ramped`].
    pub fn ramp_permille(&self) -> u32 {
        // Relaxed: advisory like availability; a stale read skews one pick.
        1000 - self.cold_permille.load(Ordering::Relaxed).min(999)
    }

    /// Sets the slow-start share (clamped to 1..=1000) for later picks.
    pub fn set_ramp_permille(&self, permille: u32) {
        let cold = 1000 - permille.clamp(1, 1000);
        self.cold_permille.store(cold, Ordering::Relaxed);
    }

    /// Estimate reported for a backend with no latency sample yet: low enough
    /// that new backends get tried, as linkerd's default RTT does.
    pub const EWMA_DEFAULT_NS: u64 = 1_000_000;
    /// Peak-EWMA time constant: a sample's weight falls by `1/e` every 10 s.
    pub const EWMA_TAU_NS: u64 = 10_000_000_000;

    /// Feeds one response latency into the peak-EWMA estimate (linkerd's
    /// `PeakEwma`): a sample above the estimate replaces it at once, so a slow
    /// backend is avoided immediately; a lower one pulls it down with weight
    /// `1 - exp(-elapsed / tau)`. `now_ns` is the caller's monotonic clock.
    pub fn observe_latency(&self, rtt_ns: u64, now_ns: u64) {
        // At least 1 ns, so that an observed estimate is never the "unset" 0.
        let rtt = (rtt_ns as f64).max(1.0);
        let elapsed = now_ns.saturating_sub(self.ewma_at.load(Ordering::Relaxed));
        let w = (-(elapsed as f64) / Self::EWMA_TAU_NS as f64).exp();
        // Relaxed throughout: value and time are advisory; two racing
        // observations each land (CAS), and a torn value/time pair only
        // mis-weights one decay step.
        let _ = self
            .ewma_bits
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                let prev = f64::from_bits(bits);
                let next = if bits == 0 || rtt > prev {
                    rtt
                } else {
                    prev * w + rtt * (1.0 - w)
                };
                Some(next.max(1.0).to_bits())
            });
        self.ewma_at.fetch_max(now_ns, Ordering::Relaxed);
    }

    /// The peak-EWMA latency estimate at `now_ns`, in ns: the last estimate
    /// decayed toward zero by the time since the last sample, so an idle slow
    /// backend is eventually retried; [`Self::EWMA_DEFAULT_NS`] before any sample.
    pub fn ewma_ns(&self, now_ns: u64) -> u64 {
        let bits = self.ewma_bits.load(Ordering::Relaxed);
        if bits == 0 {
            return Self::EWMA_DEFAULT_NS;
        }
        let elapsed = now_ns.saturating_sub(self.ewma_at.load(Ordering::Relaxed));
        let w = (-(elapsed as f64) / Self::EWMA_TAU_NS as f64).exp();
        // `as` saturates: the estimate is finite and non-negative.
        (f64::from_bits(bits) * w) as u64
    }
}

/// One backend as a balancer sees it.
#[derive(Debug)]
pub struct Backend {
    /// Stable identity, used to carry `state` across reloads.
    pub key: BackendKey,
    /// Resolved address.
    pub addr: SocketAddr,
    /// Relative share for weighted algorithms; ignored by plain round robin.
    pub weight: NonZeroU32,
    /// Live state shared with health checks and upstream leases.
    pub state: Arc<BackendState>,
}

impl Backend {
    /// A backend with fresh (available, idle) state, keyed by its address.
    pub fn new(addr: SocketAddr, weight: NonZeroU32) -> Self {
        Self {
            key: BackendKey(addr.to_string()),
            addr,
            weight,
            state: Arc::default(),
        }
    }
}

/// Inputs to one pick. The caller supplies randomness, so tests are deterministic.
#[derive(Debug, Default)]
pub struct PickCtx<'a> {
    /// Consistent-hash or sticky key, when the algorithm uses one.
    pub hash: Option<u64>,
    /// Backends already tried by this request (retries); never picked again.
    pub exclude: &'a [BackendId],
    /// Random bits for random choice and tie-breaks.
    pub entropy: u64,
    /// The caller's monotonic clock in nanoseconds since an arbitrary epoch, for
    /// time-aware load measures (peak EWMA). Zero when the caller has no clock.
    pub now_ns: u64,
    /// The pool's load as the caller counts it, so bounded loads need not sum
    /// every backend's in-flight count on each pick; `None`: the balancer sums.
    pub load: Option<PoolLoad>,
}

/// A pool's load, kept by the caller in pool-wide counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolLoad {
    /// Requests in flight on the pool's backends, this one excluded.
    pub in_flight: u64,
    /// Backends that may take requests (available ones).
    pub eligible: u64,
}

/// Chooses a backend for one connection or request.
pub trait Balancer: Send + Sync + std::fmt::Debug {
    /// Returns an eligible backend (available, not excluded), or `None` when the
    /// pool has none.
    fn pick(&self, pool: &[Backend], ctx: &PickCtx<'_>) -> Option<BackendId>;
}

/// Builds the configured algorithm for a backend set. Called off the data path,
/// on each reload or membership change; `pool` must be the slice later passed to `pick`.
pub fn build(cfg: &Settings, pool: &[Backend]) -> Box<dyn Balancer> {
    match cfg.algorithm {
        BalanceConfig::RoundRobin => Box::new(RoundRobin::new()),
        BalanceConfig::WeightedRoundRobin => Box::new(WeightedRoundRobin::new(pool)),
        BalanceConfig::LeastConnections => Box::new(LeastConnections::new()),
        BalanceConfig::Random => Box::new(Random::new(pool)),
        BalanceConfig::PowerOfTwo => Box::new(PowerOfTwo::new(cfg.load)),
        BalanceConfig::RingHash => {
            Box::new(RingHash::new(pool, cfg.virtual_nodes, cfg.balance_factor))
        }
        BalanceConfig::Maglev => Box::new(Maglev::new(pool, cfg.table_size)),
    }
}

/// Seed of every fleet-visible hash. Fixed and specified (xxh3-64 with this seed), so
/// every Fulcrum with the same config maps a key to the same backend; never
/// `RandomState`, whose algorithm Rust does not promise to keep.
pub const HASH_SEED: u64 = 0x6675_6c63_7275_6d31; // "fulcrum1"

/// The fleet-stable hash of `bytes`: request keys and ring points alike.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64_with_seed(bytes, HASH_SEED)
}

/// A pool's balancing settings, taken from its config.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Settings {
    /// The algorithm.
    pub algorithm: BalanceConfig,
    /// `ring_hash` points per unit of weight.
    pub virtual_nodes: u32,
    /// `ring_hash` bounded-load factor.
    pub balance_factor: Option<f64>,
    /// `maglev` table size (a prime).
    pub table_size: u32,
    /// `power_of_two` load measure.
    pub load: LoadConfig,
}

impl Settings {
    /// Round robin with default parameters.
    pub fn new(algorithm: BalanceConfig) -> Self {
        Self {
            algorithm,
            virtual_nodes: 160,
            balance_factor: None,
            table_size: 65_537,
            load: LoadConfig::InFlight,
        }
    }

    /// The settings of a pool.
    pub fn from_pool(p: &PoolConfig) -> Self {
        Self {
            algorithm: p.balance,
            virtual_nodes: p.virtual_nodes,
            balance_factor: p.balance_factor,
            table_size: p.table_size,
            load: p.load,
        }
    }
}

/// Whether `pool[index]` may be picked under `exclude`.
fn is_eligible(backend: &Backend, index: usize, exclude: &[BackendId]) -> bool {
    backend.state.is_available() && !exclude.iter().any(|id| id.index() == index)
}

/// Helpers shared by the balancer unit tests.
#[cfg(test)]
pub(crate) mod test_support {
    use super::*;

    /// A pool of backends on 127.0.0.1 with the given weights.
    pub(crate) fn pool(weights: &[u32]) -> Vec<Backend> {
        weights
            .iter()
            .enumerate()
            .map(|(i, &w)| {
                let addr = SocketAddr::from(([127, 0, 0, 1], 9000 + i as u16));
                Backend::new(addr, NonZeroU32::new(w).unwrap())
            })
            .collect()
    }

    /// Picks `n` times with `ctx` and returns how often each backend was chosen.
    pub(crate) fn counts(
        b: &dyn Balancer,
        pool: &[Backend],
        ctx: &PickCtx<'_>,
        n: usize,
    ) -> Vec<usize> {
        let mut counts = vec![0; pool.len()];
        for _ in 0..n {
            counts[b.pick(pool, ctx).unwrap().index()] += 1;
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::pool;
    use super::*;

    #[test]
    fn build_dispatches_on_config() {
        let pool = pool(&[3, 1]);
        let ctx = PickCtx::default();
        let rr = build(&Settings::new(BalanceConfig::RoundRobin), &pool);
        let picks: Vec<_> = (0..4).map(|_| rr.pick(&pool, &ctx).unwrap().0).collect();
        assert_eq!(picks, [0, 1, 0, 1]);
        let wrr = build(&Settings::new(BalanceConfig::WeightedRoundRobin), &pool);
        let picks: Vec<_> = (0..4).map(|_| wrr.pick(&pool, &ctx).unwrap().0).collect();
        assert_eq!(picks, [0, 0, 1, 0]);
    }

    #[test]
    fn state_defaults_to_available() {
        let state = BackendState::default();
        assert!(state.is_available());
        state.set_available(false);
        assert!(!state.is_available());
        state.set_available(true);
        assert!(state.is_available());
    }

    #[test]
    fn ramp_defaults_to_full_and_is_clamped() {
        let state = BackendState::default();
        assert_eq!(state.ramp_permille(), 1000);
        state.set_ramp_permille(100);
        assert_eq!(state.ramp_permille(), 100);
        state.set_ramp_permille(0);
        assert_eq!(state.ramp_permille(), 1);
        state.set_ramp_permille(5000);
        assert_eq!(state.ramp_permille(), 1000);
    }

    #[test]
    fn empty_pool_gives_none() {
        for cfg in [BalanceConfig::RoundRobin, BalanceConfig::WeightedRoundRobin] {
            assert_eq!(
                build(&Settings::new(cfg), &[]).pick(&[], &PickCtx::default()),
                None
            );
        }
    }
}
