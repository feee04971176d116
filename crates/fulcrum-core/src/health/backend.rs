//! One backend's whole health, and a pool's verdict on who takes traffic.
//!
//! [`BackendHealth`] combines the four state machines of this stage into the
//! one [`State`] an operator sees and the ramp a balancer applies. The visible
//! state is decided in this order, highest first:
//!
//! 1. **Draining**: an operator's (or a reload's) decision to take the backend
//!    out outranks anything measured about it; probes and outcomes still feed
//!    in, so its health is known when it is undrained.
//! 2. **Down / Unknown** from the active checks: a backend that fails its
//!    probes, or was never probed, is out whether or not it is also ejected.
//!    Down is the longer-lived fact, and the one an operator has to fix.
//! 3. **Ejected**: real traffic went bad although the probes pass, so it only
//!    ever shows over a probe status of Up, and only until the ejection ends.
//! 4. **Up**.
//!
//! Every return to traffic goes through slow start: Down → Up, the first Up
//! of a backend that joined a running pool, the end of an ejection, and an
//! undrain. Returns that overlap keep the latest ramp start, so a backend that
//! is ejected just after coming back ramps from the end of its ejection.
//!
//! State and ramp change with time alone (an ejection ends, a ramp rises), so
//! the caller re-reads them on a timer as well as after each event.

use std::num::NonZeroU32;
use std::time::Duration;

use super::{
    panic_mode, Drain, Ejection, Outcome, Outlier, OutlierParams, RiseFall, RiseFallParams,
    SlowStart, SlowStartParams, Status, DEFAULT_DRAIN_TIMEOUT,
};

/// Full weight of a ramp in permille.
const FULL: NonZeroU32 = NonZeroU32::MIN.saturating_add(999);

/// Per-pool health settings (from the pool's config; the I/O side builds it).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HealthParams {
    /// Active checks' thresholds; `None` when the pool has no active check
    /// (backends are Up at once).
    pub checks: Option<RiseFallParams>,
    /// Passive detection; `None` when off.
    pub outlier: Option<OutlierParams>,
    /// Ramp after joining or returning; `window` zero = off.
    pub slow_start: SlowStartParams,
    /// How long a drain waits for in-flight work.
    pub drain_timeout: Duration,
}

impl Default for HealthParams {
    /// No checks, no outlier detection, no slow start, a 30 s drain.
    fn default() -> Self {
        Self {
            checks: None,
            outlier: None,
            slow_start: SlowStartParams {
                window: Duration::ZERO,
                ..SlowStartParams::default()
            },
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
        }
    }
}

/// What an operator sees for a backend (metrics label, admin API).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// Never probed: takes no traffic, not even in panic.
    Unknown,
    /// Routable.
    Up,
    /// Failing its active checks.
    Down,
    /// Passing its checks but ejected by outlier detection.
    Ejected,
    /// Taken out by an operator or a reload; in-flight work finishes.
    Draining,
}

impl State {
    /// Every state, for pre-registering metric label values.
    pub const ALL: [State; 5] = [
        State::Unknown,
        State::Up,
        State::Down,
        State::Ejected,
        State::Draining,
    ];

    /// The lower-case name used as a metric label and in the admin API.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Unknown => "unknown",
            State::Up => "up",
            State::Down => "down",
            State::Ejected => "ejected",
            State::Draining => "draining",
        }
    }
}

/// The whole health of one backend: active checks, outlier ejection, slow
/// start and drain, combined (precedence in the module docs).
#[derive(Clone, Debug)]
pub struct BackendHealth {
    params: HealthParams,
    /// `None` without active checks: the probe status is then always Up.
    checks: Option<RiseFall>,
    outlier: Option<Outlier>,
    /// End of the latest ejection. Kept here, not only in `outlier`, so a
    /// reload that turns detection off does not cut a running ejection short.
    ejected_until: Option<Duration>,
    ejections: u64,
    /// Start of the latest ramp; `None` for a backend that never needed one.
    ramp_since: Option<Duration>,
    /// Joined a running pool: its first Up ramps like a return from Down.
    ramp_on_first_up: bool,
    drain: Option<Drain>,
}

