//! Passive outlier detection: eject a backend whose real traffic goes bad.
//!
//! Active probes see one path every few seconds; real requests see every path
//! at once, so a backend that answers `/healthz` but fails everything else is
//! caught here. Four detectors, each optional: consecutive 5xx, consecutive
//! gateway failures, failure percentage over a window, and p95 latency over a
//! window. Ejections grow with repetition (`base × count`, capped) and a
//! pool-level guard ([`may_eject`]) keeps a bad detector from emptying a pool.

use std::time::Duration;

use super::window::Window;

/// Share of available backends under which a pool routes to all backends (50%).
pub const DEFAULT_PANIC_THRESHOLD: u32 = 50;

/// Thresholds of an [`Outlier`] detector. A zero count or percentage disables
/// that detector. Defaults follow Envoy's outlier detection.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OutlierParams {
    /// Consecutive 5xx responses (gateway failures included) that eject.
    pub consecutive_5xx: u32,
    /// Consecutive gateway failures (connect error, reset, timeout, 502/503/504) that eject.
    pub consecutive_gateway_failures: u32,
    /// Failure share over `window`, in percent, that ejects; above 100 disables.
    pub failure_percentage: u32,
    /// Span of the failure-percentage and latency detectors (whole seconds).
    pub window: Duration,
    /// Requests in `window` below which the windowed detectors stay silent,
    /// so three requests with one failure do not eject anyone.
    pub min_requests: u32,
    /// p95 latency over `window` above which the backend is ejected; `None` disables.
    pub max_latency: Option<Duration>,
    /// Length of the first ejection; the n-th lasts `n × base_ejection_time`.
    pub base_ejection_time: Duration,
    /// Cap on one ejection's length. Also the clean time that forgives one past ejection.
    pub max_ejection_time: Duration,
    /// Most backends of a pool ejected at once, in percent (see [`may_eject`]).
    pub max_ejection_percent: u32,
    /// Available share, in percent, under which the pool panics (see [`panic_mode`]).
    pub panic_threshold: u32,
}

impl Default for OutlierParams {
    fn default() -> Self {
        Self {
            consecutive_5xx: 5,
            consecutive_gateway_failures: 5,
            failure_percentage: 85,
            window: Duration::from_secs(10),
            min_requests: 50,
            max_latency: None,
            base_ejection_time: Duration::from_secs(30),
            max_ejection_time: Duration::from_secs(300),
            max_ejection_percent: 10,
            panic_threshold: DEFAULT_PANIC_THRESHOLD,
        }
    }
}

/// What one request to a backend came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The response status, or `None` when there was no response (gateway failure).
    pub status: Option<u16>,
    /// Time to the response head; `None` when there was none to time.
    pub latency: Option<Duration>,
}

impl Outcome {
    /// A response with `status` after `latency`.
    pub fn response(status: u16, latency: Duration) -> Self {
        Self {
            status: Some(status),
            latency: Some(latency),
        }
    }

    /// No usable response: connect error, reset or timeout.
    pub fn gateway_failure() -> Self {
        Self {
            status: None,
            latency: None,
        }
    }

    /// 5xx or no response at all: counts against the backend.
    pub fn is_failure(&self) -> bool {
        self.status.is_none_or(|s| s >= 500)
    }

    /// No response, or 502/503/504: the backend (or the path to it) is unreachable
    /// rather than wrong, as Envoy classifies gateway failures.
    pub fn is_gateway_failure(&self) -> bool {
        self.status.is_none_or(|s| matches!(s, 502..=504))
    }
}

/// Which detector ejected a backend (a metrics label).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// `consecutive_5xx` reached.
    Consecutive5xx,
    /// `consecutive_gateway_failures` reached.
    ConsecutiveGatewayFailure,
    /// `failure_percentage` reached over the window.
    FailurePercentage,
    /// p95 latency over the window above `max_latency`.
    Latency,
}

/// An ejection that just started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ejection {
    /// When the backend returns (through slow start).
    pub until: Duration,
    /// How many ejections this one counts as, after forgiveness (1 for the first).
    pub count: u32,
    /// The detector that fired.
    pub reason: Reason,
}

/// Counters indices in the window.
const REQUESTS: usize = 0;
const FAILURES: usize = 1;
const TIMED: usize = 2;
const SLOW: usize = 3;

/// Passive outlier state of one backend.
#[derive(Clone, Debug)]
pub struct Outlier {
    params: OutlierParams,
    consecutive_5xx: u32,
    consecutive_gateway: u32,
    window: Window<4>,
    /// Ejections counted toward the next ejection's length.
    ejections: u32,
    ejected_until: Option<Duration>,
    /// Start of the current clean stretch, for forgiving past ejections.
    clean_since: Duration,
}

