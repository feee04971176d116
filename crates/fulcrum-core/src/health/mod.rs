//! Stage: backend results → backend status and effective weight.
//!
//! Input: probe results (pass or fail), request outcomes (status class, gateway
//! failure, latency), operator actions (drain) and the caller's clock. Output:
//! a [`Status`] per backend, ejections with their end time, a slow-start weight,
//! and pool-level verdicts ([`may_eject`], [`panic_mode`]).
//!
//! Owns the state machines only: [`RiseFall`] (active checks), [`Outlier`]
//! (passive detection), [`SlowStart`] (ramp after joining or returning) and
//! [`Drain`] (graceful removal), and [`BackendHealth`], which combines them
//! into one backend's visible [`State`] and ramp ([`pool_verdict`] turns a
//! pool's states into who takes traffic). Never sends a probe, starts a timer, reads a
//! clock or draws randomness: `fulcrum` runs the probes and timers and feeds the
//! results in, so every scenario replays exactly in a test.
//!
//! **Time** is always `now: Duration`, the caller's monotonic clock measured
//! from an arbitrary epoch of its choosing (for example `start.elapsed()`), the
//! same epoch for every call on one value. **Randomness** is `entropy: u64`,
//! uniform random bits supplied by the caller.

use std::time::Duration;

mod active;
mod backend;
mod drain;
mod outlier;
mod slow_start;
pub(crate) mod window;

pub use active::{next_probe, RiseFall, RiseFallParams, DEFAULT_JITTER_FRACTION};
pub use backend::{pool_verdict, tiered_verdict, BackendHealth, HealthParams, State};
pub use drain::{is_released, Drain, DEFAULT_DRAIN_TIMEOUT};
pub use outlier::{
    may_eject, panic_mode, Ejection, Outcome, Outlier, OutlierParams, OutlierPool, Reason,
    DEFAULT_PANIC_THRESHOLD,
};
pub use slow_start::{warm_share_permille, SlowStart, SlowStartParams};

/// Health of one backend as the balancers see it.
///
/// A backend starts [`Status::Unknown`], not `Up`: a backend that was never
/// checked must not take traffic (pingora's "healthy before the first check"
/// weakness), so the first probe result always reports a transition.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Status {
    /// No probe result yet: not routable.
    #[default]
    Unknown = 0,
    /// Passing its checks: routable.
    Up = 1,
    /// Failing its checks: not routable.
    Down = 2,
    /// Taken out by an operator or a reload: no new work, in-flight work finishes.
    Draining = 3,
}

impl Status {
    /// Whether new requests or connections may go to a backend in this state.
    pub fn is_routable(self) -> bool {
        self == Status::Up
    }

    /// The status as a byte, for storage in an `AtomicU8` beside the backend.
    pub fn as_u8(self) -> u8 {
        self as u8
    }

    /// The status stored by [`Status::as_u8`]; `None` for any other byte.
    pub fn from_u8(byte: u8) -> Option<Self> {
        match byte {
            0 => Some(Status::Unknown),
            1 => Some(Status::Up),
            2 => Some(Status::Down),
            3 => Some(Status::Draining),
            _ => None,
        }
    }
}

/// Nanoseconds in `d`, saturating at `u64::MAX` (about 584 years).
pub(crate) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// A uniform draw in `0..=max` from 64 random bits, by widening multiply: no
/// modulo bias, no loop, and the same `entropy` always gives the same draw.
pub(crate) fn uniform_upto(max: u64, entropy: u64) -> u64 {
    let span = u128::from(max) + 1;
    // (entropy * span) >> 64 lies in 0..span, i.e. 0..=max, and fits in u64.
    u64::try_from((u128::from(entropy) * span) >> 64).unwrap_or(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_round_trips_through_a_byte() {
        for s in [Status::Unknown, Status::Up, Status::Down, Status::Draining] {
            assert_eq!(Status::from_u8(s.as_u8()), Some(s));
        }
        assert_eq!(Status::from_u8(4), None);
        assert_eq!(Status::default(), Status::Unknown);
        assert!(Status::Up.is_routable());
        assert!(!Status::Unknown.is_routable());
        assert!(!Status::Draining.is_routable());
    }

    #[test]
    fn uniform_draw_covers_both_ends() {
        assert_eq!(uniform_upto(10, 0), 0);
        assert_eq!(uniform_upto(10, u64::MAX), 10);
        assert_eq!(uniform_upto(0, u64::MAX), 0);
        assert_eq!(uniform_upto(u64::MAX, u64::MAX), u64::MAX);
    }
}
