//! Properties of the load-aware and random balancers over random pool states:
//! pools of 1–64 backends for the exact properties, up to 400 for the sampled
//! ones, weights 1–10, in-flight counts 0–20, some backends down and some
//! excluded. Checked with proptest:
//! - least connections never picks a backend with more in-flight per weight
//!   than another eligible one (pools up to its exact limit, 64).
//!
//! Seeded (a failure names its seed; rerun one with `PROP_SEED=<n>`):
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
use proptest::collection::vec;
use proptest::prelude::*;

mod common;
use common::{proptest_config, Rng};

const SEEDS: u64 = 2_000;
const PICKS: usize = 20;

fn seeds() -> Vec<u64> {
    match std::env::var("PROP_SEED") {
        Ok(s) => vec![s.parse().expect("PROP_SEED=<u64>")],
        Err(_) => (0..SEEDS).collect(),
    }
}

/// One backend's weight, in-flight count and availability.
type Spec = (u32, u32, bool);

/// The pool and exclusion list that `backends` and `exclude` describe.
fn build(backends: &[Spec], exclude: &[u32]) -> (Vec<Backend>, Vec<BackendId>) {
    let pool = backends
        .iter()
        .enumerate()
        .map(|(i, &(weight, in_flight, up))| {
            let addr = SocketAddr::from(([10, 0, (i >> 8) as u8, i as u8], 80));
            let b = Backend::new(addr, NonZeroU32::new(weight).unwrap());
            b.state.in_flight.store(in_flight, Relaxed);
            b.state.set_available(up);
            b
        })
        .collect();
    (pool, exclude.iter().map(|&i| BackendId(i)).collect())
}

/// A random pool state and an exclusion list.
fn case(rng: &mut Rng, max_n: usize) -> (Vec<Backend>, Vec<BackendId>) {
    let n = 1 + rng.below(max_n);
    let backends: Vec<Spec> = (0..n)
        .map(|_| {
            let weight = 1 + rng.below(10) as u32;
            let in_flight = rng.below(21) as u32;
            // Mostly up; sometimes a pool that is mostly down.
            let down = if n > 8 && rng.below(4) == 0 { 90 } else { 15 };
            (weight, in_flight, rng.below(100) >= down)
        })
        .collect();
    let exclude: Vec<u32> = (0..rng.below(4)).map(|_| rng.below(n) as u32).collect();
    build(&backends, &exclude)
}

/// Like [`case`], as a proptest strategy: 1–`max_n` backends, each up
/// with a probability the pool draws (mostly up, or one pool in four mostly
/// down), and 0–3 exclusions.
fn pool_state(max_n: usize) -> impl Strategy<Value = (Vec<Spec>, Vec<u32>)> {
    (1..=max_n, prop_oneof![3 => Just(0.85), 1 => Just(0.1)]).prop_flat_map(|(n, up)| {
        (
            vec((1..=10u32, 0..=20u32, prop::bool::weighted(up)), n),
            vec(0..n as u32, 0..4),
        )
    })
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

/// A backend's load as `in_flight/weight`, for failure messages.
fn load(b: &Backend) -> String {
    format!("{}/{}", b.state.in_flight.load(Relaxed), b.weight)
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

proptest! {
    #![proptest_config(proptest_config(2_000))]

    /// Pools of at most 64 backends only: least connections scans those
    /// exactly, while larger pools take the least loaded of 8 sampled
    /// eligible backends by design (see `balance/least_conn.rs`), which is not
    /// always the least loaded of all.
    #[test]
    fn least_connections_picks_a_least_loaded_eligible(
        (backends, exclude) in pool_state(64),
        entropy in vec(any::<u64>(), PICKS),
    ) {
        let (pool, exclude) = build(&backends, &exclude);
        let ok = eligible(&pool, &exclude);
        let lc = LeastConnections::new();
        for entropy in entropy {
            let ctx = PickCtx {
                exclude: &exclude,
                entropy,
                ..PickCtx::default()
            };
            match lc.pick(&pool, &ctx) {
                Some(id) => {
                    let i = id.index();
                    prop_assert!(ok.contains(&i), "least_conn picked ineligible {id:?}");
                    for &j in &ok {
                        prop_assert!(
                            per_weight_cmp(&pool, i, j).is_le(),
                            "picked {i} ({}) over less loaded {j} ({})",
                            load(&pool[i]),
                            load(&pool[j])
                        );
                    }
                }
                None => prop_assert!(ok.is_empty(), "least_conn gave None with {ok:?} eligible"),
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
