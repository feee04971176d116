//! Discrete-event simulation: 10 backends, one ten times slower, 100,000
//! requests. Issue 3 asks that `power_of_two` with peak EWMA send the slow one
//! far less than its share, with a p99 better than round robin's.
//!
//! Requests arrive at a fixed rate (one every 1.25 ms, 800/s). Each backend is
//! one FIFO server with exponential service times: mean 1 ms, 10 ms for the
//! slow one (capacity 9,100/s in all, but round robin gives the slow one 80/s
//! of its 100/s). On dispatch the backend's in-flight count goes up; on
//! completion it goes down and the response time (queueing + service) is fed
//! to `observe_latency` at the simulated `now`. Deterministic: one seed.
//!
//! `cargo test -p fulcrum-core --test p2c_sim -- --nocapture` prints the table.
// A test binary: a failed unwrap is a failed check.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::atomic::Ordering::Relaxed;

use fulcrum_core::balance::{self, Backend, PickCtx, Settings};
use fulcrum_core::config::{BalanceConfig, LoadConfig};

mod common;
use common::Rng;

const BACKENDS: usize = 10;
const SLOW: usize = 9;
const REQUESTS: usize = 100_000;
const MS: u64 = 1_000_000;
const ARRIVAL_EVERY_NS: u64 = 1_250_000;
const SEED: u64 = 0x5eed;

/// What one run measured.
struct Outcome {
    slow_share: f64,
    p50_ms: f64,
    p99_ms: f64,
}

fn simulate(settings: Settings) -> Outcome {
    let pool: Vec<Backend> = (0..BACKENDS)
        .map(|i| Backend::new(SocketAddr::from(([10, 0, 0, i as u8], 80)), NonZeroU32::MIN))
        .collect();
    let balancer = balance::build(&settings, &pool);
    let mut rng = Rng(SEED);
    // When each backend's server is next free (FIFO: finish times are known
    // at dispatch).
    let mut free_at = [0u64; BACKENDS];
    // Completions in time order: (finish, backend, arrival).
    let mut done: BinaryHeap<Reverse<(u64, usize, u64)>> = BinaryHeap::new();
    let mut latencies = Vec::with_capacity(REQUESTS);
    let mut sent = [0usize; BACKENDS];

    let complete = |(finish, b, arrival): (u64, usize, u64), latencies: &mut Vec<u64>| {
        pool[b].state.in_flight.fetch_sub(1, Relaxed);
        pool[b].state.observe_latency(finish - arrival, finish);
        latencies.push(finish - arrival);
    };

    for k in 0..REQUESTS {
        let now = k as u64 * ARRIVAL_EVERY_NS;
        while let Some(&Reverse(ev)) = done.peek() {
            if ev.0 > now {
                break;
            }
            done.pop();
            complete(ev, &mut latencies);
        }
        let ctx = PickCtx {
            entropy: rng.next(),
            now_ns: now,
            ..PickCtx::default()
        };
        let b = balancer.pick(&pool, &ctx).unwrap().index();
        sent[b] += 1;
        pool[b].state.in_flight.fetch_add(1, Relaxed);
        let mean = if b == SLOW { 10 * MS } else { MS };
        let finish = now.max(free_at[b]) + rng.exp(mean);
        free_at[b] = finish;
        done.push(Reverse((finish, b, now)));
    }
    while let Some(Reverse(ev)) = done.pop() {
        complete(ev, &mut latencies);
    }

    latencies.sort_unstable();
    let at = |q: usize| latencies[latencies.len() * q / 100] as f64 / MS as f64;
    Outcome {
        slow_share: sent[SLOW] as f64 / REQUESTS as f64,
        p50_ms: at(50),
        p99_ms: at(99),
    }
}

#[test]
fn p2c_peak_ewma_avoids_the_slow_backend() {
    let mut p2c = Settings::new(BalanceConfig::PowerOfTwo);
    let runs = [
        ("round_robin", Settings::new(BalanceConfig::RoundRobin)),
        (
            "least_connections",
            Settings::new(BalanceConfig::LeastConnections),
        ),
        ("power_of_two in_flight", p2c),
        ("power_of_two peak_ewma", {
            p2c.load = LoadConfig::PeakEwma;
            p2c
        }),
    ];
    println!("10 backends (one 10x slower), {REQUESTS} requests at 800/s, seed {SEED:#x}");
    println!(
        "{:<24} {:>10} {:>9} {:>9}",
        "algorithm", "slow share", "p50 ms", "p99 ms"
    );
    let mut results = Vec::new();
    for (name, settings) in runs {
        let o = simulate(settings);
        println!(
            "{name:<24} {:>9.2}% {:>9.2} {:>9.2}",
            o.slow_share * 100.0,
            o.p50_ms,
            o.p99_ms
        );
        results.push(o);
    }
    let (rr, ewma) = (&results[0], &results[3]);
    assert!(ewma.slow_share < 0.05, "slow share {}", ewma.slow_share);
    assert!(
        ewma.p99_ms < rr.p99_ms,
        "p99 {} vs rr {}",
        ewma.p99_ms,
        rr.p99_ms
    );
}
