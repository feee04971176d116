//! Properties of the consistent-hash balancers, `ring_hash` and `maglev`,
//! checked with proptest over pool sizes, backend ids, the backend that leaves
//! and the seed of the 100,000 keys:
//! - removing one of N backends moves at most about 1/N of the keys, and
//!   re-adding it, listed in any order, restores every key;
//! - a backend marked unavailable (no rebuild) moves only its own keys, which
//!   come back when it returns;
//! - Maglev's table is within 1% of even;
//! - bounded loads never let a pick take a backend above `ceil(c × mean)`.
//!
//! And two fixed cases: both follow weights; two tables built apart from the
//! same config agree on every key, and the order backends are listed in does
//! not change which address a key gets.
//!
//! A failing property prints its shrunk input. Run with `--nocapture` to see
//! the measured remap and spread numbers of every case.
// A test binary: a failed unwrap is a failed property.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;
use std::ops::RangeInclusive;
use std::sync::atomic::Ordering;

use fulcrum_core::balance::{self, Backend, Balancer, Maglev, PickCtx, RingHash, Settings};
use fulcrum_core::config::BalanceConfig;
use proptest::collection::btree_set;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::TestCaseError;

mod common;
use common::{proptest_config, Rng};

const KEYS: usize = 100_000;
const SIZES: [usize; 4] = [3, 5, 10, 50];
const TABLE: u32 = 65_537;
const VNODES: u32 = 160;

#[derive(Clone, Copy, Debug)]
enum Algo {
    Ring,
    Maglev,
}

impl Algo {
    fn build(self, pool: &[Backend]) -> Box<dyn Balancer> {
        match self {
            Algo::Ring => Box::new(RingHash::new(pool, VNODES, None)),
            Algo::Maglev => Box::new(Maglev::new(pool, TABLE)),
        }
    }
}

/// Backends with fresh state for the given stable ids (the id is in the address).
fn pool(ids: &[u32], weights: &[u32]) -> Vec<Backend> {
    ids.iter()
        .zip(weights)
        .map(|(&id, &w)| {
            let addr = SocketAddr::from((Ipv4Addr::from(0x0a00_0000 | id), 8080));
            Backend::new(addr, NonZeroU32::new(w).unwrap())
        })
        .collect()
}

/// The stable id a backend was made with, read back from its address.
fn id_of(b: &Backend) -> u32 {
    match b.addr {
        SocketAddr::V4(a) => u32::from(*a.ip()) & 0x00ff_ffff,
        SocketAddr::V6(_) => unreachable!(),
    }
}

fn keys(seed: u64) -> Vec<u64> {
    let mut rng = Rng(seed);
    (0..KEYS).map(|_| rng.next()).collect()
}

/// The id of the backend each key goes to (`u32::MAX` for none).
fn owners(b: &dyn Balancer, pool: &[Backend], keys: &[u64]) -> Vec<u32> {
    keys.iter()
        .map(|&h| {
            let ctx = PickCtx {
                hash: Some(h),
                ..PickCtx::default()
            };
            b.pick(pool, &ctx)
                .map_or(u32::MAX, |id| id_of(&pool[id.index()]))
        })
        .collect()
}

/// 1–`sizes` distinct stable backend ids (the id goes in the address, so 24
/// bits), in random pool order.
fn ids(sizes: RangeInclusive<usize>) -> impl Strategy<Value = Vec<u32>> {
    btree_set(0..1u32 << 24, sizes)
        .prop_flat_map(|set| Just(set.into_iter().collect::<Vec<_>>()).prop_shuffle())
}

/// A pool's ids and the same ids listed in another order.
fn ids_twice(sizes: RangeInclusive<usize>) -> impl Strategy<Value = (Vec<u32>, Vec<u32>)> {
    ids(sizes).prop_flat_map(|ids| (Just(ids.clone()), Just(ids).prop_shuffle()))
}

