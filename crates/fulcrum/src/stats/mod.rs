//! Per-backend counters for metrics and the admin API.
//!
//! Workers record each finished request into its backend's [`Stats`] with a handful
//! of relaxed atomic adds: no lock, no allocation, no map lookup. Everything a scrape
//! or the API shows (Prometheus histograms, last-minute percentiles and error rates)
//! is computed from these atomics when it is read.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

pub mod quic;
mod traffic;
pub mod udp;

pub use traffic::{
    set_shard, shard, Admission, HandshakeStats, Open, Traffic, FAILURE_REASONS, SHARDS,
};

/// Upper bounds of the request duration buckets, in seconds (100µs to 60s); a last,
/// implicit bucket takes everything slower.
pub const BUCKETS: [f64; 18] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0,
];

/// [`BUCKETS`] in microseconds, for the comparison on the data path.
const BUCKETS_US: [u64; 18] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000, 30_000_000, 60_000_000,
];

/// Buckets including the last one (`+Inf`).
pub const SLOTS: usize = BUCKETS.len() + 1;

/// Status classes counted: `1xx` to `5xx`.
pub const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Why an attempt at a backend failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The connection could not be made.
    Connect,
    /// The backend closed or broke the exchange (or answered something malformed).
    Reset,
    /// The backend did not answer in time.
    Timeout,
    /// The backend answered with a 5xx status.
    Status5xx,
}

impl ErrorKind {
    /// Every kind, in label order.
    pub const ALL: [ErrorKind; 4] = [
        ErrorKind::Connect,
        ErrorKind::Reset,
        ErrorKind::Timeout,
        ErrorKind::Status5xx,
    ];

    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Connect => "connect",
            ErrorKind::Reset => "reset",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Status5xx => "5xx",
        }
    }
}

/// Width of one window of the last-minute ring.
const WINDOW_SECS: u64 = 10;
/// Windows in the ring: six of ten seconds make the last minute.
const WINDOWS: usize = 6;

/// One backend's counters: 800 bytes, kept for as long as the backend is in a
/// pool (reloads keep it, with the rest of the backend's state).
#[derive(Debug, Default)]
pub struct Stats {
    requests: [AtomicU64; 5],
    errors: [AtomicU64; 4],
    /// Request durations, per bucket (not cumulative).
    duration: [AtomicU64; SLOTS],
    duration_sum_us: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    checks_passed: AtomicU64,
    checks_failed: AtomicU64,
    /// Upgraded (WebSocket) and layer-4 connections open now.
    pub(crate) streams_open: AtomicU64,
    recent: [Window; WINDOWS],
}

/// Counts one open stream on a backend until dropped.
#[derive(Debug)]
pub struct OpenStream<'a>(&'a Stats);

impl Drop for OpenStream<'_> {
    fn drop(&mut self) {
        self.0.streams_open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Ten seconds of one backend's requests: durations and errors.
#[derive(Debug, Default)]
struct Window {
    /// Which ten-second slot (seconds since the process epoch / 10) this holds.
    slot: AtomicU64,
    buckets: [AtomicU32; SLOTS],
    errors: AtomicU32,
}

/// What a backend did over the last minute.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Recent {
    /// Requests finished.
    pub requests: u64,
    /// Of which failed (5xx or no response).
    pub errors: u64,
    /// Median duration, seconds (`None` without requests).
    pub p50: Option<f64>,
    /// 95th percentile duration, seconds.
    pub p95: Option<f64>,
}

impl Recent {
    /// Failed share of the requests, 0 to 1 (0 without requests).
    pub fn error_rate(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.errors as f64 / self.requests as f64
        }
    }
}

/// A backend's request durations, as a Prometheus histogram wants them.
#[derive(Clone, Debug, PartialEq)]
pub struct Histogram {
    /// Sum of durations, seconds.
    pub sum: f64,
    /// Requests counted.
    pub count: u64,
    /// Per-bucket counts (not cumulative), `+Inf` last.
    pub buckets: [u64; SLOTS],
}

