use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use super::Sessions;

const MS: Duration = Duration::from_millis(1);
const IDLE: Duration = Duration::from_secs(60);

fn at(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

/// Client address number `n`, as a flood of source addresses would bring them.
fn client(n: u32) -> SocketAddr {
    SocketAddr::from((
        Ipv4Addr::from(0x0a00_0000 + n / 50_000),
        (n % 50_000) as u16,
    ))
}

fn keys<V>(t: &Sessions<u32, V>) -> Vec<u32> {
    t.iter().map(|(k, _)| *k).collect()
}

#[test]
fn a_session_is_found_until_it_idles_out() {
    let mut t = Sessions::new(10, 300 * MS);
    assert!(t.is_empty());
    assert_eq!(t.next_expiry(), None);
    assert!(t.insert(1u32, "a", at(0)).is_none());
    assert_eq!(t.get(&1), Some(&"a"));
    assert_eq!(t.next_expiry(), Some(at(300)));
    // A datagram either way at 200 ms pushes the expiry to 500 ms.
    assert_eq!(t.touch(&1, at(200)), Some(&"a"));
    assert_eq!(t.next_expiry(), Some(at(500)));
    assert_eq!(t.pop_expired(at(499)), None);
    assert_eq!(t.pop_expired(at(500)), Some((1, "a")));
    assert!(t.is_empty());
    assert_eq!(t.touch(&1, at(501)), None);
    assert_eq!(t.next_expiry(), None);
}

#[test]
fn expiry_takes_the_idlest_first_and_only_the_expired() {
    let mut t = Sessions::new(10, 100 * MS);
    for k in 0..5u32 {
        t.insert(k, k, at(u64::from(k) * 10));
    }
    // Activity on 0 makes 1 the idlest.
    t.touch(&0, at(45));
    assert_eq!(keys(&t), [1, 2, 3, 4, 0]);
    let mut gone = Vec::new();
    while let Some((k, _)) = t.pop_expired(at(125)) {
        gone.push(k);
    }
    // 1 (last at 10), 2 (20) expired at 110 and 120; 3 (30) only at 130.
    assert_eq!(gone, [1, 2]);
    assert_eq!(keys(&t), [3, 4, 0]);
    assert_eq!(t.next_expiry(), Some(at(130)));
}

#[test]
fn a_full_table_evicts_the_session_idle_longest() {
    let mut t = Sessions::new(3, IDLE);
    t.insert(1u32, (), at(0));
    t.insert(2, (), at(1));
    t.insert(3, (), at(2));
    // 1 is the oldest session but the most recently active one.
    t.touch(&1, at(3));
    assert_eq!(t.insert(4, (), at(4)), Some((2, ())));
    assert_eq!(keys(&t), [3, 1, 4]);
    assert_eq!(t.insert(5, (), at(5)), Some((3, ())));
    assert_eq!(t.len(), 3);
    assert_eq!(t.capacity(), 3);
}

#[test]
fn inserting_a_key_again_replaces_its_session() {
    let mut t = Sessions::new(2, IDLE);
    t.insert(1u32, "old", at(0));
    t.insert(2, "two", at(1));
    assert_eq!(t.insert(1, "new", at(2)), Some((1, "old")));
    assert_eq!(t.len(), 2);
    assert_eq!(keys(&t), [2, 1]);
    assert_eq!(t.get(&1), Some(&"new"));
}

#[test]
fn removal_frees_the_slot_for_the_next_session() {
    let mut t = Sessions::new(4, IDLE);
    for k in 0..4u32 {
        t.insert(k, k, at(0));
    }
    assert_eq!(t.remove(&2), Some(2));
    assert_eq!(t.remove(&2), None);
    assert_eq!(keys(&t), [0, 1, 3]);
    assert!(t.insert(9, 9, at(1)).is_none());
    assert_eq!(keys(&t), [0, 1, 3, 9]);
    assert_eq!(t.capacity(), 4);
    // Emptied in any order, then refilled: still four slots.
    for k in [3, 0, 9, 1] {
        assert!(t.remove(&k).is_some());
    }
    assert!(t.is_empty());
    assert_eq!(t.next_expiry(), None);
    for k in 10..14u32 {
        t.insert(k, k, at(2));
    }
    assert_eq!(keys(&t), [10, 11, 12, 13]);
    assert_eq!(t.capacity(), 4);
}

#[test]
fn a_flood_of_addresses_stays_within_max_and_spares_an_active_session() {
    let max = 1000;
    let mut t = Sessions::new(max, IDLE);
    let legit = SocketAddr::from((Ipv4Addr::new(192, 0, 2, 1), 53));
    t.insert(legit, u32::MAX, at(0));
    let mut evicted = 0u32;
    for n in 0..100_000u32 {
        // One new source address every 10 µs, a second of flood in all.
        let now = Duration::from_micros(u64::from(n) * 10);
        if t.insert(client(n), n, now).is_some() {
            evicted += 1;
        }
        assert!(t.len() <= max);
        // The real client keeps talking, once per 500 flood datagrams: it is
        // never the idlest of a thousand.
        if n % 500 == 0 {
            assert_eq!(t.touch(&legit, now), Some(&u32::MAX), "at {n}");
        }
    }
    assert_eq!(t.len(), max);
    assert_eq!(t.capacity(), max);
    assert_eq!(evicted, 100_001 - max as u32);
    assert!(t.get(&legit).is_some());
    // The survivors are the legit client and the newest flood addresses.
    assert!(t.get(&client(99_999)).is_some());
    assert!(t.get(&client(99_000)).is_none());
}

#[test]
fn lowering_max_sheds_the_idlest() {
    let mut t = Sessions::new(5, IDLE);
    for k in 0..5u32 {
        t.insert(k, k, at(u64::from(k)));
    }
    t.set_limits(2, 10 * MS);
    assert_eq!((t.max(), t.idle()), (2, 10 * MS));
    let mut shed = Vec::new();
    while let Some((k, _)) = t.pop_excess() {
        shed.push(k);
    }
    assert_eq!(shed, [0, 1, 2]);
    assert_eq!(keys(&t), [3, 4]);
    // The new idle time applies to what remains.
    assert_eq!(t.next_expiry(), Some(at(13)));
    // A max of 0 still holds one session.
    t.set_limits(0, IDLE);
    assert_eq!(t.max(), 1);
}

#[test]
fn a_clock_read_out_of_order_never_reorders_expiry() {
    let mut t = Sessions::new(10, 100 * MS);
    t.insert(1u32, (), at(50));
    // An earlier time for a later event (two reads racing) counts as the latest.
    t.insert(2, (), at(40));
    assert_eq!(t.next_expiry(), Some(at(150)));
    assert_eq!(t.pop_expired(at(150)), Some((1, ())));
    assert_eq!(t.pop_expired(at(150)), Some((2, ())));
}

/// A plain model of the same rules: a list ordered by last activity.
struct Model {
    max: usize,
    idle: Duration,
    list: VecDeque<(u32, u32, Duration)>,
}

impl Model {
    fn take(&mut self, key: u32) -> Option<(u32, u32, Duration)> {
        let i = self.list.iter().position(|e| e.0 == key)?;
        self.list.remove(i)
    }
    fn newest(&self, now: Duration) -> Duration {
        self.list.back().map_or(now, |e| e.2.max(now))
    }
}

#[test]
fn random_operations_match_a_plain_model() {
    for seed in 1..=40u64 {
        let mut rng = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let mut next = move |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n
        };
        let max = 1 + next(12) as usize;
        let idle = Duration::from_millis(5 + next(50));
        let mut t = Sessions::new(max, idle);
        let mut m = Model {
            max,
            idle,
            list: VecDeque::new(),
        };
        let mut now = Duration::ZERO;
        for step in 0..2_000u32 {
            now += Duration::from_millis(next(4));
            let key = next(20) as u32;
            match next(6) {
                0 | 1 => {
                    let got = t.insert(key, step, now);
                    let last = m.newest(now);
                    let want = match m.take(key) {
                        Some((k, v, _)) => Some((k, v)),
                        None if m.list.len() >= m.max => m.list.pop_front().map(|e| (e.0, e.1)),
                        None => None,
                    };
                    m.list.push_back((key, step, last));
                    assert_eq!(got, want, "seed {seed} step {step}: insert {key}");
                }
                2 => {
                    let got = t.touch(&key, now).copied();
                    let last = m.newest(now);
                    let want = m.take(key).map(|(k, v, _)| {
                        m.list.push_back((k, v, last));
                        v
                    });
                    assert_eq!(got, want, "seed {seed} step {step}: touch {key}");
                }
                3 => {
                    let want = m.take(key).map(|e| e.1);
                    assert_eq!(t.remove(&key), want, "seed {seed} step {step}: remove");
                }
                4 => loop {
                    let want = (m.list.front().is_some_and(|e| e.2 + m.idle <= now))
                        .then(|| m.list.pop_front().map(|e| (e.0, e.1)))
                        .flatten();
                    let got = t.pop_expired(now);
                    assert_eq!(got, want, "seed {seed} step {step}: expire");
                    if got.is_none() {
                        break;
                    }
                },
                _ => {
                    let want = m.list.front().map(|e| e.2 + m.idle);
                    assert_eq!(t.next_expiry(), want, "seed {seed} step {step}: next");
                }
            }
            let order: Vec<u32> = m.list.iter().map(|e| e.0).collect();
            assert_eq!(keys(&t), order, "seed {seed} step {step}: order");
            assert!(t.len() <= max && t.capacity() <= max, "seed {seed}");
        }
    }
}
