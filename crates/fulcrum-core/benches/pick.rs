//! Supports the decision that balancers run on the data path as written: round
//! robin as one lock-free `fetch_add`, smooth weighted round robin as an O(n)
//! pass under an uncontended `Mutex`. If WRR at 10,000 backends costs more
//! than a few microseconds, that is the signal to index it (or to cap pool
//! size) before pools that large are supported.
use std::hint::black_box;
use std::net::SocketAddr;
use std::num::NonZeroU32;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use fulcrum_core::balance::{self, Backend, BackendId, PickCtx};
use fulcrum_core::config::{BalanceConfig, LoadConfig};

fn pool(n: usize) -> Vec<Backend> {
    (0..n)
        .map(|i| {
            let addr = SocketAddr::from(([10, 0, (i >> 8) as u8, i as u8], 8080));
            // Weights 1..=4 so WRR has real work to spread.
            let weight = NonZeroU32::MIN.saturating_add((i % 4) as u32);
            Backend::new(addr, weight)
        })
        .collect()
}

fn pick(c: &mut Criterion) {
    let mut group = c.benchmark_group("pick");
    for n in [3, 100, 10_000] {
        let pool = pool(n);
        for (name, cfg) in [
            ("round_robin", BalanceConfig::RoundRobin),
            ("weighted_round_robin", BalanceConfig::WeightedRoundRobin),
        ] {
            let balancer = balance::build(&balance::Settings::new(cfg), &pool);
            let ctx = PickCtx::default();
            group.bench_with_input(BenchmarkId::new(name, n), &pool, |b, pool| {
                b.iter(|| balancer.pick(black_box(pool), black_box(&ctx)))
            });
        }
    }
    group.finish();
}

/// A retry: the first backend tried is excluded and a third of the pool is down.
fn pick_retry(c: &mut Criterion) {
    let mut group = c.benchmark_group("pick_retry");
    for n in [3, 100] {
        let pool = pool(n);
        for b in pool.iter().skip(1).step_by(3) {
            b.state.set_available(false);
        }
        let exclude = [BackendId(0)];
        let ctx = PickCtx {
            exclude: &exclude,
            ..PickCtx::default()
        };
        for (name, cfg) in [
            ("round_robin", BalanceConfig::RoundRobin),
            ("weighted_round_robin", BalanceConfig::WeightedRoundRobin),
        ] {
            let balancer = balance::build(&balance::Settings::new(cfg), &pool);
            group.bench_with_input(BenchmarkId::new(name, n), &pool, |b, pool| {
                b.iter(|| balancer.pick(black_box(pool), black_box(&ctx)))
            });
        }
    }
    group.finish();
}

/// The load-aware and random algorithms, with a fresh `entropy` per pick (as
/// the proxy supplies) and a pool with varied in-flight counts and latency
/// estimates. Supports the claim that none scans the pool at 10,000: least
/// connections samples above 64 backends, random is a binary search, P2C is
/// two draws.
fn pick_load(c: &mut Criterion) {
    let mut group = c.benchmark_group("pick");
    for n in [3, 100, 10_000] {
        let pool = pool(n);
        for (i, b) in pool.iter().enumerate() {
            b.state
                .in_flight
                .store((i * 7 % 13) as u32, std::sync::atomic::Ordering::Relaxed);
            b.state
                .observe_latency(1_000_000 + (i as u64 % 5) * 100_000, 0);
        }
        let mut p2c_ewma = balance::Settings::new(BalanceConfig::PowerOfTwo);
        p2c_ewma.load = LoadConfig::PeakEwma;
        for (name, settings) in [
            (
                "least_connections",
                balance::Settings::new(BalanceConfig::LeastConnections),
            ),
            ("random", balance::Settings::new(BalanceConfig::Random)),
            (
                "power_of_two",
                balance::Settings::new(BalanceConfig::PowerOfTwo),
            ),
            ("power_of_two_peak_ewma", p2c_ewma),
        ] {
            let balancer = balance::build(&settings, &pool);
            group.bench_with_input(BenchmarkId::new(name, n), &pool, |b, pool| {
                let mut entropy = 0u64;
                b.iter(|| {
                    entropy = entropy.wrapping_add(0x9E37_79B9_7F4A_7C15);
                    let ctx = PickCtx {
                        entropy,
                        now_ns: 1_000_000_000,
                        ..PickCtx::default()
                    };
                    balancer.pick(black_box(pool), black_box(&ctx))
                })
            });
        }
    }
    group.finish();
}

/// Consistent hashing with a different random key each pick, and the table
/// builds (off the data path, on reload) at the largest size.
fn pick_hash(c: &mut Criterion) {
    let hashes: Vec<u64> = (1..=1024u64)
        .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(29) ^ i)
        .collect();
    // `_counters`: the proxy's way, with the pool's load passed in (O(1));
    // without, the balancer sums the pool on each pick (O(n)).
    let algos = [
        ("ring_hash", BalanceConfig::RingHash, None, false),
        (
            "ring_hash_bounded",
            BalanceConfig::RingHash,
            Some(1.25),
            false,
        ),
        (
            "ring_hash_bounded_counters",
            BalanceConfig::RingHash,
            Some(1.25),
            true,
        ),
        ("maglev", BalanceConfig::Maglev, None, false),
    ];
    let mut group = c.benchmark_group("pick_hash");
    for n in [3, 100, 10_000] {
        let pool = pool(n);
        for (name, cfg, balance_factor, counters) in algos {
            let settings = balance::Settings {
                balance_factor,
                ..balance::Settings::new(cfg)
            };
            let balancer = balance::build(&settings, &pool);
            let mut k = 0;
            group.bench_with_input(BenchmarkId::new(name, n), &pool, |b, pool| {
                b.iter(|| {
                    k = (k + 1) % hashes.len();
                    let ctx = PickCtx {
                        hash: Some(hashes[k]),
                        load: counters.then_some(balance::PoolLoad {
                            in_flight: 0,
                            eligible: n as u64,
                        }),
                        ..PickCtx::default()
                    };
                    balancer.pick(black_box(pool), black_box(&ctx))
                })
            });
        }
    }
    group.finish();
    let mut group = c.benchmark_group("build_hash");
    group.sample_size(10);
    let pool = pool(10_000);
    for (name, cfg, _, _) in [algos[0], algos[3]] {
        let settings = balance::Settings::new(cfg);
        group.bench_function(BenchmarkId::new(name, 10_000), |b| {
            b.iter(|| balance::build(&settings, black_box(&pool)))
        });
    }
    group.finish();
}

criterion_group!(benches, pick, pick_retry, pick_load, pick_hash);
criterion_main!(benches);
