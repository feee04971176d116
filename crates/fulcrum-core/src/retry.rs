//! Retry decisions: a budget that caps retries to a share of recent requests,
//! capped exponential backoff with full jitter, and which methods may be retried.
//!
//! Retries turn a sick pool into a sicker one: at 100% failures, three attempts
//! per request triple the load on backends already failing. A budget (Finagle's
//! and linkerd's `RetryBudget`) bounds that amplification to `1 + ratio` while
//! still letting a quiet service retry its occasional failure (`min_per_sec`).
//! Time and randomness come in as arguments, as everywhere in this crate.

use std::time::Duration;

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

#[cfg(test)]
mod tests {
    use super::*;

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
