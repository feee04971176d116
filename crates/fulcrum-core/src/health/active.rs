//! Active checks: a rise/fall counter over probe results, and jittered probe times.
//!
//! One failed probe is not proof a backend is gone and one pass is not proof it
//! is back, so transitions need streaks (`fall` failures, `rise` passes). The
//! exception is a backend never seen before: it takes traffic after its first
//! pass, so a fresh pool starts serving after one probe interval, not `rise`.

use std::time::Duration;

use super::{nanos, uniform_upto, Status};

/// Share of the probe interval used as jitter when the config sets none (10%).
pub const DEFAULT_JITTER_FRACTION: f64 = 0.1;

/// Thresholds of a [`RiseFall`] counter. Zero counts as one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RiseFallParams {
    /// Consecutive passes that bring a `Down` backend back `Up`.
    pub rise: u32,
    /// Consecutive failures that take an `Up` or `Unknown` backend `Down`.
    pub fall: u32,
}

impl Default for RiseFallParams {
    /// `rise = 2, fall = 3`, as in the documented example config.
    fn default() -> Self {
        Self { rise: 2, fall: 3 }
    }
}

/// The health of one backend as seen by its active probes.
///
/// Only ever reports `Unknown`, `Up` or `Down`: draining is an operator's
/// decision layered on top ([`super::Drain`]), and probes keep running while a
/// backend drains so its health is known when it is undrained.
#[derive(Clone, Debug)]
pub struct RiseFall {
    params: RiseFallParams,
    status: Status,
    /// Consecutive passes (when the last result passed) or failures (otherwise).
    streak: u32,
    last_ok: bool,
}

impl RiseFall {
    /// A counter in state `Unknown` with no results yet.
    pub fn new(params: RiseFallParams) -> Self {
        Self {
            params: RiseFallParams {
                rise: params.rise.max(1),
                fall: params.fall.max(1),
            },
            status: Status::Unknown,
            streak: 0,
            last_ok: false,
        }
    }

    /// A counter that carries `status` over from an earlier one (a reload that
    /// changed the thresholds), with its streak restarted. `Draining` is not a
    /// probe status and counts as `Unknown`.
    pub(crate) fn resume(params: RiseFallParams, status: Status) -> Self {
        let mut rf = Self::new(params);
        if matches!(status, Status::Up | Status::Down) {
            rf.status = status;
        }
        rf
    }

    /// The current status.
    pub fn status(&self) -> Status {
        self.status
    }

    /// Feeds one probe result; returns the new status when it changed.
    ///
    /// From `Unknown` one pass goes `Up` and `fall` failures go `Down`; from
    /// `Down`, `rise` consecutive passes go `Up`; from `Up`, `fall` consecutive
    /// failures go `Down`. A result against the streak restarts it, so a
    /// flapping backend (pass, fail, pass…) never changes state once settled.
    pub fn observe(&mut self, ok: bool) -> Option<Status> {
        if ok == self.last_ok {
            self.streak = self.streak.saturating_add(1);
        } else {
            self.last_ok = ok;
            self.streak = 1;
        }
        let next = match (self.status, ok) {
            (Status::Unknown, true) => Status::Up,
            (Status::Down, true) if self.streak >= self.params.rise => Status::Up,
            (Status::Unknown | Status::Up, false) if self.streak >= self.params.fall => {
                Status::Down
            }
            _ => return None,
        };
        self.status = next;
        self.streak = 0;
        Some(next)
    }
}