/// Backend `gone` leaves a pool of `ids` (the table is rebuilt without it),
/// then comes back with the pool listed as `back`.
fn remove_and_return(
    algo: Algo,
    ids: &[u32],
    back: &[u32],
    gone: usize,
    key_seed: u64,
) -> Result<(), TestCaseError> {
    let n = ids.len();
    let gone = ids[gone];
    let full = pool(ids, &vec![1; n]);
    let keys = keys(key_seed);
    let before = owners(&*algo.build(&full), &full, &keys);
    let rest: Vec<u32> = ids.iter().copied().filter(|&i| i != gone).collect();
    let smaller = pool(&rest, &vec![1; n - 1]);
    let after = owners(&*algo.build(&smaller), &smaller, &keys);
    let moved = before.iter().zip(&after).filter(|(a, b)| a != b).count();
    let own = before.iter().filter(|&&o| o == gone).count();
    let collateral = before
        .iter()
        .zip(&after)
        .filter(|(a, b)| a != b && **a != gone)
        .count();
    let share = moved as f64 / KEYS as f64;
    println!(
        "{algo:?} N={n}: removing one moves {:.3}% (1/N = {:.3}%), {:.3}% from other backends",
        share * 100.0,
        100.0 / n as f64,
        collateral as f64 * 100.0 / KEYS as f64
    );
    match algo {
        // Exactly the keys that were on it move, wherever they were.
        Algo::Ring => prop_assert_eq!((collateral, moved), (0, own), "ring N={}", n),
        // Maglev trades exact minimal disruption for even spread: a removal
        // cascades through the population order and moves a few keys between the
        // others too (0.4-0.7% typically, up to ~1.3% seen in 1,500 random pools).
        // Two backends drawing one skip (~2% of 55-backend pools) would trade
        // many more; skips are made distinct, which leaves one rare case above
        // these bounds: removing the backend whose skip the other had to move
        // (2.4% of keys between the others in the one such pool found).
        Algo::Maglev => {
            prop_assert!(collateral * 1000 <= KEYS * 15, "maglev N={n}: {collateral}");
            prop_assert!(share <= 1.1 / n as f64 + 0.015, "maglev N={n}: {share}");
        }
    }
    // A ring backend's share varies with its points (±~25% at 160 per
    // backend), and removing it moves exactly that share. (The mean over every
    // backend leaving is then 1/N exactly for the ring, and within Maglev's
    // bound above, so it needs no check of its own.)
    prop_assert!(share <= 1.35 / n as f64 + 0.01, "{algo:?} N={n}: {share}");
    // Back in, listed in another order: every key returns.
    let back = pool(back, &vec![1; n]);
    prop_assert_eq!(
        owners(&*algo.build(&back), &back, &keys),
        before,
        "{:?} N={}",
        algo,
        n
    );
    Ok(())
}

/// Backend `down` is marked unavailable with no rebuild, then returns.
fn down_and_up(algo: Algo, ids: &[u32], down: usize, key_seed: u64) -> Result<(), TestCaseError> {
    let n = ids.len();
    let pool = pool(ids, &vec![1; n]);
    let b = algo.build(&pool);
    let keys = keys(key_seed);
    let before = owners(&*b, &pool, &keys);
    let down_id = ids[down];
    pool[down].state.set_available(false);
    let during = owners(&*b, &pool, &keys);
    for (was, now) in before.iter().zip(&during) {
        if *was == down_id {
            prop_assert!(*now != down_id && *now != u32::MAX, "{algo:?} N={n}");
        } else {
            prop_assert_eq!(was, now, "{:?} N={}: a key of an up backend moved", algo, n);
        }
    }
    pool[down].state.set_available(true);
    prop_assert_eq!(owners(&*b, &pool, &keys), before, "{:?} N={}", algo, n);
    Ok(())
}

// Each case of these hashes 100,000 keys three times (a ring case costs about
// twice a Maglev one in debug builds, and its property is exact).
proptest! {
    #![proptest_config(proptest_config(32))]

    #[test]
    fn ring_removing_one_moves_its_keys_and_adding_it_back_restores(
        (ids, back) in ids_twice(2..=64),
        gone in any::<Index>(),
        key_seed in any::<u64>(),
    ) {
        remove_and_return(Algo::Ring, &ids, &back, gone.index(ids.len()), key_seed)?;
    }

    #[test]
    fn unavailable_moves_only_its_keys_and_they_return(
        algo in prop_oneof![Just(Algo::Ring), Just(Algo::Maglev)],
        ids in ids(2..=64),
        down in any::<Index>(),
        key_seed in any::<u64>(),
    ) {
        down_and_up(algo, &ids, down.index(ids.len()), key_seed)?;
    }
}

proptest! {
    #![proptest_config(proptest_config(64))]

    #[test]
    fn maglev_removing_one_moves_about_one_nth_and_adding_it_back_restores(
        (ids, back) in ids_twice(2..=64),
        gone in any::<Index>(),
        key_seed in any::<u64>(),
    ) {
        remove_and_return(Algo::Maglev, &ids, &back, gone.index(ids.len()), key_seed)?;
    }
}

/// Share of `keys` per backend, in pool order.
fn shares(b: &dyn Balancer, pool: &[Backend], keys: &[u64]) -> Vec<f64> {
    let index: HashMap<u32, usize> = pool
        .iter()
        .enumerate()
        .map(|(i, b)| (id_of(b), i))
        .collect();
    let mut counts = vec![0usize; pool.len()];
    for o in owners(b, pool, keys) {
        counts[index[&o]] += 1;
    }
    counts
        .iter()
        .map(|&c| c as f64 / keys.len() as f64)
        .collect()
}

proptest! {
    #![proptest_config(proptest_config(32))]

    /// Equal weights: every backend's share of the table within 1% of 1/N.
    #[test]
    fn maglev_spread_within_one_percent_of_even(ids in ids(1..=100)) {
        let n = ids.len();
        let pool = pool(&ids, &vec![1; n]);
        // Hash `s < M` lands on slot `s`: these picks read the table itself.
        let slots: Vec<u64> = (0..u64::from(TABLE)).collect();
        let s = shares(&Maglev::new(&pool, TABLE), &pool, &slots);
        let worst = s
            .iter()
            .map(|&x| (x * n as f64 - 1.0).abs())
            .fold(0.0, f64::max);
        println!("N={n}: worst deviation from even: maglev {:.3}%", worst * 100.0);
        prop_assert!(worst <= 0.01, "N={n}: {s:?}");
    }
}