impl BackendHealth {
    /// A backend's health at `now`. `joining`: true when the backend is added
    /// to a running pool (reload), so it ramps through slow start once
    /// routable; false at process start, where the whole first set comes up
    /// together and a ramp would only slow every backend alike.
    pub fn new(params: &HealthParams, joining: bool, now: Duration) -> Self {
        let checks = params.checks.map(RiseFall::new);
        Self {
            params: *params,
            ramp_on_first_up: joining && checks.is_some(),
            // Without checks a joining backend is routable at once.
            ramp_since: (joining && checks.is_none()).then_some(now),
            checks,
            outlier: params.outlier.map(|p| Outlier::new(p, now)),
            ejected_until: None,
            ejections: 0,
            drain: None,
        }
    }

    /// New settings on reload; keeps status, ejection and drain.
    ///
    /// Checks removed: Up at once (through slow start if it was Down). Checks
    /// added: an Up backend stays Up and the next probes decide, rather than
    /// dropping a serving backend to Unknown. Changed thresholds keep the
    /// status and restart the streak. Changed outlier thresholds restart the
    /// detectors but keep the ejection history.
    pub fn reconfigure(&mut self, params: &HealthParams, now: Duration) {
        let before = self.probe_status();
        self.checks = match (self.checks.take(), params.checks) {
            (Some(rf), Some(_)) if self.params.checks == params.checks => Some(rf),
            (Some(rf), Some(p)) => Some(RiseFall::resume(p, rf.status())),
            (None, Some(p)) => Some(RiseFall::resume(p, Status::Up)),
            (_, None) => None,
        };
        if before != Status::Up && self.probe_status() == Status::Up {
            self.came_up(before, now);
        }
        self.outlier = match (self.outlier.take(), params.outlier) {
            (Some(mut o), Some(p)) => {
                if self.params.outlier != Some(p) {
                    o.set_params(p);
                }
                Some(o)
            }
            (None, Some(p)) => Some(Outlier::new(p, now)),
            (_, None) => None,
        };
        // A running drain keeps its deadline: it was promised when it started.
        self.params = *params;
    }

    /// One active probe result. Returns the new visible state when it changed.
    /// A no-op without active checks.
    pub fn probe(&mut self, ok: bool, now: Duration) -> Option<State> {
        let before = self.state(now);
        let checks = self.checks.as_mut()?;
        let from = checks.status();
        if checks.observe(ok) == Some(Status::Up) {
            self.came_up(from, now);
        }
        let after = self.state(now);
        (after != before).then_some(after)
    }

    /// One request outcome (passive). `allowed` is called only when a detector
    /// fires, and says whether the pool guard (`max_ejection_percent`) lets
    /// this backend be ejected. Returns the ejection when it happened.
    pub fn record(
        &mut self,
        outcome: Outcome,
        now: Duration,
        allowed: impl FnOnce() -> bool,
    ) -> Option<Ejection> {
        // Outcomes of requests sent before the ejection must not extend it,
        // even from a detector a reload just created.
        if self.is_ejected(now) {
            return None;
        }
        let ejection = self.outlier.as_mut()?.record_with(outcome, now, allowed)?;
        self.ejected_until = Some(ejection.until);
        self.ejections = self.ejections.saturating_add(1);
        self.start_ramp(ejection.until);
        Some(ejection)
    }

    /// Whether passive detection is on (so callers skip locking for nothing).
    pub fn outlier_enabled(&self) -> bool {
        self.outlier.is_some()
    }

    /// Starts draining. Draining again does not move the deadline, so a
    /// repeated admin call cannot hold a backend forever.
    pub fn drain(&mut self, now: Duration) {
        if self.drain.is_none() {
            self.drain = Some(Drain::new(now, self.params.drain_timeout));
        }
    }

    /// Ends a drain: the backend returns through slow start if it is Up
    /// (otherwise its coming Up will start the ramp).
    pub fn undrain(&mut self, now: Duration) {
        if self.drain.take().is_some() && self.probe_status() == Status::Up {
            self.start_ramp(now);
        }
    }

    /// Draining, with nothing in flight or past the deadline.
    pub fn is_released(&self, in_flight: u64, now: Duration) -> bool {
        self.drain.is_some_and(|d| d.is_released(in_flight, now))
    }