/// When to send the next probe: `now + interval ± jitter`, where
/// `jitter = interval × jitter_fraction` (clamped to `0..=1`) and the offset
/// is drawn uniformly from `entropy`.
///
/// Backends of a pool added in the same instant would otherwise be probed in
/// lockstep forever, and their probes (and any failover they trigger) would
/// land on the network and on the backends together. Each probe draws a fresh
/// offset, so even schedules that start together drift apart.
pub fn next_probe(
    interval: Duration,
    jitter_fraction: f64,
    entropy: u64,
    now: Duration,
) -> Duration {
    let fraction = if jitter_fraction.is_nan() {
        0.0
    } else {
        jitter_fraction.clamp(0.0, 1.0)
    };
    let interval_ns = nanos(interval);
    // `as` saturates; fraction ≤ 1 keeps jitter ≤ interval.
    let jitter_ns = (interval_ns as f64 * fraction) as u64;
    let offset = uniform_upto(jitter_ns.saturating_mul(2), entropy);
    let earliest = interval_ns - jitter_ns.min(interval_ns);
    now.saturating_add(Duration::from_nanos(earliest.saturating_add(offset)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counter(rise: u32, fall: u32) -> RiseFall {
        RiseFall::new(RiseFallParams { rise, fall })
    }

    #[test]
    fn unknown_goes_up_after_one_pass() {
        let mut rf = counter(3, 3);
        assert_eq!(rf.status(), Status::Unknown);
        assert_eq!(rf.observe(true), Some(Status::Up));
        assert_eq!(rf.observe(true), None);
    }

    #[test]
    fn unknown_goes_down_after_fall_failures() {
        let mut rf = counter(2, 3);
        assert_eq!(rf.observe(false), None);
        assert_eq!(rf.observe(false), None);
        assert_eq!(rf.status(), Status::Unknown);
        assert_eq!(rf.observe(false), Some(Status::Down));
    }

    #[test]
    fn up_needs_fall_failures_and_down_needs_rise_passes() {
        let mut rf = counter(2, 3);
        rf.observe(true);
        assert_eq!(rf.observe(false), None);
        assert_eq!(rf.observe(false), None);
        assert_eq!(rf.observe(false), Some(Status::Down));
        assert_eq!(rf.observe(false), None);
        assert_eq!(rf.observe(true), None);
        assert_eq!(rf.observe(true), Some(Status::Up));
    }

    #[test]
    fn flapping_never_changes_a_settled_state() {
        let mut rf = counter(2, 2);
        rf.observe(true);
        for i in 0..100 {
            assert_eq!(rf.observe(i % 2 == 0), None, "step {i}");
        }
        assert_eq!(rf.status(), Status::Up);
        rf.observe(false);
        rf.observe(false);
        assert_eq!(rf.status(), Status::Down);
        for i in 0..100 {
            assert_eq!(rf.observe(i % 2 == 0), None, "step {i}");
        }
        assert_eq!(rf.status(), Status::Down);
    }

    #[test]
    fn a_streak_counts_from_the_transition() {
        // The failures that took it down do not count toward the next fall.
        let mut rf = counter(1, 2);
        rf.observe(true);
        rf.observe(false);
        assert_eq!(rf.observe(false), Some(Status::Down));
        assert_eq!(rf.observe(true), Some(Status::Up));
        assert_eq!(rf.observe(false), None);
        assert_eq!(rf.observe(false), Some(Status::Down));
    }

    #[test]
    fn zero_thresholds_count_as_one() {
        let mut rf = counter(0, 0);
        assert_eq!(rf.observe(false), Some(Status::Down));
        assert_eq!(rf.observe(true), Some(Status::Up));
    }

    #[test]
    fn next_probe_stays_within_the_jitter() {
        let now = Duration::from_secs(100);
        let i = Duration::from_secs(10);
        assert_eq!(next_probe(i, 0.1, 0, now), now + Duration::from_secs(9));
        assert_eq!(
            next_probe(i, 0.1, u64::MAX, now),
            now + Duration::from_secs(11)
        );
        assert_eq!(next_probe(i, 0.0, 12345, now), now + i);
        assert_eq!(next_probe(i, f64::NAN, 12345, now), now + i);
        assert_eq!(next_probe(i, 5.0, 0, now), now);
    }
}
