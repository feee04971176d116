//! Supports the decision to index host routes in hash maps (exact hosts, and
//! wildcard suffixes probed once per label) instead of scanning routes in
//! order: `RouteTable::find` should cost about the same with 10 or 10,000 host
//! routes, for a hit, a wildcard hit, a mixed-case host and a miss that falls
//! through to the catch-all.
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use fulcrum_core::config::RouteConfig;
use fulcrum_core::route::{Request, RouteTable};

/// `n` exact host routes, a wildcard every tenth, then a path route and a catch-all.
fn table(n: usize) -> RouteTable {
    let mut routes: Vec<RouteConfig> = (0..n)
        .map(|i| RouteConfig {
            host: Some(if i % 10 == 9 {
                format!("*.tenant{i}.example.com")
            } else {
                format!("app{i}.example.com")
            }),
            pool: "app".into(),
            ..RouteConfig::default()
        })
        .collect();
    routes.push(RouteConfig {
        path_prefix: Some("/static/".into()),
        pool: "static".into(),
        ..RouteConfig::default()
    });
    routes.push(RouteConfig {
        pool: "default".into(),
        ..RouteConfig::default()
    });
    let pools = ["app", "static", "default"].map(String::from);
    RouteTable::build(&routes, "public", &pools)
}

fn find(c: &mut Criterion) {
    let mut group = c.benchmark_group("route_find");
    for n in [10, 1_000, 10_000] {
        let table = table(n);
        let last = n - 2; // an exact host near the end of the config
        let hit = format!("app{last}.example.com:8080");
        let upper = hit.to_ascii_uppercase();
        let wild = format!("api.eu.tenant{}.example.com", n - 1);
        let cases = [
            ("hit", hit.as_str()),
            ("hit_uppercase", upper.as_str()),
            ("wildcard_hit", wild.as_str()),
            ("miss", "unknown.example.org"),
        ];
        for (name, host) in cases {
            let req = Request {
                method: "GET",
                host: Some(host),
                path: "/api/v1/users?page=2",
            };
            assert!(table.find(&req).is_some(), "{name} {n}");
            group.bench_with_input(BenchmarkId::new(name, n), &req, |b, req| {
                b.iter(|| table.find(black_box(req)))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, find);
criterion_main!(benches);
