//! What each DNS answer does to a name's members, and when the name is asked
//! again: TTLs clamped to the pool's `dns` bounds, a failing resolver keeping the
//! last good answer, and an empty answer honoured only after `empty_grace`.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::{normalize, Found};

/// How long a failing resolver waits before asking again (within the clamps).
pub const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(5);

/// A pool's `dns` settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Clamp {
    /// No sooner than this.
    pub min_ttl: Duration,
    /// No later than this.
    pub max_ttl: Duration,
    /// How long an empty answer must last before it empties the members.
    pub empty_grace: Duration,
}

impl Clamp {
    /// `ttl` within `min_ttl..=max_ttl`.
    pub fn ttl(&self, ttl: Duration) -> Duration {
        ttl.clamp(self.min_ttl, self.max_ttl.max(self.min_ttl))
    }
}

/// What one query gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Records, with the time they may be kept.
    Records {
        /// The members they make.
        found: Vec<Found>,
        /// The smallest TTL among them.
        ttl: Duration,
    },
    /// A working resolver said there is nothing (no records, NXDOMAIN).
    Empty {
        /// The negative TTL, when the answer carried one.
        ttl: Option<Duration>,
    },
    /// No answer: timeout, refused, server failure.
    Failed(String),
}

/// What happened, for the log and the resolution counter's `result` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// Records, the same members as before.
    Same,
    /// Records that change the members.
    Changed,
    /// Empty, still within the grace period: nothing changes.
    EmptyHeld,
    /// Empty for the whole grace period (or with nothing to lose): no members.
    Emptied,
    /// No answer: the last good one is kept.
    Failed,
}

impl Event {
    /// The `result` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Same => "same",
            Self::Changed => "changed",
            Self::EmptyHeld => "empty_held",
            Self::Emptied => "empty",
            Self::Failed => "failed",
        }
    }
}

/// The result of one answer: the members to publish when they change, and when
/// to ask next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// What happened.
    pub event: Event,
    /// The new members, when they changed.
    pub publish: Option<Vec<Found>>,
    /// Time until the next query.
    pub next_in: Duration,
}

/// One name's members and the state of its answers.
#[derive(Clone, Debug)]
pub struct Tracker {
    clamp: Clamp,
    current: Vec<Found>,
    /// When the current members were last confirmed by an answer.
    answered_at: Duration,
    /// When the run of empty answers began.
    empty_since: Option<Duration>,
}

impl Tracker {
    /// A tracker whose members `current` were answered at `now`.
    pub fn new(clamp: Clamp, mut current: Vec<Found>, now: Duration) -> Self {
        normalize(&mut current);
        Self {
            clamp,
            current,
            answered_at: now,
            empty_since: None,
        }
    }

    /// The members now.
    pub fn current(&self) -> &[Found] {
        &self.current
    }

    /// Age of the last good answer at `now`.
    pub fn age(&self, now: Duration) -> Duration {
        now.saturating_sub(self.answered_at)
    }

    /// Takes the outcome of a query made at `now`.
    pub fn on(&mut self, now: Duration, outcome: Outcome) -> Step {
        match outcome {
            Outcome::Records { mut found, ttl } => {
                normalize(&mut found);
                self.empty_since = None;
                self.answered_at = now;
                let next_in = self.clamp.ttl(ttl);
                if found == self.current {
                    return Step {
                        event: Event::Same,
                        publish: None,
                        next_in,
                    };
                }
                self.current = found.clone();
                Step {
                    event: Event::Changed,
                    publish: Some(found),
                    next_in,
                }
            }
            Outcome::Empty { ttl } => {
                let ttl = ttl.unwrap_or(self.clamp.min_ttl);
                if self.current.is_empty() {
                    self.answered_at = now;
                    return Step {
                        event: Event::Same,
                        publish: None,
                        next_in: self.clamp.ttl(ttl),
                    };
                }
                let since = *self.empty_since.get_or_insert(now);
                let held = now.saturating_sub(since);
                if held >= self.clamp.empty_grace {
                    self.current.clear();
                    self.empty_since = None;
                    self.answered_at = now;
                    return Step {
                        event: Event::Emptied,
                        publish: Some(Vec::new()),
                        next_in: self.clamp.ttl(ttl),
                    };
                }
                // Asked again when the grace ends, so a lasting empty answer
                // takes effect on time.
                let left = self.clamp.empty_grace - held;
                Step {
                    event: Event::EmptyHeld,
                    publish: None,
                    next_in: self.clamp.ttl(ttl.min(left)),
                }
            }
            Outcome::Failed(_) => Step {
                event: Event::Failed,
                publish: None,
                next_in: self.clamp.ttl(RETRY_AFTER_FAILURE),
            },
        }
    }
}

/// One SRV record with its target's addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SrvTarget {
    /// Lower serves first.
    pub priority: u16,
    /// Share among records of one priority.
    pub weight: u16,
    /// The target's port.
    pub port: u16,
    /// The target's addresses.
    pub ips: Vec<IpAddr>,
}

