//! Retry decisions: a budget that caps retries to a share of recent requests,
//! capped exponential backoff with full jitter, and which methods may be retried.
//!
//! Retries turn a sick pool into a sicker one: at 100% failures, three attempts
//! per request triple the load on backends already failing. A budget (Finagle's
//! and linkerd's `RetryBudget`) bounds that amplification to `1 + ratio` while
//! still letting a quiet service retry its occasional failure (`min_per_sec`).
//! Time and randomness come in as arguments, as everywhere in this crate.

use std::time::Duration;

use crate::config::RetryOn;
use crate::health::window::Window;
use crate::health::{nanos, uniform_upto};

/// Shape of a [`RetryBudget`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryBudgetParams {
    /// Retries allowed as a share of requests in the window, in percent (`budget = "20%"`).
    pub ratio_percent: u32,
    /// Retries per second allowed regardless of traffic, so low-volume services can retry.
    pub min_per_sec: u32,
    /// Span over which requests and retries are counted (whole seconds, 1 s to 1 h).
    pub window: Duration,
}

impl Default for RetryBudgetParams {
    /// 20% of requests, plus 10 per second, over 10 s (linkerd's defaults).
    fn default() -> Self {
        Self {
            ratio_percent: 20,
            min_per_sec: 10,
            window: Duration::from_secs(10),
        }
    }
}

const REQUESTS: usize = 0;
const RETRIES: usize = 1;

/// Counts requests and retries over a sliding window of per-second buckets.
///
/// Memory is fixed at construction (one bucket per second of window). A retry
/// is allowed only while, counting it, `retries ≤ ratio × requests + min_per_sec
/// × window` over the window, so the bound holds at every instant, not on average.
#[derive(Clone, Debug)]
pub struct RetryBudget {
    params: RetryBudgetParams,
    window: Window<2>,
}

impl RetryBudget {
    /// An empty budget: only the `min_per_sec` floor is available at first.
    pub fn new(params: RetryBudgetParams) -> Self {
        Self {
            params,
            window: Window::new(params.window),
        }
    }

    /// Deposits one original request (not a retry) at `now`.
    pub fn record_request(&mut self, now: Duration) {
        self.window.add(now, REQUESTS);
    }

    /// Withdraws one retry at `now` if the budget allows it; `false` means do
    /// not retry (answer with the failure).
    pub fn try_retry(&mut self, now: Duration) -> bool {
        let [requests, retries] = self.window.sums(now);
        let allowed = u128::from(retries + 1) * 100 <= self.capacity_percent(requests);
        if allowed {
            self.window.add(now, RETRIES);
        }
        allowed
    }

    /// `(requests, retries)` counted in the window at `now`.
    pub fn counts(&self, now: Duration) -> (u64, u64) {
        let [requests, retries] = self.window.sums(now);
        (requests, retries)
    }

    /// The window length actually used, in whole seconds.
    pub fn window_secs(&self) -> u64 {
        self.window.seconds()
    }

    /// `100 × (ratio × requests + min_per_sec × window)`, kept integral so the
    /// bound is exact.
    fn capacity_percent(&self, requests: u64) -> u128 {
        let p = &self.params;
        u128::from(p.ratio_percent) * u128::from(requests)
            + 100 * u128::from(p.min_per_sec) * u128::from(self.window.seconds())
    }
}

/// Base and cap of the exponential backoff between attempts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackoffParams {
    /// Cap of the delay before the first retry; doubles per attempt.
    pub base: Duration,
    /// Upper bound on the cap, however many attempts.
    pub max: Duration,
}

impl Default for BackoffParams {
    /// 25 ms doubling up to 1 s.
    fn default() -> Self {
        Self {
            base: Duration::from_millis(25),
            max: Duration::from_secs(1),
        }
    }
}

/// Delay before retry number `attempt` (0 for the first retry): uniform in
/// `[0, min(max, base × 2^attempt)]` ("full jitter").
///
/// Full jitter rather than a fixed or half-jittered delay: clients that failed
/// together then retry spread over the whole interval instead of in a wave,
/// which is what spares a recovering backend (AWS's "Exponential Backoff and
/// Jitter" measurements).
pub fn backoff(attempt: u32, params: BackoffParams, entropy: u64) -> Duration {
    let cap = nanos(params.max);
    let grown = nanos(params.base).saturating_mul(1u64.checked_shl(attempt).unwrap_or(u64::MAX));
    Duration::from_nanos(uniform_upto(grown.min(cap), entropy))
}

/// Whether a request with this method may be retried after its body was sent:
/// the idempotent methods of RFC 9110 §9.2.2 (GET, HEAD, OPTIONS, PUT, DELETE,
/// TRACE). POST and PATCH may have taken effect, so a retry could do it twice.
/// Methods are case-sensitive (RFC 9110 §9.1): `get` is not `GET`.
pub fn is_retryable_method(method: &str) -> bool {
    matches!(
        method,
        "GET" | "HEAD" | "OPTIONS" | "PUT" | "DELETE" | "TRACE"
    )
}

/// A pool's compiled `retries`: which failures may be tried again, how often, and
/// how fast. The budget is asked only after the policy allows a retry.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Retries after the first try.
    pub attempts: u32,
    /// What may be retried.
    pub on: Vec<RetryOn>,
    /// Time for a response head on one try.
    pub per_try_timeout: Option<Duration>,
    /// Backoff between tries.
    pub backoff: BackoffParams,
}

impl RetryPolicy {
    /// Whether `on` lists this kind of failure.
    pub fn on(&self, what: RetryOn) -> bool {
        self.on.contains(&what)
    }