impl Outlier {
    /// A detector for a backend that has never failed; `now` starts its clean stretch.
    pub fn new(params: OutlierParams, now: Duration) -> Self {
        Self {
            params,
            consecutive_5xx: 0,
            consecutive_gateway: 0,
            window: Window::new(params.window),
            ejections: 0,
            ejected_until: None,
            clean_since: now,
        }
    }

    /// Whether the backend is ejected at `now`.
    pub fn is_ejected(&self, now: Duration) -> bool {
        self.ejected_until.is_some_and(|until| now < until)
    }

    /// Records one outcome; ejects the backend when a detector fires.
    ///
    /// Ignores the pool: use [`OutlierPool`] or [`Outlier::record_guarded`] to
    /// respect `max_ejection_percent`.
    pub fn record(&mut self, outcome: Outcome, now: Duration) -> Option<Ejection> {
        self.record_guarded(outcome, now, true)
    }

    /// Records one outcome; when a detector fires, ejects only if `allowed`
    /// (the pool guard). A refused ejection still resets the detectors, as in
    /// Envoy, so the backend is judged again on fresh evidence instead of
    /// re-firing on every request.
    ///
    /// Outcomes that arrive while the backend is ejected (requests sent before
    /// it was) are ignored: they are old news, and must not extend the ejection.
    pub fn record_guarded(
        &mut self,
        outcome: Outcome,
        now: Duration,
        allowed: bool,
    ) -> Option<Ejection> {
        self.record_with(outcome, now, || allowed)
    }

    /// As [`Outlier::record_guarded`], but asks the pool guard only when a
    /// detector fires: counting a pool's ejected backends on every request
    /// would cost more than the detection itself.
    pub fn record_with(
        &mut self,
        outcome: Outcome,
        now: Duration,
        allowed: impl FnOnce() -> bool,
    ) -> Option<Ejection> {
        if self.is_ejected(now) {
            return None;
        }
        self.forgive(now);
        let p = &self.params;
        if outcome.is_failure() {
            self.consecutive_5xx = self.consecutive_5xx.saturating_add(1);
            self.window.add(now, FAILURES);
        } else {
            self.consecutive_5xx = 0;
        }
        if outcome.is_gateway_failure() {
            self.consecutive_gateway = self.consecutive_gateway.saturating_add(1);
        } else {
            self.consecutive_gateway = 0;
        }
        self.window.add(now, REQUESTS);
        if let (Some(latency), Some(max)) = (outcome.latency, p.max_latency) {
            self.window.add(now, TIMED);
            if latency > max {
                self.window.add(now, SLOW);
            }
        }

        let reason = self.tripped(now)?;
        self.reset();
        if !allowed() {
            return None;
        }
        self.ejections = self.ejections.saturating_add(1);
        let length = self
            .params
            .base_ejection_time
            .saturating_mul(self.ejections)
            .min(self.params.max_ejection_time);
        let until = now.saturating_add(length);
        self.ejected_until = Some(until);
        self.clean_since = until;
        Some(Ejection {
            until,
            count: self.ejections,
            reason,
        })
    }

    /// New thresholds (a reload). Keeps a running ejection and the count that
    /// sets the next one's length, so a reload does not forgive a flapping
    /// backend; restarts the detectors, since the window span may have changed.
    pub fn set_params(&mut self, params: OutlierParams) {
        self.params = params;
        self.window = Window::new(params.window);
        self.reset();
    }

    /// The first detector that fires at `now`, if any.
    fn tripped(&self, now: Duration) -> Option<Reason> {
        let p = &self.params;
        if p.consecutive_gateway_failures > 0
            && self.consecutive_gateway >= p.consecutive_gateway_failures
        {
            return Some(Reason::ConsecutiveGatewayFailure);
        }
        if p.consecutive_5xx > 0 && self.consecutive_5xx >= p.consecutive_5xx {
            return Some(Reason::Consecutive5xx);
        }
        let [requests, failures, timed, slow] = self.window.sums(now);
        let min = u64::from(p.min_requests.max(1));
        let pct = u64::from(p.failure_percentage);
        if (1..=100).contains(&pct) && requests >= min && failures * 100 >= pct * requests {
            return Some(Reason::FailurePercentage);
        }
        // p95 > max exactly when more than 5% of the timed samples exceed max,
        // so counting slow samples replaces keeping a histogram.
        if timed >= min && slow * 100 > 5 * timed {
            return Some(Reason::Latency);
        }
        None
    }

    fn reset(&mut self) {
        self.consecutive_5xx = 0;
        self.consecutive_gateway = 0;
        self.window.clear();
    }

    /// Forgives one past ejection per `max_ejection_time` spent un-ejected, so a
    /// backend that failed once last week does not start at the cap today.
    fn forgive(&mut self, now: Duration) {
        let period = self.params.max_ejection_time.as_nanos().max(1);
        let clean = now.saturating_sub(self.clean_since).as_nanos();
        let periods = u32::try_from(clean / period)
            .unwrap_or(u32::MAX)
            .min(self.ejections);
        if periods > 0 {
            self.ejections -= periods;
            self.clean_since = self
                .clean_since
                .saturating_add(self.params.max_ejection_time.saturating_mul(periods));
        }
    }
}

