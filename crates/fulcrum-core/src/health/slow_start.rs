//! Slow start: a backend that joins, or returns from ejection or an outage,
//! ramps its effective weight from a small share to full over a window.
//!
//! A backend that just came up has cold caches, empty connection pools and a
//! JIT that has not warmed; full load at once can knock it straight back down.
//! After a whole-pool outage every backend returns at about the same instant,
//! and the ramp is what keeps them from all taking full load in that instant.
//! The shape follows Envoy: `share = max(min_share, (t / window)^(1/aggression))`.

use std::num::NonZeroU32;
use std::time::Duration;

use super::nanos;

/// Shape of a slow-start ramp.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SlowStartParams {
    /// Length of the ramp; zero disables slow start (full weight at once).
    pub window: Duration,
    /// Share of the full weight at the start of the ramp, in percent (1..=100).
    pub min_share: u32,
    /// Ramp curvature: 1.0 is linear, above 1.0 rises faster early (Envoy's
    /// `aggression`). Non-finite or non-positive values mean linear.
    pub aggression: f64,
}

impl Default for SlowStartParams {
    /// A 30 s linear ramp from 10%.
    fn default() -> Self {
        Self {
            window: Duration::from_secs(30),
            min_share: 10,
            aggression: 1.0,
        }
    }
}

/// The ramp of one backend, from the instant it became routable.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SlowStart {
    params: SlowStartParams,
    since: Duration,
}

impl SlowStart {
    /// A ramp starting at `since` (when the backend joined or returned).
    pub fn new(params: SlowStartParams, since: Duration) -> Self {
        Self { params, since }
    }

    /// Whether the ramp is over at `now`: the weight is full from then on.
    pub fn is_done(&self, now: Duration) -> bool {
        now.saturating_sub(self.since) >= self.params.window
    }

    /// The effective weight at `now` of a backend whose configured weight is `full`.
    ///
    /// Never below 1 (a weight of 0 would take the backend out, not slow it),
    /// non-decreasing in `now`, below `full` before the window ends whenever
    /// `full` is large enough to show it, and exactly `full` from the end on.
    pub fn weight(&self, full: NonZeroU32, now: Duration) -> NonZeroU32 {
        if self.is_done(now) {
            return full;
        }
        let elapsed = nanos(now.saturating_sub(self.since));
        let window = nanos(self.params.window).max(1);
        let min_share = u64::from(self.params.min_share.clamp(1, 100));
        let a = self.params.aggression;
        let scaled = if a.is_finite() && a > 0.0 && a != 1.0 {
            let f = (elapsed as f64 / window as f64).powf(1.0 / a);
            let share = f.max(min_share as f64 / 100.0).min(1.0);
            // `as` saturates; share < 1 before the window ends (up to rounding,
            // hence the clamp below).
            (f64::from(full.get()) * share) as u64
        } else {
            // Exact integer linear ramp: full × max(min, elapsed / window).
            let num = (u128::from(min_share) * u128::from(window)).max(100 * u128::from(elapsed));
            let w = u128::from(full.get()) * num / (100 * u128::from(window));
            u64::try_from(w).unwrap_or(u64::MAX)
        };
        let w = u32::try_from(scaled).unwrap_or(u32::MAX).min(full.get());
        NonZeroU32::new(w).unwrap_or(NonZeroU32::MIN)
    }
}

/// The warm share of a pool's capacity, in permille: the sum of effective
/// weights over the sum of full weights, for `(effective, full)` pairs of the
/// routable backends. 1000 for an empty pool or one fully ramped.
///
/// Weights are relative: when every backend of a pool returns from an outage
/// in the same instant, they ramp together and each still gets `1/n` of the
/// load. The ramp alone cannot shield a pool that is cold all over; this share
/// can, when the caller scales the pool's circuit limits (`max_requests`,
/// `max_connections`) by it and sheds the excess with 503 + `Retry-After`.
pub fn warm_share_permille<I>(weights: I) -> u32
where
    I: IntoIterator<Item = (NonZeroU32, NonZeroU32)>,
{
    let (mut effective, mut full) = (0u128, 0u128);
    for (e, f) in weights {
        effective += u128::from(e.get().min(f.get()));
        full += u128::from(f.get());
    }
    if full == 0 {
        return 1000;
    }
    u32::try_from(effective * 1000 / full).unwrap_or(1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nz(n: u32) -> NonZeroU32 {
        NonZeroU32::new(n).unwrap()
    }

    #[test]
    fn linear_ramp_from_ten_percent_to_full_exactly_at_the_window() {
        let t0 = Duration::from_secs(50);
        let s = SlowStart::new(SlowStartParams::default(), t0);
        let full = nz(1000);
        assert_eq!(s.weight(full, t0), nz(100));
        assert_eq!(s.weight(full, t0 + Duration::from_secs(15)), nz(500));
        let end = t0 + Duration::from_secs(30);
        assert!(s.weight(full, end - Duration::from_nanos(1)) < full);
        assert!(!s.is_done(end - Duration::from_nanos(1)));
        assert_eq!(s.weight(full, end), full);
        assert!(s.is_done(end));
        // A clock reading before `since` is the start of the ramp, not a panic.
        assert_eq!(s.weight(full, Duration::ZERO), nz(100));
    }

    #[test]
    fn never_below_one_and_zero_window_is_full_at_once() {
        let s = SlowStart::new(SlowStartParams::default(), Duration::ZERO);
        assert_eq!(s.weight(nz(1), Duration::ZERO), nz(1));
        assert_eq!(s.weight(nz(5), Duration::ZERO), nz(1));
        let off = SlowStartParams {
            window: Duration::ZERO,
            ..SlowStartParams::default()
        };
        let s = SlowStart::new(off, Duration::ZERO);
        assert_eq!(s.weight(nz(7), Duration::ZERO), nz(7));
        assert!(s.is_done(Duration::ZERO));
    }

    #[test]
    fn aggression_rises_faster_early_and_still_ends_full() {
        let p = SlowStartParams {
            aggression: 2.0,
            ..SlowStartParams::default()
        };
        let fast = SlowStart::new(p, Duration::ZERO);
        let lin = SlowStart::new(SlowStartParams::default(), Duration::ZERO);
        let full = nz(10_000);
        let q = Duration::from_millis(7_500);
        assert!(fast.weight(full, q) > lin.weight(full, q));
        assert_eq!(fast.weight(full, q), nz(5_000)); // sqrt(0.25)
        assert_eq!(fast.weight(full, Duration::from_secs(30)), full);
    }

    #[test]
    fn warm_share_sums_effective_over_full() {
        assert_eq!(warm_share_permille([]), 1000);
        assert_eq!(
            warm_share_permille([(nz(1), nz(10)), (nz(10), nz(10))]),
            550
        );
        assert_eq!(warm_share_permille([(nz(50), nz(10))]), 1000);
    }
}