    /// Whether `on` lists this response status.
    pub fn on_status(&self, status: u16) -> bool {
        self.on.iter().any(|o| o.matches_status(status))
    }

    /// Whether a request whose `tried` tries so far ended, the last one failing for
    /// `why`, may go again (before the budget is asked). A failure after the request
    /// was sent (anything but a failed connect) is retried only when the request can
    /// be replayed (an idempotent method without a body).
    pub fn allows(&self, tried: usize, why: RetryOn, replayable: bool) -> bool {
        let sent = why != RetryOn::ConnectFailure;
        tried <= self.attempts as usize && self.on(why) && (!sent || replayable)
    }

    /// Whether a response with `status` on try number `tried` is to be dropped and
    /// the request sent again (before the budget is asked; `has_another`: some
    /// available backend exists to retry on).
    pub fn allows_status(
        &self,
        tried: usize,
        status: u16,
        replayable: bool,
        has_another: bool,
    ) -> bool {
        tried <= self.attempts as usize && self.on_status(status) && replayable && has_another
    }

    /// The wait for a response head on one try: `per_try_timeout`, capped by the
    /// pool's `upstream_timeout`.
    pub fn head_timeout(&self, upstream: Duration) -> Duration {
        self.per_try_timeout.map_or(upstream, |t| t.min(upstream))
    }
}

/// Without a `retries` policy only a failed connect (nothing was sent) moves on, up to
/// `connect_attempts` tries in all.
pub fn connect_retry(tried: usize, why: Option<RetryOn>, connect_attempts: u32) -> bool {
    why == Some(RetryOn::ConnectFailure) && tried < connect_attempts as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(on: Vec<RetryOn>) -> RetryPolicy {
        RetryPolicy {
            attempts: 2,
            on,
            per_try_timeout: Some(Duration::from_millis(200)),
            backoff: BackoffParams::default(),
        }
    }

    #[test]
    fn policy_allows_listed_failures_within_attempts() {
        let p = policy(vec![RetryOn::ConnectFailure, RetryOn::Reset]);
        assert!(p.allows(1, RetryOn::ConnectFailure, false));
        assert!(p.allows(2, RetryOn::Reset, true));
        // Two retries after the first try, no more.
        assert!(!p.allows(3, RetryOn::Reset, true));
        // Not listed.
        assert!(!p.allows(1, RetryOn::Timeout, true));
        // Sent and not replayable: never again.
        assert!(!p.allows(1, RetryOn::Reset, false));
    }

    #[test]
    fn policy_status_retries_need_a_replayable_request_and_another_backend() {
        let p = policy(vec![RetryOn::Status(503)]);
        assert!(p.allows_status(1, 503, true, true));
        assert!(!p.allows_status(1, 502, true, true));
        assert!(!p.allows_status(1, 503, false, true));
        assert!(!p.allows_status(1, 503, true, false));
        assert!(!p.allows_status(3, 503, true, true));
    }

    #[test]
    fn per_try_timeout_is_capped_by_upstream_timeout() {
        let mut p = policy(vec![]);
        assert_eq!(
            p.head_timeout(Duration::from_secs(1)),
            Duration::from_millis(200)
        );
        assert_eq!(
            p.head_timeout(Duration::from_millis(50)),
            Duration::from_millis(50)
        );
        p.per_try_timeout = None;
        assert_eq!(
            p.head_timeout(Duration::from_secs(1)),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn without_a_policy_only_connect_failures_move_on() {
        assert!(connect_retry(1, Some(RetryOn::ConnectFailure), 3));
        assert!(connect_retry(2, Some(RetryOn::ConnectFailure), 3));
        assert!(!connect_retry(3, Some(RetryOn::ConnectFailure), 3));
        assert!(!connect_retry(1, Some(RetryOn::Reset), 3));
        assert!(!connect_retry(1, None, 3));
    }

    #[test]
    fn floor_allows_min_per_sec_times_window_with_no_traffic() {
        let mut b = RetryBudget::new(RetryBudgetParams {
            ratio_percent: 20,
            min_per_sec: 2,
            window: Duration::from_secs(5),
        });
        let now = Duration::from_secs(100);
        let allowed = (0..100).filter(|_| b.try_retry(now)).count();
        assert_eq!(allowed, 10);
        // 50 requests add 20% of 50 = 10 more.
        for _ in 0..50 {
            b.record_request(now);
        }
        assert_eq!((0..100).filter(|_| b.try_retry(now)).count(), 10);
        // Five seconds later the window has forgotten all of it.
        let later = now + Duration::from_secs(5);
        assert_eq!(b.counts(later), (0, 0));
        assert!(b.try_retry(later));
    }

    #[test]
    fn backoff_caps_and_grows() {
        let p = BackoffParams {
            base: Duration::from_millis(10),
            max: Duration::from_millis(100),
        };
        assert_eq!(backoff(0, p, u64::MAX), Duration::from_millis(10));
        assert_eq!(backoff(2, p, u64::MAX), Duration::from_millis(40));
        assert_eq!(backoff(4, p, u64::MAX), Duration::from_millis(100));
        assert_eq!(backoff(200, p, u64::MAX), Duration::from_millis(100));
        assert_eq!(backoff(3, p, 0), Duration::ZERO);
    }

    #[test]
    fn idempotent_methods_only() {
        for m in ["GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"] {
            assert!(is_retryable_method(m), "{m}");
        }
        for m in ["POST", "PATCH", "CONNECT", "get", ""] {
            assert!(!is_retryable_method(m), "{m}");
        }
    }
}