/// Whether one more backend may be ejected from a pool of `pool_size` with
/// `ejected_now` already out.
///
/// Allowed while the ejected share *after* this ejection stays within
/// `max_ejection_percent`, so the cap is never exceeded; and, as in Envoy, the
/// first ejection is always allowed, or a pool of three under a 10% cap could
/// never eject anything. `max_ejection_percent = 0` disables ejection.
pub fn may_eject(ejected_now: usize, pool_size: usize, max_ejection_percent: u32) -> bool {
    if max_ejection_percent == 0 || ejected_now >= pool_size {
        return false;
    }
    ejected_now == 0
        || (ejected_now as u128 + 1) * 100 <= u128::from(max_ejection_percent) * pool_size as u128
}

/// Whether a pool with `available` of `total` backends routable should ignore
/// health and route to every backend (Envoy's panic mode).
///
/// When most of a pool looks bad the likelier fault is the checks (or a shared
/// dependency), and piling all load on the few survivors would take them down
/// too. True when `available / total < panic_threshold%`; a zero threshold disables.
pub fn panic_mode(available: usize, total: usize, panic_threshold: u32) -> bool {
    total > 0 && (available as u128) * 100 < u128::from(panic_threshold) * total as u128
}

/// The outlier detectors of one pool, enforcing `max_ejection_percent` across them.
#[derive(Clone, Debug)]
pub struct OutlierPool {
    backends: Vec<Outlier>,
    max_ejection_percent: u32,
}

impl OutlierPool {
    /// Detectors for `size` backends sharing `params`.
    pub fn new(params: OutlierParams, size: usize, now: Duration) -> Self {
        Self {
            backends: vec![Outlier::new(params, now); size],
            max_ejection_percent: params.max_ejection_percent,
        }
    }

    /// Number of backends.
    pub fn len(&self) -> usize {
        self.backends.len()
    }

    /// Whether the pool has no backends.
    pub fn is_empty(&self) -> bool {
        self.backends.is_empty()
    }

    /// Backends ejected at `now`.
    pub fn ejected(&self, now: Duration) -> usize {
        self.backends.iter().filter(|b| b.is_ejected(now)).count()
    }

    /// Whether backend `index` is ejected at `now` (false for an unknown index).
    pub fn is_ejected(&self, index: usize, now: Duration) -> bool {
        self.backends.get(index).is_some_and(|b| b.is_ejected(now))
    }

    /// Records an outcome of backend `index`; returns the ejection if one started.
    pub fn record(&mut self, index: usize, outcome: Outcome, now: Duration) -> Option<Ejection> {
        let allowed = may_eject(self.ejected(now), self.len(), self.max_ejection_percent);
        self.backends
            .get_mut(index)?
            .record_guarded(outcome, now, allowed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_are_classified_as_envoy_does() {
        let ms = Duration::from_millis(1);
        let ok = Outcome::response(404, ms);
        assert!(!ok.is_failure() && !ok.is_gateway_failure());
        let err = Outcome::response(500, ms);
        assert!(err.is_failure() && !err.is_gateway_failure());
        for s in [502, 503, 504] {
            let gw = Outcome::response(s, ms);
            assert!(gw.is_failure() && gw.is_gateway_failure());
        }
        let none = Outcome::gateway_failure();
        assert!(none.is_failure() && none.is_gateway_failure());
    }

    #[test]
    fn a_500_breaks_a_gateway_streak_but_not_a_5xx_streak() {
        let p = OutlierParams {
            consecutive_5xx: 3,
            consecutive_gateway_failures: 2,
            ..OutlierParams::default()
        };
        let mut o = Outlier::new(p, Duration::ZERO);
        let t = Duration::from_secs(1);
        assert_eq!(o.record(Outcome::gateway_failure(), t), None);
        assert_eq!(o.record(Outcome::response(500, t), t), None);
        let e = o.record(Outcome::gateway_failure(), t).unwrap();
        assert_eq!(e.reason, Reason::Consecutive5xx);
        assert_eq!(e.until, t + p.base_ejection_time);
    }

    #[test]
    fn a_refused_ejection_resets_the_detectors() {
        let p = OutlierParams {
            consecutive_5xx: 2,
            ..OutlierParams::default()
        };
        let mut o = Outlier::new(p, Duration::ZERO);
        let t = Duration::from_secs(1);
        let fail = Outcome::response(500, t);
        o.record_guarded(fail, t, false);
        assert_eq!(o.record_guarded(fail, t, false), None);
        assert!(!o.is_ejected(t));
        assert_eq!(o.record_guarded(fail, t, true), None);
        assert!(o.record_guarded(fail, t, true).is_some());
    }
}