    /// The visible state at `now` (precedence in the module docs).
    pub fn state(&self, now: Duration) -> State {
        if self.drain.is_some() {
            return State::Draining;
        }
        match self.probe_status() {
            Status::Up if self.is_ejected(now) => State::Ejected,
            Status::Up => State::Up,
            Status::Down => State::Down,
            Status::Unknown => State::Unknown,
            // Never a probe status (`RiseFall` does not produce it).
            Status::Draining => State::Draining,
        }
    }

    /// Share of full weight at `now`, in permille (1..=1000): below 1000 while
    /// the latest ramp runs, 1000 when there is none or slow start is off.
    /// While ejected it reads the ramp's starting share, as the ramp begins
    /// at the ejection's end.
    pub fn ramp_permille(&self, now: Duration) -> u32 {
        match self.ramp_since {
            Some(since) => SlowStart::new(self.params.slow_start, since)
                .weight(FULL, now)
                .get(),
            None => FULL.get(),
        }
    }

    /// Times this backend was ejected in total (for metrics).
    pub fn ejections_total(&self) -> u64 {
        self.ejections
    }

    fn probe_status(&self) -> Status {
        self.checks.as_ref().map_or(Status::Up, RiseFall::status)
    }

    fn is_ejected(&self, now: Duration) -> bool {
        self.ejected_until.is_some_and(|until| now < until)
    }

    /// The probe status just turned Up from `from`.
    fn came_up(&mut self, from: Status, now: Duration) {
        let ramp = match from {
            Status::Down => true,
            Status::Unknown => self.ramp_on_first_up,
            Status::Up | Status::Draining => false,
        };
        self.ramp_on_first_up = false;
        if ramp {
            self.start_ramp(now);
        }
    }

    /// Starts a ramp at `at` unless one starts later (an ejection's end).
    fn start_ramp(&mut self, at: Duration) {
        self.ramp_since = Some(self.ramp_since.map_or(at, |since| since.max(at)));
    }
}

/// Which backends of one pool take new traffic, given each backend's state at
/// one instant. Returns whether the pool is in panic; `out[i]` says whether
/// backend `i` takes traffic (`out` is cleared and refilled).
///
/// Up backends always do. When the Up share of backends with a known health
/// (Up, Down, Ejected) is under `panic_threshold` percent ([`panic_mode`]; 0
/// disables), Down and Ejected ones do too, as in Envoy: with most of a pool
/// failing, the likelier fault is the checks, and the survivors alone would be
/// overrun. Unknown (never checked) and Draining (an operator said no) never
/// take traffic and do not count: a pool whose first probes are still out is
/// not in panic.
pub fn pool_verdict(states: &[State], panic_threshold: u32, out: &mut Vec<bool>) -> bool {
    let counted = states
        .iter()
        .filter(|&&s| !matches!(s, State::Draining | State::Unknown))
        .count();
    let up = states.iter().filter(|&&s| s == State::Up).count();
    let panic = panic_mode(up, counted, panic_threshold);
    out.clear();
    out.extend(states.iter().map(|s| match s {
        State::Up => true,
        State::Down | State::Ejected => panic,
        State::Unknown | State::Draining => false,
    }));
    panic
}

/// [`pool_verdict`] for a pool with backups (`backup[i]`, from SRV records of a
/// higher priority): the backups serve only while no other backend is Up, and
/// then alone. With nothing Up in either tier, the others take the pool's
/// verdict (and its panic mode).
pub fn tiered_verdict(
    states: &[State],
    backup: &[bool],
    panic_threshold: u32,
    out: &mut Vec<bool>,
) -> bool {
    let is_backup = |i: usize| backup.get(i).copied().unwrap_or(false);
    if !(0..states.len()).any(is_backup) {
        return pool_verdict(states, panic_threshold, out);
    }
    let up_in = |tier: bool| {
        states
            .iter()
            .enumerate()
            .any(|(i, s)| is_backup(i) == tier && *s == State::Up)
    };
    let serving = !up_in(false) && up_in(true);
    // The other tier reads as never checked: it neither takes traffic nor counts.
    let tier: Vec<State> = states
        .iter()
        .enumerate()
        .map(|(i, s)| {
            if is_backup(i) == serving {
                *s
            } else {
                State::Unknown
            }
        })
        .collect();
    pool_verdict(&tier, panic_threshold, out)
}

#[cfg(test)]
mod tests;
