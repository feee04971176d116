//! UDP sessions: which client addresses have one, which has been idle longest, and
//! which have expired. A udp listener keeps one table per worker; the I/O side owns
//! the sockets and passes the time in.
//!
//! The table is a hash index over a slab of slots threaded on one list ordered by
//! last activity, idlest first (an LRU list where every datagram either way counts
//! as a use). So every operation is O(1): a touch moves a slot to the newest end,
//! eviction and expiry take from the idlest end, and the next expiry is the idlest
//! slot's. Memory is bounded by `max`: a flood of new source addresses recycles the
//! idlest slots instead of growing the table, and the slab never holds more than
//! `max` slots however many sessions came and went.
//!
//! The index uses std's randomly keyed SipHash: the keys are client addresses an
//! attacker chooses, and nothing outside the process depends on the hash.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::Duration;

/// No slot: the end of the list.
const NIL: u32 = u32::MAX;

/// Sessions keyed by client address (`K`), holding `V` each, bounded and expiring.
#[derive(Debug)]
pub struct Sessions<K, V> {
    index: HashMap<K, u32>,
    slots: Vec<Slot<K, V>>,
    /// Slots whose session ended, reused before the slab grows.
    free: Vec<u32>,
    /// Idle longest: evicted and expired first.
    idlest: u32,
    /// Most recently active.
    newest: u32,
    max: usize,
    idle: Duration,
}

#[derive(Debug)]
struct Slot<K, V> {
    key: K,
    /// `None` while the slot is free.
    value: Option<V>,
    /// Last datagram either way, on the caller's clock.
    last: Duration,
    /// Toward the idlest end.
    older: u32,
    /// Toward the newest end.
    newer: u32,
}

impl<K: Copy + Eq + Hash, V> Sessions<K, V> {
    /// An empty table holding at most `max` sessions (at least one), each ending
    /// after `idle` without a datagram.
    pub fn new(max: usize, idle: Duration) -> Self {
        Self {
            index: HashMap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            idlest: NIL,
            newest: NIL,
            max: max.max(1),
            idle,
        }
    }

    /// Sessions held.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether no session is held.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The most sessions held at once.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Time without a datagram after which a session expires.
    pub fn idle(&self) -> Duration {
        self.idle
    }

    /// Slots allocated: never more than the largest `max` the table has had.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// New limits (a reload). A smaller `max` takes effect through
    /// [`Self::pop_excess`], which the caller drains to end what no longer fits.
    pub fn set_limits(&mut self, max: usize, idle: Duration) {
        self.max = max.max(1);
        self.idle = idle;
    }

    /// The session of `key`, without counting activity.
    pub fn get(&self, key: &K) -> Option<&V> {
        let i = *self.index.get(key)?;
        self.slot(i)?.value.as_ref()
    }

    /// The session of `key` after a datagram at `now`: it becomes the newest.
    pub fn touch(&mut self, key: &K, now: Duration) -> Option<&V> {
        let i = *self.index.get(key)?;
        self.unlink(i);
        self.push_newest(i, now);
        self.slot(i)?.value.as_ref()
    }

    /// Adds the session of `key`, active at `now`. Returns the session that had to
    /// go for it, if any: the previous one of the same key, or else, when the table
    /// is full, the one idle longest.
    pub fn insert(&mut self, key: K, value: V, now: Duration) -> Option<(K, V)> {
        let gone = match self.remove(&key) {
            Some(old) => Some((key, old)),
            None if self.len() >= self.max => self.pop_idlest(),
            None => None,
        };
        let i = match self.free.pop() {
            Some(i) => i,
            None => {
                // Bounded by `max` (u32 in the config): the slab never reaches NIL.
                let i = u32::try_from(self.slots.len()).unwrap_or(NIL - 1);
                self.slots.push(Slot {
                    key,
                    value: None,
                    last: now,
                    older: NIL,
                    newer: NIL,
                });
                i
            }
        };
        if let Some(slot) = self.slot_mut(i) {
            slot.key = key;
            slot.value = Some(value);
        }
        self.push_newest(i, now);
        self.index.insert(key, i);
        gone
    }

    /// Ends the session of `key`.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        let i = self.index.remove(key)?;
        self.release(i).map(|(_, v)| v)
    }

    /// Ends the session idle longest (to make room).
    pub fn pop_idlest(&mut self) -> Option<(K, V)> {
        let i = self.idlest;
        let key = self.slot(i)?.key;
        self.index.remove(&key);
        self.release(i)
    }

    /// Ends one session that has expired by `now` (no datagram for `idle` or
    /// longer), idlest first; `None` when none has.
    pub fn pop_expired(&mut self, now: Duration) -> Option<(K, V)> {
        let due = self.next_expiry()?;
        if due > now {
            return None;
        }
        self.pop_idlest()
    }

    /// Ends one session beyond `max` (after [`Self::set_limits`] lowered it).
    pub fn pop_excess(&mut self) -> Option<(K, V)> {
        if self.len() > self.max {
            self.pop_idlest()
        } else {
            None
        }
    }

    /// When the idlest session expires, if there is one: a timer set for then
    /// never misses an expiry (activity only pushes it later).
    pub fn next_expiry(&self) -> Option<Duration> {
        let slot = self.slot(self.idlest)?;
        Some(slot.last.saturating_add(self.idle))
    }

    /// Every session's key and value, idlest first.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> + '_ {
        let mut at = self.idlest;
        std::iter::from_fn(move || {
            let slot = self.slot(at)?;
            at = slot.newer;
            Some((&slot.key, slot.value.as_ref()?))
        })
    }

    fn slot(&self, i: u32) -> Option<&Slot<K, V>> {
        self.slots.get(usize::try_from(i).ok()?)
    }

    fn slot_mut(&mut self, i: u32) -> Option<&mut Slot<K, V>> {
        self.slots.get_mut(usize::try_from(i).ok()?)
    }

    /// Takes slot `i` off the list and frees it; its key is already out of the index.
    fn release(&mut self, i: u32) -> Option<(K, V)> {
        self.unlink(i);
        self.free.push(i);
        let slot = self.slot_mut(i)?;
        Some((slot.key, slot.value.take()?))
    }

    /// Takes slot `i` off the list.
    fn unlink(&mut self, i: u32) {
        let Some(slot) = self.slot(i) else { return };
        let (older, newer) = (slot.older, slot.newer);
        match self.slot_mut(older) {
            Some(o) => o.newer = newer,
            None => self.idlest = newer,
        }
        match self.slot_mut(newer) {
            Some(n) => n.older = older,
            None => self.newest = older,
        }
    }

    /// Puts slot `i` at the newest end, active at `now`. Times never go backwards
    /// along the list, so the idlest slot is always the first to expire.
    fn push_newest(&mut self, i: u32, now: Duration) {
        let prev = self.newest;
        let last = self.slot(prev).map_or(now, |p| p.last.max(now));
        if let Some(p) = self.slot_mut(prev) {
            p.newer = i;
        }
        if let Some(slot) = self.slot_mut(i) {
            slot.last = last;
            slot.older = prev;
            slot.newer = NIL;
        }
        self.newest = i;
        if self.idlest == NIL {
            self.idlest = i;
        }
    }
}

#[cfg(test)]
mod tests;