impl Stats {
    /// Records one finished request: its status (0: none was sent), duration and
    /// body bytes, at `now` (process clock).
    pub fn finished(&self, status: u16, duration: Duration, bytes: (u64, u64), now: Duration) {
        let failed = status == 0 || status >= 500;
        if let Some(c) = self.requests.get(usize::from(status / 100).wrapping_sub(1)) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        let us = u64::try_from(duration.as_micros()).unwrap_or(u64::MAX);
        let slot = bucket(us);
        if let Some(b) = self.duration.get(slot) {
            b.fetch_add(1, Ordering::Relaxed);
        }
        self.duration_sum_us.fetch_add(us, Ordering::Relaxed);
        if bytes.0 > 0 {
            self.bytes_in.fetch_add(bytes.0, Ordering::Relaxed);
        }
        if bytes.1 > 0 {
            self.bytes_out.fetch_add(bytes.1, Ordering::Relaxed);
        }
        let w = self.window(now.as_secs() / WINDOW_SECS);
        if let Some(b) = w.buckets.get(slot) {
            b.fetch_add(1, Ordering::Relaxed);
        }
        if failed {
            w.errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The window for ten-second `slot`, cleared first if it still holds an older one.
    /// Two workers may race to clear it; the loser's one request may be lost, which
    /// the last-minute figures tolerate.
    fn window(&self, slot: u64) -> &Window {
        let i = usize::try_from(slot % WINDOWS as u64).unwrap_or(0);
        let w = &self.recent[i];
        let held = w.slot.load(Ordering::Relaxed);
        if held != slot
            && w.slot
                .compare_exchange(held, slot, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            for b in &w.buckets {
                b.store(0, Ordering::Relaxed);
            }
            w.errors.store(0, Ordering::Relaxed);
        }
        w
    }

    /// Counts one failed attempt.
    pub fn error(&self, kind: ErrorKind) {
        let i = ErrorKind::ALL.iter().position(|k| *k == kind).unwrap_or(0);
        if let Some(c) = self.errors.get(i) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts a stream (an upgraded or layer-4 connection) open until the guard drops.
    pub fn stream_opened(&self) -> OpenStream<'_> {
        self.streams_open.fetch_add(1, Ordering::Relaxed);
        OpenStream(self)
    }

    /// Streams open now.
    pub fn streams_open(&self) -> u64 {
        self.streams_open.load(Ordering::Relaxed)
    }

    /// Counts one active health check.
    pub fn check(&self, passed: bool) {
        if passed {
            self.checks_passed.fetch_add(1, Ordering::Relaxed);
        } else {
            self.checks_failed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Requests by status class (`CLASSES` order).
    pub fn requests(&self) -> [u64; 5] {
        self.requests.each_ref().map(|c| c.load(Ordering::Relaxed))
    }

    /// Failed attempts by kind (`ErrorKind::ALL` order).
    pub fn errors(&self) -> [u64; 4] {
        self.errors.each_ref().map(|c| c.load(Ordering::Relaxed))
    }

    /// Request and response body bytes.
    pub fn bytes(&self) -> (u64, u64) {
        (
            self.bytes_in.load(Ordering::Relaxed),
            self.bytes_out.load(Ordering::Relaxed),
        )
    }

    /// Health checks passed and failed.
    pub fn checks(&self) -> (u64, u64) {
        (
            self.checks_passed.load(Ordering::Relaxed),
            self.checks_failed.load(Ordering::Relaxed),
        )
    }

    /// The duration histogram since the backend joined.
    pub fn histogram(&self) -> Histogram {
        let buckets = self.duration.each_ref().map(|c| c.load(Ordering::Relaxed));
        Histogram {
            sum: self.duration_sum_us.load(Ordering::Relaxed) as f64 / 1e6,
            count: buckets.iter().sum(),
            buckets,
        }
    }

    /// The last minute at `now` (process clock): the current window and the five
    /// before it.
    pub fn recent(&self, now: Duration) -> Recent {
        let current = now.as_secs() / WINDOW_SECS;
        let mut buckets = [0u64; SLOTS];
        let mut errors = 0;
        for w in &self.recent {
            let slot = w.slot.load(Ordering::Relaxed);
            if slot > current || current - slot >= WINDOWS as u64 {
                continue;
            }
            for (sum, b) in buckets.iter_mut().zip(&w.buckets) {
                *sum += u64::from(b.load(Ordering::Relaxed));
            }
            errors += u64::from(w.errors.load(Ordering::Relaxed));
        }
        Recent {
            requests: buckets.iter().sum(),
            errors,
            p50: quantile(&buckets, 0.5),
            p95: quantile(&buckets, 0.95),
        }
    }
}

/// The bucket of a duration in microseconds.
fn bucket(us: u64) -> usize {
    BUCKETS_US.partition_point(|&le| le < us)
}

/// The `q` quantile (seconds) of per-bucket counts, interpolated linearly inside its
/// bucket as Prometheus' `histogram_quantile` does; the last bucket answers its
/// lower bound.
pub fn quantile(buckets: &[u64; SLOTS], q: f64) -> Option<f64> {
    let total: u64 = buckets.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = q * total as f64;
    let mut below = 0u64;
    for (i, &n) in buckets.iter().enumerate() {
        if n > 0 && (below + n) as f64 >= rank {
            let lower = if i == 0 { 0.0 } else { BUCKETS[i - 1] };
            let Some(&upper) = BUCKETS.get(i) else {
                return Some(lower);
            };
            let into = ((rank - below as f64) / n as f64).clamp(0.0, 1.0);
            return Some(lower + (upper - lower) * into);
        }
        below += n;
    }
    BUCKETS.last().copied()
}

/// A plain duration histogram (a pool's upstream connect times): no windows.
#[derive(Debug, Default)]
pub struct Timings {
    buckets: [AtomicU64; SLOTS],
    sum_us: AtomicU64,
}

impl Timings {
    /// Counts one duration.
    pub fn observe(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        if let Some(b) = self.buckets.get(bucket(us)) {
            b.fetch_add(1, Ordering::Relaxed);
        }
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// The histogram as Prometheus wants it.
    pub fn histogram(&self) -> Histogram {
        let buckets = self.buckets.each_ref().map(|b| b.load(Ordering::Relaxed));
        Histogram {
            sum: self.sum_us.load(Ordering::Relaxed) as f64 / 1e6,
            count: buckets.iter().sum(),
            buckets,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn buckets_take_their_upper_bound() {
        assert_eq!(bucket(0), 0);
        assert_eq!(bucket(100), 0);
        assert_eq!(bucket(101), 1);
        assert_eq!(bucket(60_000_000), 17);
        assert_eq!(bucket(60_000_001), 18);
        assert_eq!(bucket(u64::MAX), 18);
    }

    #[test]
    fn counts_classes_histogram_and_bytes() {
        let s = Stats::default();
        let now = Duration::from_secs(100);
        s.finished(200, 3 * MS, (10, 20), now);
        s.finished(503, 40 * MS, (0, 5), now);
        s.finished(0, 70 * Duration::from_secs(1), (0, 0), now);
        assert_eq!(s.requests(), [0, 1, 0, 0, 1]);
        assert_eq!(s.bytes(), (10, 25));
        let h = s.histogram();
        assert_eq!(h.count, 3);
        assert_eq!(h.buckets[5], 1); // ≤ 5ms
        assert_eq!(h.buckets[8], 1); // ≤ 50ms
        assert_eq!(h.buckets[18], 1); // +Inf
        assert!((h.sum - 70.043).abs() < 1e-9);
        s.error(ErrorKind::Timeout);
        s.error(ErrorKind::Status5xx);
        assert_eq!(s.errors(), [0, 0, 1, 1]);
    }

    #[test]
    fn last_minute_rotates_by_ten_second_windows() {
        let s = Stats::default();
        for i in 0..100u64 {
            let status = if i % 10 == 0 { 502 } else { 200 };
            s.finished(
                status,
                Duration::from_micros((i + 1) * 100),
                (0, 0),
                Duration::from_secs(5),
            );
        }
        let r = s.recent(Duration::from_secs(5));
        assert_eq!((r.requests, r.errors), (100, 10));
        assert!((r.error_rate() - 0.1).abs() < 1e-9);
        // 100 requests from 0.1ms to 10ms: the median sits in the 5ms..10ms bucket's
        // lower part, p95 near 10ms.
        let p50 = r.p50.unwrap();
        let p95 = r.p95.unwrap();
        assert!((0.0025..=0.005).contains(&p50), "{p50}");
        assert!((0.005..=0.01).contains(&p95), "{p95}");
        // Still counted 59 seconds on (window 0 of 0..5); gone a minute later.
        assert_eq!(s.recent(Duration::from_secs(59)).requests, 100);
        assert_eq!(s.recent(Duration::from_secs(60)).requests, 0);
        // A request a minute later reuses window 0: the old counts are cleared.
        s.finished(200, MS, (0, 0), Duration::from_secs(61));
        let r = s.recent(Duration::from_secs(61));
        assert_eq!((r.requests, r.errors), (1, 0));
    }

    #[test]
    fn quantile_edges() {
        let mut b = [0u64; SLOTS];
        assert_eq!(quantile(&b, 0.5), None);
        b[SLOTS - 1] = 3;
        assert_eq!(quantile(&b, 0.95), Some(60.0));
        let mut b = [0u64; SLOTS];
        b[0] = 2;
        assert_eq!(quantile(&b, 0.5), Some(0.00005));
    }

    #[test]
    fn stays_small() {
        // Reported in the README (memory at 10,000 backends).
        assert_eq!(std::mem::size_of::<Stats>(), 800);
    }
}
