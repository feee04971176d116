//! Seeded tests of slow start in the balancers ([`pick_ramped`]): a ramping
//! backend's share of picks scales by its ramp under every algorithm, and a
//! ramped pick is always eligible. The seed is printed on failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::num::NonZeroU32;

use common::Rng;
use fulcrum_core::balance::{self, pick_ramped, Backend, BackendId, PickCtx, Settings};
use fulcrum_core::config::BalanceConfig;

const SEEDS: u64 = 20;

const ALGORITHMS: [BalanceConfig; 7] = [
    BalanceConfig::RoundRobin,
    BalanceConfig::WeightedRoundRobin,
    BalanceConfig::LeastConnections,
    BalanceConfig::Random,
    BalanceConfig::PowerOfTwo,
    BalanceConfig::RingHash,
    BalanceConfig::Maglev,
];

fn backends(n: usize) -> Vec<Backend> {
    (0..n)
        .map(|i| {
            let addr = SocketAddr::from(([10, 0, 0, 1], 8000 + i as u16));
            Backend::new(addr, NonZeroU32::MIN)
        })
        .collect()
}

/// Picks of each backend over `n` ramped picks, with seeded entropy.
fn ramped_counts(cfg: BalanceConfig, pool: &[Backend], seed: u64, n: usize) -> Vec<usize> {
    let balancer = balance::build(&Settings::new(cfg), pool);
    let mut rng = Rng(seed);
    let mut scratch = Vec::new();
    let mut counts = vec![0; pool.len()];
    for _ in 0..n {
        let ctx = PickCtx {
            entropy: rng.next(),
            ..PickCtx::default()
        };
        let id = pick_ramped(balancer.as_ref(), pool, &ctx, &mut scratch).unwrap();
        counts[id.index()] += 1;
    }
    counts
}

/// One backend of three at 100 permille: it is passed over 9 times in 10,
/// so its share of 30,000 picks is a tenth of the 1/3 it would get, and the
/// others split the rest. Round robin's cursor also moves past it, which
/// makes its share exactly a tenth of a full backend's: 0.1 / 2.1.
#[test]
fn a_backend_at_a_tenth_of_its_ramp_gets_a_tenth_of_its_share() {
    let n = 30_000;
    for (cfg, expect) in [
        (BalanceConfig::RoundRobin, n as f64 * 0.1 / 2.1), // ≈ 1,429
        (BalanceConfig::Random, n as f64 / 3.0 * 0.1),     // 1,000
        (BalanceConfig::LeastConnections, n as f64 / 3.0 * 0.1),
    ] {
        for seed in 0..SEEDS / 4 {
            let pool = backends(3);
            pool[2].state.set_ramp_permille(100);
            let c = ramped_counts(cfg, &pool, seed, n);
            let (lo, hi) = ((expect * 0.85) as usize, (expect * 1.15) as usize);
            assert!(
                (lo..=hi).contains(&c[2]),
                "{cfg:?} seed {seed}: {c:?}, expected about {expect:.0}"
            );
            let rest = (n - c[2]) as f64 / 2.0;
            for &other in &c[..2] {
                assert!(
                    (other as f64 - rest).abs() < rest * 0.05,
                    "{cfg:?} seed {seed}: {c:?}"
                );
            }
            // At full ramp, a third each.
            pool[2].state.set_ramp_permille(1000);
            let c = ramped_counts(cfg, &pool, seed, n);
            for &k in &c {
                assert!((9_500..=10_500).contains(&k), "{cfg:?} seed {seed}: {c:?}");
            }
        }
    }
}

/// Random availability, ramps and exclusions: a ramped pick is always
/// eligible, and `None` exactly when nothing is.
#[test]
fn pick_ramped_never_returns_an_excluded_or_unavailable_backend() {
    for cfg in ALGORITHMS {
        for seed in 0..SEEDS * 5 {
            let mut rng = Rng(seed);
            let pool = backends(1 + rng.below(8));
            let balancer = balance::build(&Settings::new(cfg), &pool);
            let mut scratch = Vec::new();
            for step in 0..500 {
                for b in &pool {
                    if rng.chance(10) {
                        b.state.set_available(rng.chance(70));
                    }
                    if rng.chance(10) {
                        b.state
                            .set_ramp_permille([1, 100, 500, 999, 1000][rng.below(5)]);
                    }
                }
                let exclude: Vec<BackendId> = (0..pool.len())
                    .filter(|_| rng.chance(20))
                    .map(|i| BackendId(i as u32))
                    .collect();
                let ctx = PickCtx {
                    hash: Some(rng.next()),
                    exclude: &exclude,
                    entropy: rng.next(),
                    now_ns: 0,
                    load: None,
                };
                let eligible = |i: usize| {
                    pool[i].state.is_available() && !exclude.contains(&BackendId(i as u32))
                };
                let any = (0..pool.len()).any(eligible);
                match pick_ramped(balancer.as_ref(), &pool, &ctx, &mut scratch) {
                    Some(id) => assert!(
                        id.index() < pool.len() && eligible(id.index()),
                        "{cfg:?} seed {seed} step {step}: picked {id:?}"
                    ),
                    None => assert!(!any, "{cfg:?} seed {seed} step {step}: None"),
                }
            }
        }
    }
}
