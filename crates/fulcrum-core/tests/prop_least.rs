//! Seeded properties of the load-aware and random balancers over random pool
//! states. A failure names its seed; rerun one with `PROP_SEED=<n>`.
//!
//! Each case builds a pool (1–64 backends for the exact properties, up to 400
//! for the sampled ones), weights 1–10, in-flight counts 0–20, some backends
//! down and some excluded, then checks:
//! - least connections never picks a backend with more in-flight per weight
//!   than another eligible one (pools up to its exact limit, 64);
//! - every algorithm picks an eligible backend, and `None` only when none is;
//! - power of two never picks the single most loaded backend when another is
//!   eligible;
//! - least connections' ties are spread over the whole tied set.
// A test binary: a failed unwrap is a failed property, reported with its seed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::atomic::Ordering::Relaxed;

use fulcrum_core::balance::{
    Backend, BackendId, Balancer, LeastConnections, PickCtx, PowerOfTwo, Random,
};
use fulcrum_core::config::LoadConfig;

mod common;
use common::Rng;

const SEEDS: u64 = 2_000;
const PICKS: usize = 20;

fn seeds() -> Vec<u64> {
    match std::env::var("PROP_SEED") {
        Ok(s) => vec![s.parse().expect("PROP_SEED=<u64>")],
        Err(_) => (0..SEEDS).collect(),
    }
}

/// A random pool state and an exclusion list.
fn case(rng: &mut Rng, max_n: usize) -> (Vec<Backend>, Vec<BackendId>) {
    let n = 1 + rng.below(max_n);
    let pool: Vec<Backend> = (0..n)
        .map(|i| {
            let addr = SocketAddr::from(([10, 0, (i >> 8) as u8, i as u8], 80));
            let b = Backend::new(addr, NonZeroU32::new(1 + rng.below(10) as u32).unwrap());
            b.state.in_flight.store(rng.below(21) as u32, Relaxed);
            // Mostly up; sometimes a pool that is mostly down.
            let down = if n > 8 && rng.below(4) == 0 { 90 } else { 15 };
            b.state.set_available(rng.below(100) >= down);
            b
        })
        .collect();
    let exclude = (0..rng.below(4))
        .map(|_| BackendId(rng.below(n) as u32))
        .collect();
    (pool, exclude)
}

fn eligible(pool: &[Backend], exclude: &[BackendId]) -> Vec<usize> {
    (0..pool.len())
        .filter(|&i| pool[i].state.is_available() && !exclude.contains(&BackendId(i as u32)))
        .collect()
}

/// `in_flight / weight` of `pool[a]` compared with `pool[b]`, exactly.
fn per_weight_cmp(pool: &[Backend], a: usize, b: usize) -> std::cmp::Ordering {
    let f = |i: usize| u64::from(pool[i].state.in_flight.load(Relaxed));
    let w = |i: usize| u64::from(pool[i].weight.get());
    (f(a) * w(b)).cmp(&(f(b) * w(a)))
}

/// Checks the pick is eligible and `None` only when nothing is.
fn check_eligible(seed: u64, name: &str, got: Option<BackendId>, ok: &[usize]) -> Option<usize> {
    match got {
        Some(id) => {
            assert!(
                ok.contains(&id.index()),
                "seed {seed}: {name} picked ineligible {id:?}"
            );
            Some(id.index())
        }
        None => {
            assert!(
                ok.is_empty(),
                "seed {seed}: {name} gave None with {ok:?} eligible"
            );
            None
        }
    }
}

#[test]
fn least_connections_picks_a_least_loaded_eligible() {
    for seed in seeds() {
        let mut rng = Rng(seed);
        let (pool, exclude) = case(&mut rng, 64);
        let ok = eligible(&pool, &exclude);
        let lc = LeastConnections::new();
        for _ in 0..PICKS {
            let ctx = PickCtx {
                exclude: &exclude,
                entropy: rng.next(),
                ..PickCtx::default()
            };
            if let Some(i) = check_eligible(seed, "least_conn", lc.pick(&pool, &ctx), &ok) {
                for &j in &ok {
                    assert!(
                        per_weight_cmp(&pool, i, j).is_le(),
                        "seed {seed}: picked {i} over less loaded {j}"
                    );
                }
            }
        }
    }
}

#[test]
fn every_random_balancer_honours_eligibility() {
    for seed in seeds() {
        let mut rng = Rng(seed);
        let (pool, exclude) = case(&mut rng, 400);
        let ok = eligible(&pool, &exclude);
        let balancers: [(&str, Box<dyn Balancer>); 4] = [
            ("least_conn", Box::new(LeastConnections::new())),
            ("random", Box::new(Random::new(&pool))),
            ("p2c", Box::new(PowerOfTwo::new(LoadConfig::InFlight))),
            ("p2c_ewma", Box::new(PowerOfTwo::new(LoadConfig::PeakEwma))),
        ];
        for (name, b) in &balancers {
            for _ in 0..PICKS {
                let ctx = PickCtx {
                    exclude: &exclude,
                    entropy: rng.next(),
                    now_ns: rng.next() >> 20,
                    ..PickCtx::default()
                };
                check_eligible(seed, name, b.pick(&pool, &ctx), &ok);
            }
        }
    }
}

#[test]
fn power_of_two_never_picks_the_unique_most_loaded() {
    for seed in seeds() {
        let mut rng = Rng(seed);
        let (pool, exclude) = case(&mut rng, 64);
        let ok = eligible(&pool, &exclude);
        let Some(&worst) = ok.iter().max_by(|&&a, &&b| per_weight_cmp(&pool, a, b)) else {
            continue;
        };
        let unique = ok
            .iter()
            .filter(|&&j| per_weight_cmp(&pool, j, worst).is_eq())
            .count()
            == 1;
        if ok.len() < 2 || !unique {
            continue;
        }
        let p2c = PowerOfTwo::new(LoadConfig::InFlight);
        for _ in 0..PICKS {
            let ctx = PickCtx {
                exclude: &exclude,
                entropy: rng.next(),
                ..PickCtx::default()
            };
            assert_ne!(
                p2c.pick(&pool, &ctx),
                Some(BackendId(worst as u32)),
                "seed {seed}"
            );
        }
    }
}

#[test]
fn least_connections_spreads_ties() {
    for seed in seeds().into_iter().take(200) {
        let mut rng = Rng(seed);
        let (pool, exclude) = case(&mut rng, 64);
        let ok = eligible(&pool, &exclude);
        let Some(&min) = ok.iter().min_by(|&&a, &&b| per_weight_cmp(&pool, a, b)) else {
            continue;
        };
        let tied: Vec<usize> = ok
            .iter()
            .copied()
            .filter(|&j| per_weight_cmp(&pool, j, min).is_eq())
            .collect();
        let lc = LeastConnections::new();
        let mut seen = vec![0usize; pool.len()];
        let picks = 200 * tied.len();
        for _ in 0..picks {
            let ctx = PickCtx {
                exclude: &exclude,
                entropy: rng.next(),
                ..PickCtx::default()
            };
            seen[lc.pick(&pool, &ctx).unwrap().index()] += 1;
        }
        for &t in &tied {
            // Expect 200 each; 100 is over seven standard deviations away.
            assert!(seen[t] > 100, "seed {seed}: tied {tied:?} got {seen:?}");
        }
    }
}
