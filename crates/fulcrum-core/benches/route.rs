//! Supports the decision to index host routes in hash maps (exact hosts, and
//! wildcard suffixes probed once per label) instead of scanning routes in
//! order: `RouteTable::find` should cost about the same with 10 or 10,000 host
//! routes, for a hit, a wildcard hit, a mixed-case host and a miss that falls
//! through to the catch-all.
//!
//! `route_find_predicates` supports compiling `path_regex` and `~regex` values
//! once at build and filtering the host's candidates in order: 1,000 host
//! routes of which a third also need a header and a third a path regex, plus
//! header-only routes without a host that every request must try.
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use std::collections::BTreeMap;

use fulcrum_core::config::{MethodsConfig, RouteConfig};
use fulcrum_core::route::{Fields, NoHeaders, Request, RouteTable};

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
                headers: &NoHeaders,
            };
            assert!(table.find(&req).is_some(), "{name} {n}");
            group.bench_with_input(BenchmarkId::new(name, n), &req, |b, req| {
                b.iter(|| table.find(black_box(req)))
            });
        }
    }
    group.finish();
}

/// `n` host routes: a third with a header predicate (every other one a regex),
/// a third with a path regex and a method; then, every hundredth position, a
/// route without a host that needs a header; then a catch-all.
fn predicate_table(n: usize) -> RouteTable {
    let mut routes = Vec::new();
    for i in 0..n {
        let mut r = RouteConfig {
            host: Some(format!("app{i}.example.com")),
            pool: "app".into(),
            ..RouteConfig::default()
        };
        match i % 3 {
            0 => {
                let value = if i % 2 == 0 {
                    format!("t{i}")
                } else {
                    format!("~t{i}-(eu|us)")
                };
                r.header = BTreeMap::from([("X-Tenant".to_owned(), value)]);
            }
            1 => {
                r.path_regex = Some(format!(r"/api/v\d+/app{i}/\d+"));
                r.method = Some(MethodsConfig(vec!["GET".into(), "HEAD".into()]));
            }
            _ => {}
        }
        routes.push(r);
        if i % 100 == 99 {
            routes.push(RouteConfig {
                header: BTreeMap::from([("x-canary".to_owned(), format!("~c{i}"))]),
                cookie: BTreeMap::from([("beta".to_owned(), "yes".to_owned())]),
                pool: "canary".into(),
                ..RouteConfig::default()
            });
        }
    }
    routes.push(RouteConfig {
        pool: "default".into(),
        ..RouteConfig::default()
    });
    let pools = ["app", "canary", "default"].map(String::from);
    RouteTable::build(&routes, "public", &pools)
}

fn find_predicates(c: &mut Criterion) {
    let mut group = c.benchmark_group("route_find_predicates");
    let n = 1_000;
    let table = predicate_table(n);
    // Positions near the end of the config: `n - 7` and `n - 4` have a header
    // predicate (regex, exact), `n - 3` a path regex, `n - 1` none.
    let regex_path = format!("/api/v2/app{}/42?page=2", n - 3);
    let cases = [
        ("header_regex_hit", n - 7, "/", format!("t{}-eu", n - 7), 0),
        ("header_exact_hit", n - 4, "/", format!("t{}", n - 4), 0),
        (
            "path_regex_hit",
            n - 3,
            regex_path.as_str(),
            String::new(),
            0,
        ),
        // The header does not match: every host-less canary route is tried
        // (and fails), then the catch-all.
        ("predicate_miss", n - 4, "/", "t0".to_owned(), 2),
        ("unknown_host", n, "/", String::new(), 2),
    ];
    for (name, i, path, tenant, pool) in &cases {
        let host = format!("app{i}.example.com");
        let fields: [(&[u8], &[u8]); 4] = [
            (b"user-agent", b"bench/1.0"),
            (b"accept", b"*/*"),
            (b"cookie", b"session=abc; theme=dark"),
            (b"X-Tenant", tenant.as_bytes()),
        ];
        let headers = Fields(fields.iter().copied());
        let req = Request {
            method: "GET",
            host: Some(&host),
            path,
            headers: &headers,
        };
        assert_eq!(table.find(&req).map(|r| r.pool), Some(*pool), "{name}");
        group.bench_with_input(BenchmarkId::new(*name, n), &req, |b, req| {
            b.iter(|| table.find(black_box(req)))
        });
    }
    group.finish();
}

criterion_group!(benches, find, find_predicates);
criterion_main!(benches);