/// The members of an SRV answer: the lowest priority serves, the others are
/// backups; a record's weight is its members' weight (0 counts as 1, as the
/// record still names a server).
pub fn srv_members(records: &[SrvTarget]) -> Vec<Found> {
    let Some(first) = records.iter().map(|r| r.priority).min() else {
        return Vec::new();
    };
    let mut found: Vec<Found> = records
        .iter()
        .flat_map(|r| {
            r.ips.iter().map(move |ip| Found {
                addr: SocketAddr::new(*ip, r.port),
                weight: u32::from(r.weight.max(1)),
                backup: r.priority != first,
            })
        })
        .collect();
    normalize(&mut found);
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn clamp() -> Clamp {
        Clamp {
            min_ttl: S,
            max_ttl: 300 * S,
            empty_grace: 30 * S,
        }
    }

    fn found(addrs: &[&str]) -> Vec<Found> {
        addrs
            .iter()
            .map(|a| Found {
                addr: a.parse().unwrap(),
                weight: 1,
                backup: false,
            })
            .collect()
    }

    fn records(addrs: &[&str], ttl: u32) -> Outcome {
        Outcome::Records {
            found: found(addrs),
            ttl: S * ttl,
        }
    }

    #[test]
    fn ttls_are_clamped() {
        let mut t = Tracker::new(clamp(), found(&["10.0.0.1:80"]), Duration::ZERO);
        assert_eq!(t.on(S, records(&["10.0.0.1:80"], 0)).next_in, S);
        assert_eq!(t.on(S, records(&["10.0.0.1:80"], 60)).next_in, 60 * S);
        assert_eq!(t.on(S, records(&["10.0.0.1:80"], 86_400)).next_in, 300 * S);
    }

    #[test]
    fn changes_are_published_once_and_in_order() {
        let mut t = Tracker::new(clamp(), found(&["10.0.0.1:80"]), Duration::ZERO);
        let step = t.on(S, records(&["10.0.0.3:80", "10.0.0.2:80"], 5));
        assert_eq!(step.event, Event::Changed);
        assert_eq!(step.publish, Some(found(&["10.0.0.2:80", "10.0.0.3:80"])));
        // The same set in another order changes nothing.
        let step = t.on(2 * S, records(&["10.0.0.2:80", "10.0.0.3:80"], 5));
        assert_eq!((step.event, step.publish), (Event::Same, None));
    }

    #[test]
    fn a_failing_resolver_keeps_the_last_answer() {
        let mut t = Tracker::new(clamp(), found(&["10.0.0.1:80"]), Duration::ZERO);
        for i in 1..100 {
            let step = t.on(i * 5 * S, Outcome::Failed("timeout".into()));
            assert_eq!((step.event, step.publish), (Event::Failed, None));
            assert_eq!(step.next_in, RETRY_AFTER_FAILURE);
        }
        assert_eq!(t.current(), found(&["10.0.0.1:80"]));
        assert_eq!(t.age(500 * S), 500 * S);
    }

    #[test]
    fn an_empty_answer_waits_out_the_grace() {
        let mut t = Tracker::new(clamp(), found(&["10.0.0.1:80"]), Duration::ZERO);
        let step = t.on(10 * S, Outcome::Empty { ttl: Some(60 * S) });
        assert_eq!((step.event, step.publish.clone()), (Event::EmptyHeld, None));
        // Asked again when the grace ends, not after the negative TTL.
        assert_eq!(step.next_in, 30 * S);
        // Records within the grace end the run of empty answers.
        t.on(20 * S, records(&["10.0.0.1:80"], 5));
        let step = t.on(39 * S, Outcome::Empty { ttl: None });
        assert_eq!(step.event, Event::EmptyHeld);
        let step = t.on(60 * S, Outcome::Empty { ttl: None });
        assert_eq!(step.event, Event::EmptyHeld);
        let step = t.on(69 * S, Outcome::Empty { ttl: None });
        assert_eq!(
            (step.event, step.publish),
            (Event::Emptied, Some(Vec::new()))
        );
        assert!(t.current().is_empty());
        // Nothing left to lose: further empty answers are plain.
        assert_eq!(
            t.on(70 * S, Outcome::Empty { ttl: None }).event,
            Event::Same
        );
    }

    #[test]
    fn srv_priorities_and_weights() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let recs = vec![
            SrvTarget {
                priority: 20,
                weight: 5,
                port: 9000,
                ips: vec![ip("10.0.0.9")],
            },
            SrvTarget {
                priority: 10,
                weight: 3,
                port: 8080,
                ips: vec![ip("10.0.0.1"), ip("10.0.0.2")],
            },
            SrvTarget {
                priority: 10,
                weight: 0,
                port: 8081,
                ips: vec![ip("10.0.0.1")],
            },
        ];
        let m = srv_members(&recs);
        let f = |a: &str, weight, backup| Found {
            addr: a.parse().unwrap(),
            weight,
            backup,
        };
        assert_eq!(
            m,
            vec![
                f("10.0.0.1:8080", 3, false),
                f("10.0.0.1:8081", 1, false),
                f("10.0.0.2:8080", 3, false),
                f("10.0.0.9:9000", 5, true),
            ]
        );
        assert!(srv_members(&[]).is_empty());
    }
}
