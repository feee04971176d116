//! Draining: take a backend out gracefully.
//!
//! A draining backend gets no new requests or connections, while the ones
//! already on it (including long-lived streams) finish. It is released, and
//! may be stopped or removed, once nothing is in flight or the deadline passes,
//! whichever comes first: the deadline bounds how long one stuck stream can
//! hold up a deploy.

use std::time::Duration;

/// How long a drain waits for in-flight work when the config sets no `drain_timeout`.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// One backend's drain, from the instant it started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Drain {
    /// When the drain started.
    pub started: Duration,
    /// When the drain gives up waiting for in-flight work.
    pub deadline: Duration,
}

impl Drain {
    /// A drain starting at `now` that waits at most `timeout`.
    pub fn new(now: Duration, timeout: Duration) -> Self {
        Self {
            started: now,
            deadline: now.saturating_add(timeout),
        }
    }

    /// Whether the deadline has passed at `now`.
    pub fn is_expired(&self, now: Duration) -> bool {
        now >= self.deadline
    }

    /// Whether the backend may be released at `now` with `in_flight` requests left.
    pub fn is_released(&self, in_flight: u64, now: Duration) -> bool {
        is_released(in_flight, self.is_expired(now))
    }
}

/// The release rule: nothing left in flight, or the deadline has passed.
pub fn is_released(in_flight: u64, expired: bool) -> bool {
    in_flight == 0 || expired
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn released_at_zero_in_flight_or_at_the_deadline() {
        let t = Duration::from_secs;
        let d = Drain::new(t(10), DEFAULT_DRAIN_TIMEOUT);
        assert_eq!(d.deadline, t(40));
        assert!(!d.is_released(3, t(39)));
        assert!(d.is_released(0, t(11)));
        assert!(d.is_released(3, t(40)));
        assert!(!d.is_expired(t(39)));
        assert!(d.is_expired(t(40)));
    }
}
