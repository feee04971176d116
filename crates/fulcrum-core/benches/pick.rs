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
use fulcrum_core::config::BalanceConfig;

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

criterion_group!(benches, pick, pick_retry);
criterion_main!(benches);
