//! A sliding window of per-second counters with fixed memory.
//!
//! Outlier detection and the retry budget both ask "how many of X in the last
//! N seconds?" on every request. A ring of one bucket per second answers in
//! O(N) with N small, never allocates after construction, and forgets old
//! seconds by overwriting them, so memory does not grow with traffic.

use std::time::Duration;

/// Longest window kept, in seconds: bounds the ring at one hour of buckets.
const MAX_SECONDS: u64 = 3600;

#[derive(Clone, Copy, Debug)]
struct Bucket<const K: usize> {
    /// The second (since the caller's epoch) these counts belong to.
    second: u64,
    counts: [u32; K],
}

/// `K` counters summed over the last `len` whole seconds (the current one included).
#[derive(Clone, Debug)]
pub(crate) struct Window<const K: usize> {
    buckets: Vec<Bucket<K>>,
}

impl<const K: usize> Window<K> {
    /// A window covering `span` rounded up to whole seconds (1 s to 1 h).
    pub(crate) fn new(span: Duration) -> Self {
        let secs = span
            .as_secs()
            .saturating_add(u64::from(span.subsec_nanos() > 0))
            .clamp(1, MAX_SECONDS);
        let empty = Bucket {
            // Never a live second: `is_live` rejects it.
            second: u64::MAX,
            counts: [0; K],
        };
        Self {
            buckets: vec![empty; secs as usize],
        }
    }

    /// The window length in whole seconds.
    pub(crate) fn seconds(&self) -> u64 {
        self.buckets.len() as u64
    }

    fn is_live(&self, bucket: &Bucket<K>, second: u64) -> bool {
        bucket.second <= second && second - bucket.second < self.seconds()
    }

    /// Adds one to counter `k` in the bucket of `now`.
    pub(crate) fn add(&mut self, now: Duration, k: usize) {
        let second = now.as_secs();
        let len = self.seconds();
        let bucket = &mut self.buckets[(second % len) as usize];
        if bucket.second != second {
            *bucket = Bucket {
                second,
                counts: [0; K],
            };
        }
        if let Some(c) = bucket.counts.get_mut(k) {
            *c = c.saturating_add(1);
        }
    }

    /// Each counter summed over the live buckets at `now`.
    pub(crate) fn sums(&self, now: Duration) -> [u64; K] {
        let second = now.as_secs();
        let mut sums = [0u64; K];
        for bucket in self.buckets.iter().filter(|b| self.is_live(b, second)) {
            for (s, c) in sums.iter_mut().zip(bucket.counts) {
                *s += u64::from(c);
            }
        }
        sums
    }

    /// Forgets every count.
    pub(crate) fn clear(&mut self) {
        for b in &mut self.buckets {
            b.second = u64::MAX;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_only_the_last_seconds() {
        let mut w: Window<2> = Window::new(Duration::from_millis(2500));
        assert_eq!(w.seconds(), 3);
        let s = Duration::from_secs;
        w.add(s(0), 0);
        w.add(s(1), 0);
        w.add(s(1), 1);
        w.add(s(2), 0);
        assert_eq!(w.sums(s(2)), [3, 1]);
        assert_eq!(w.sums(s(3)), [2, 1]);
        assert_eq!(w.sums(s(4)), [1, 0]);
        w.add(s(10), 0);
        assert_eq!(w.sums(s(10)), [1, 0]);
        w.clear();
        assert_eq!(w.sums(s(10)), [0, 0]);
        // A time before the buckets (clock misuse) sees nothing rather than panicking.
        assert_eq!(w.sums(s(0)), [0, 0]);
    }
}
