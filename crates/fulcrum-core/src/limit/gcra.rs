//! The generic cell rate algorithm: one number per key, the theoretical arrival
//! time (TAT) of the next request, instead of a counter and a window. A request is
//! allowed when, with it, the TAT stays within `burst` intervals of now.

use super::Rate;

/// A rate and a burst as GCRA intervals, in nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gcra {
    /// Time one request uses up.
    pub interval: u64,
    /// Requests allowed at once from a full bucket.
    pub burst: u32,
}

/// What the algorithm says of one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Let through; `remaining` more could come at once, and the bucket is full
    /// again in `reset_ns`.
    Allow {
        /// Requests still allowed at once.
        remaining: u32,
        /// Nanoseconds until the whole burst is available again.
        reset_ns: u64,
    },
    /// Over the limit: one more request fits in `retry_after_ns`.
    Deny {
        /// Nanoseconds until a request would be allowed.
        retry_after_ns: u64,
    },
}

impl Gcra {
    /// The limiter for `rate` with `burst` (at least 1).
    pub fn new(rate: Rate, burst: u32) -> Self {
        Self {
            interval: rate.interval_ns(),
            burst: burst.max(1),
        }
    }

    /// The span a full burst covers.
    fn tolerance(&self) -> u64 {
        self.interval.saturating_mul(u64::from(self.burst))
    }

    /// Decides on `n` requests arriving at `now` for a key whose TAT is `tat` (0
    /// for a key not seen); on allow, `tat` moves on.
    pub fn check(&self, tat: &mut u64, now: u64, n: u32) -> Decision {
        let start = (*tat).max(now);
        let next = start.saturating_add(self.interval.saturating_mul(u64::from(n)));
        let used = next - now;
        let tolerance = self.tolerance();
        if used > tolerance {
            return Decision::Deny {
                retry_after_ns: used - tolerance,
            };
        }
        *tat = next;
        Decision::Allow {
            remaining: ((tolerance - used) / self.interval) as u32,
            reset_ns: used,
        }
    }

    /// As many of `want` requests as fit now (at least one, or none): what a lease
    /// from a shared store grants.
    pub fn take_up_to(&self, tat: &mut u64, now: u64, want: u32) -> u32 {
        let start = (*tat).max(now);
        let free = self.tolerance().saturating_sub(start - now) / self.interval;
        let n = want.min(free.min(u64::from(u32::MAX)) as u32);
        *tat = start + self.interval * u64::from(n);
        n
    }

    /// Gives back `n` requests taken but not used: the TAT moves back, never
    /// before `now`.
    pub fn give_back(&self, tat: &mut u64, now: u64, n: u32) {
        let back = tat.saturating_sub(self.interval.saturating_mul(u64::from(n)));
        *tat = back.max(now.min(*tat));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    fn gcra(rate: &str, burst: u32) -> Gcra {
        Gcra::new(
            Rate::parse(rate).unwrap_or(Rate {
                count: 1,
                per_secs: 1,
            }),
            burst,
        )
    }

    fn allowed(g: &Gcra, tat: &mut u64, now: u64, n: usize) -> usize {
        (0..n)
            .filter(|_| matches!(g.check(tat, now, 1), Decision::Allow { .. }))
            .count()
    }

    #[test]
    fn a_burst_then_the_rate() {
        let g = gcra("10/s", 5);
        let mut tat = 0;
        let now = 100 * SEC;
        assert_eq!(
            g.check(&mut tat, now, 1),
            Decision::Allow {
                remaining: 4,
                reset_ns: SEC / 10
            }
        );
        assert_eq!(allowed(&g, &mut tat, now, 10), 4);
        assert_eq!(
            g.check(&mut tat, now, 1),
            Decision::Deny {
                retry_after_ns: SEC / 10
            }
        );
        // One interval later, exactly one more.
        assert_eq!(allowed(&g, &mut tat, now + SEC / 10, 3), 1);
        // Over ten simulated seconds at 1000 tries a second: the rate, plus the burst.
        let mut tat = 0;
        let mut total = 0;
        for ms in 0..10_000u64 {
            total += allowed(&g, &mut tat, now + ms * SEC / 1000, 1);
        }
        assert_eq!(total, 100 + 5 - 1);
    }

    #[test]
    fn a_denied_request_costs_nothing() {
        let g = gcra("1/s", 1);
        let mut tat = 0;
        assert_eq!(allowed(&g, &mut tat, SEC, 1), 1);
        let before = tat;
        assert_eq!(allowed(&g, &mut tat, SEC, 100), 0);
        assert_eq!(tat, before);
        assert_eq!(allowed(&g, &mut tat, 2 * SEC, 1), 1);
    }

    #[test]
    fn leases_take_what_fits_and_give_back() {
        let g = gcra("100/s", 10);
        let mut tat = 0;
        let now = 50 * SEC;
        assert_eq!(g.take_up_to(&mut tat, now, 4), 4);
        assert_eq!(g.take_up_to(&mut tat, now, 8), 6);
        assert_eq!(g.take_up_to(&mut tat, now, 8), 0);
        g.give_back(&mut tat, now, 3);
        assert_eq!(g.take_up_to(&mut tat, now, 8), 3);
        // Giving back more than was taken never moves the TAT before now.
        g.give_back(&mut tat, now, 1000);
        assert_eq!(tat, now);
        assert_eq!(g.take_up_to(&mut tat, now, 100), 10);
    }
}
