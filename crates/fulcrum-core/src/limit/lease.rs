//! Fleet limits without a store round trip per request: an instance takes a lease
//! of a few tokens for a key from the shared store (reserved there at once, so the
//! fleet never admits more than the limit), spends them locally, and gives back
//! what a lease still held when it ran out of time, with its next request for the
//! key. A key the store refused is refused locally until the store's retry time.

use super::table::Bounded;

/// One key's lease.
#[derive(Clone, Copy, Debug, Default)]
struct Lease {
    /// Tokens left to spend.
    tokens: u32,
    /// When the tokens stop being valid (nanoseconds).
    expires: u64,
    /// The store refused the key until then.
    denied_until: u64,
}

/// What a request needs, from the local lease of its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// A leased token paid for it: allowed.
    Nothing,
    /// The store refused this key a moment ago: refused for this long still.
    Refused {
        /// Nanoseconds until the store may allow it.
        retry_after_ns: u64,
    },
    /// Ask the store for a lease, giving back `unused` expired tokens.
    Fetch {
        /// Tokens of an expired lease to return to the store.
        unused: u32,
    },
}

/// What the store answered for a lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grant {
    /// Allowed: a token of the lease pays for the request.
    Allow,
    /// Refused; retry after this many nanoseconds.
    Deny {
        /// Nanoseconds until the store may allow it.
        retry_after_ns: u64,
    },
}

/// The leases one process holds, in a bounded table.
#[derive(Debug)]
pub struct LeaseTable {
    table: Bounded<Lease>,
    /// Life of a lease's tokens, in nanoseconds.
    ttl: u64,
}

impl LeaseTable {
    /// Leases for at most `max_keys` keys, each good for `ttl_ns`.
    pub fn new(max_keys: usize, ttl_ns: u64) -> Self {
        Self {
            table: Bounded::new(max_keys),
            ttl: ttl_ns,
        }
    }

    /// Spends a token of `key`'s lease at `now`, or says what to ask the store.
    pub fn take(&self, key: u64, now: u64) -> Need {
        self.table.with(key, |l| {
            if l.denied_until > now {
                return Need::Refused {
                    retry_after_ns: l.denied_until - now,
                };
            }
            if l.tokens > 0 && l.expires > now {
                l.tokens -= 1;
                return Need::Nothing;
            }
            Need::Fetch {
                unused: std::mem::take(&mut l.tokens),
            }
        })
    }

    /// Records the store's answer for `key` at `now`: `granted` tokens (one pays for
    /// the request that asked), or none and the store's retry time.
    pub fn fill(&self, key: u64, now: u64, granted: u32, retry_after_ns: u64) -> Grant {
        self.table.with(key, |l| {
            if granted == 0 {
                l.denied_until = now.saturating_add(retry_after_ns.max(1));
                return Grant::Deny {
                    retry_after_ns: retry_after_ns.max(1),
                };
            }
            l.tokens = l.tokens.saturating_add(granted - 1);
            l.expires = now.saturating_add(self.ttl);
            l.denied_until = 0;
            Grant::Allow
        })
    }

    /// Keys held now.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn a_lease_is_spent_then_refetched_with_its_leftovers() {
        let t = LeaseTable::new(100, 500 * MS);
        assert_eq!(t.take(1, 0), Need::Fetch { unused: 0 });
        assert_eq!(t.fill(1, 0, 3, 0), Grant::Allow);
        assert_eq!(t.take(1, MS), Need::Nothing);
        assert_eq!(t.take(1, MS), Need::Nothing);
        assert_eq!(t.take(1, MS), Need::Fetch { unused: 0 });
        assert_eq!(t.fill(1, MS, 5, 0), Grant::Allow);
        assert_eq!(t.take(1, 2 * MS), Need::Nothing);
        // Expired with three left: they go back with the next fetch.
        assert_eq!(t.take(1, 600 * MS), Need::Fetch { unused: 3 });
    }

    #[test]
    fn a_refusal_is_kept_until_the_retry_time() {
        let t = LeaseTable::new(100, 500 * MS);
        assert_eq!(t.take(9, 0), Need::Fetch { unused: 0 });
        assert_eq!(
            t.fill(9, 0, 0, 40 * MS),
            Grant::Deny {
                retry_after_ns: 40 * MS
            }
        );
        assert_eq!(
            t.take(9, 10 * MS),
            Need::Refused {
                retry_after_ns: 30 * MS
            }
        );
        assert_eq!(t.take(9, 40 * MS), Need::Fetch { unused: 0 });
    }
}