#[test]
fn weights_are_respected() {
    let weights = [2, 1, 1, 1];
    let pool = pool(&[1, 2, 3, 4], &weights);
    let slots: Vec<u64> = (0..u64::from(TABLE)).collect();
    let maglev = shares(&Maglev::new(&pool, TABLE), &pool, &slots);
    let ring = shares(&RingHash::new(&pool, VNODES, None), &pool, &keys(11));
    println!("weights {weights:?}: maglev {maglev:.4?}, ring_hash {ring:.4?}");
    for (i, &w) in weights.iter().enumerate() {
        let want = f64::from(w) / 5.0;
        assert!((maglev[i] / want - 1.0).abs() <= 0.01, "maglev {maglev:?}");
        assert!((ring[i] / want - 1.0).abs() <= 0.15, "ring {ring:?}");
    }
}

// Each case runs 20,000 steps.
proptest! {
    #![proptest_config(proptest_config(64))]

    /// A pool of `n` under skewed traffic, with backends going down and up.
    /// At least 5 backends and `c` ≤ 2 keep the last check meaningful: with
    /// `c` at or above the number of backends up, the bound is at least the
    /// total in flight and cannot bind.
    #[test]
    fn bounded_loads_never_exceed_the_bound(
        seed in any::<u64>(),
        n in 5..=12usize,
        factor in 1.0..=2.0f64,
    ) {
        let mut rng = Rng(seed);
        let pool = pool(&(0..n as u32).collect::<Vec<_>>(), &vec![1; n]);
        let ring = RingHash::new(&pool, VNODES, Some(factor));
        let unbounded = RingHash::new(&pool, VNODES, None);
        // Skewed traffic: most requests carry one of three hot keys.
        let hot = [rng.next(), rng.next(), rng.next()];
        let mut open: Vec<usize> = Vec::new();
        let mut moved_off_hot = 0;
        for step in 0..20_000 {
            if step % 500 == 0 {
                // Now and then one backend goes down or comes back.
                let b = &pool[rng.below(n)].state;
                b.set_available(!b.is_available());
                if pool.iter().all(|b| !b.state.is_available()) {
                    b.set_available(true);
                }
            }
            if !open.is_empty() && rng.below(100) < 45 {
                let i = open.swap_remove(rng.below(open.len()));
                pool[i].state.in_flight.fetch_sub(1, Ordering::Relaxed);
                continue;
            }
            let hash = if rng.below(100) < 70 {
                hot[rng.below(3)]
            } else {
                rng.next()
            };
            let ctx = PickCtx {
                hash: Some(hash),
                ..PickCtx::default()
            };
            let Some(id) = ring.pick(&pool, &ctx) else {
                prop_assert!(pool.iter().all(|b| !b.state.is_available()), "seed {seed}");
                continue;
            };
            let picked = &pool[id.index()];
            prop_assert!(picked.state.is_available(), "seed {seed}");
            let now = picked.state.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
            open.push(id.index());
            let up = pool.iter().filter(|b| b.state.is_available());
            let total: u64 = up
                .clone()
                .map(|b| u64::from(b.state.in_flight.load(Ordering::Relaxed)))
                .sum();
            let bound = (factor * total as f64 / up.count() as f64).ceil() as u64;
            prop_assert!(
                u64::from(now) <= bound,
                "seed {seed} step {step}: {now} > {bound}"
            );
            moved_off_hot += usize::from(unbounded.pick(&pool, &ctx) != Some(id));
        }
        // The bound did real work: hot keys were sent elsewhere.
        prop_assert!(moved_off_hot > 0, "seed {seed}");
    }
}

#[test]
fn fleet_agreement_and_order_independence() {
    let keys = keys(42);
    for n in SIZES {
        let ids: Vec<u32> = (0..n as u32).map(|i| 1000 + i * 13).collect();
        let weights: Vec<u32> = (0..n as u32).map(|i| 1 + i % 3).collect();
        for cfg in [BalanceConfig::RingHash, BalanceConfig::Maglev] {
            for factor in [None, Some(1.25)] {
                let settings = Settings {
                    balance_factor: factor,
                    ..Settings::new(cfg)
                };
                // Two "processes": separate pools and separately built tables.
                let (a, b) = (pool(&ids, &weights), pool(&ids, &weights));
                let first = owners(&*balance::build(&settings, &a), &a, &keys);
                let second = owners(&*balance::build(&settings, &b), &b, &keys);
                assert_eq!(first, second, "{cfg:?} N={n}");
                // The same backends listed the other way round.
                let rev_ids: Vec<u32> = ids.iter().rev().copied().collect();
                let rev_weights: Vec<u32> = weights.iter().rev().copied().collect();
                let r = pool(&rev_ids, &rev_weights);
                assert_eq!(
                    owners(&*balance::build(&settings, &r), &r, &keys),
                    first,
                    "{cfg:?} N={n}"
                );
            }
        }
    }
}
