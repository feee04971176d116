//! The admin listener: Prometheus metrics, the JSON API (status, pools, drain,
//! undrain, weight, reload), the bearer token, and the loopback rule.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Response;

use crate::support::*;

const TOKEN: &str = "test-token-0123456789";

/// `[admin]` on a free loopback port, with `extra` keys: goes after the top-level keys.
fn admin_section(extra: &str) -> String {
    format!("[admin]\naddress = \"127.0.0.1:0\"\n{extra}\n")
}

/// Sends an admin request; returns status and body.
async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, String) {
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let res = client()
        .request(req.body(Full::new(Bytes::from(body.to_owned()))).unwrap())
        .await
        .unwrap();
    let status = res.status().as_u16();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

async fn json_call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, serde_json::Value) {
    let (status, text) = call(addr, method, path, token, body).await;
    let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    (status, v)
}

/// The value of the sample `name` whose labels include every `labels` pair.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .find(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Scrapes until `name{labels}` satisfies `ok`; returns the scrape.
async fn wait_sample(
    addr: SocketAddr,
    token: Option<&str>,
    name: &str,
    labels: &[(&str, &str)],
    ok: impl Fn(f64) -> bool,
) -> String {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let (status, text) = call(addr, "GET", "/metrics", token, "").await;
        assert_eq!(status, 200, "{text}");
        if sample(&text, name, labels).is_some_and(&ok) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{name}{labels:?} never matched; last scrape:\n{text}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// A backend answering `500` to everything.
async fn failing(name: &str) -> Backend {
    Backend::with(
        name,
        false,
        Arc::new(|_: &str, _| {
            Response::builder()
                .status(500)
                .body(Full::new(Bytes::from_static(b"boom")))
                .unwrap()
        }),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_by_class_with_histograms() {
    within(async {
        let ok = Backend::start("ok").await;
        let bad = failing("bad").await;
        let config = format!(
            "{1}{0}",
            admin_section(""),
            one_pool("round_robin", &[quoted(&ok), quoted(&bad)], "")
        );
        let f = Fulcrum::start(&config);
        let admin = f.admin_addr().await;
        let (ok_s, bad_s) = (ok.addr.to_string(), bad.addr.to_string());
        let c = client();
        for _ in 0..10 {
            get(&c, &format!("{}/", f.url("public"))).await;
        }
        wait_sample(
            admin,
            None,
            "fulcrum_backend_requests_total",
            &[("backend", &ok_s), ("class", "2xx")],
            |v| v == 5.0,
        )
        .await;
        let text = wait_sample(
            admin,
            None,
            "fulcrum_backend_requests_total",
            &[("backend", &bad_s), ("class", "5xx")],
            |v| v == 5.0,
        )
        .await;
        let errors = |b: &str, kind: &str| {
            sample(
                &text,
                "fulcrum_backend_errors_total",
                &[("pool", "p"), ("backend", b), ("kind", kind)],
            )
        };
        assert_eq!(errors(&bad_s, "5xx"), Some(5.0));
        assert_eq!(errors(&ok_s, "5xx"), Some(0.0));
        assert_eq!(errors(&ok_s, "connect"), Some(0.0));
        assert_eq!(
            sample(
                &text,
                "fulcrum_backend_requests_total",
                &[("backend", &ok_s), ("class", "5xx")]
            ),
            Some(0.0)
        );
        // A histogram with the +Inf bucket counting every request, and a finite one.
        assert_eq!(
            sample(
                &text,
                "fulcrum_backend_request_duration_seconds_bucket",
                &[("backend", &ok_s), ("le", "+Inf")]
            ),
            Some(5.0)
        );
        assert!(sample(
            &text,
            "fulcrum_backend_request_duration_seconds_bucket",
            &[("backend", &ok_s), ("le", "0.0001")]
        )
        .is_some());
        assert_eq!(
            sample(
                &text,
                "fulcrum_backend_request_duration_seconds_count",
                &[("backend", &ok_s)]
            ),
            Some(5.0)
        );
        assert!(
            sample(
                &text,
                "fulcrum_backend_response_body_bytes_total",
                &[("backend", &ok_s)]
            ) >= Some(10.0)
        );
        assert_eq!(
            sample(
                &text,
                "fulcrum_backend_state",
                &[("backend", &ok_s), ("state", "up")]
            ),
            Some(1.0)
        );
        assert_eq!(
            sample(&text, "fulcrum_pool_in_flight_requests", &[("pool", "p")]),
            Some(0.0)
        );
        assert_eq!(sample(&text, "fulcrum_config_generation", &[]), Some(1.0));
        assert!(sample(&text, "fulcrum_process_resident_memory_bytes", &[]) > Some(0.0));
        assert!(sample(&text, "fulcrum_process_open_fds", &[]) > Some(0.0));
        // The build, as `fulcrum --version` names it.
        let version = std::process::Command::new(bin())
            .arg("--version")
            .output()
            .unwrap();
        let version = String::from_utf8(version.stdout).unwrap();
        let (_, commit) = version.split_once("(commit ").unwrap();
        let (commit, date) = commit.split_once(", built ").unwrap();
        let info = sample(
            &text,
            "fulcrum_build_info",
            &[
                ("commit", commit),
                ("date", date.trim().trim_end_matches(')')),
            ],
        );
        assert_eq!(info, Some(1.0), "{version} {text}");
        assert!(text.trim_end().ends_with("# EOF"));

        // More requests: the counters increase.
        for _ in 0..4 {
            get(&c, &format!("{}/", f.url("public"))).await;
        }
        wait_sample(
            admin,
            None,
            "fulcrum_backend_requests_total",
            &[("backend", &ok_s), ("class", "2xx")],
            |v| v == 7.0,
        )
        .await;

        // The pools API sees the same, with last-minute figures.
        let (status, pool) = json_call(admin, "GET", "/api/pools/p", None, "").await;
        assert_eq!(status, 200, "{pool}");
        let by_addr: HashMap<String, &serde_json::Value> = pool["backends"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| (b["address"].as_str().unwrap().to_owned(), b))
            .collect();
        let okb = by_addr[&ok_s];
        assert_eq!(okb["state"], "up");
        assert_eq!(okb["totals"]["requests"], 7);
        assert_eq!(okb["last_minute"]["requests"], 7);
        assert_eq!(okb["last_minute"]["error_rate"], 0.0);
        assert!(okb["last_minute"]["p95_ms"].as_f64().unwrap() > 0.0);
        assert_eq!(okb["weight"]["configured"], 1);
        let badb = by_addr[&bad_s];
        assert!(badb["totals"]["requests"].as_u64().unwrap() >= 5);
        assert_eq!(badb["last_minute"]["error_rate"], 1.0);
        assert!(badb["totals"]["errors_by_kind"]["5xx"].as_u64().unwrap() >= 5);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_is_required_when_set() {
    within(async {
        let a = Backend::start("a").await;
        let config = format!(
            "{1}{0}",
            admin_section(&format!("token = \"{TOKEN}\"")),
            one_pool("round_robin", &[quoted(&a)], "")
        );
        let f = Fulcrum::start(&config);
        let admin = f.admin_addr().await;
        assert!(admin.ip().is_loopback());
        let (status, body) = call(admin, "GET", "/metrics", None, "").await;
        assert_eq!(status, 401, "{body}");
        assert!(body.contains("\"error\""), "{body}");
        let (status, _) = call(admin, "GET", "/metrics", Some("test-token-0123456788"), "").await;
        assert_eq!(status, 401);
        let (status, _) = call(admin, "POST", "/api/reload", Some("short"), "").await;
        assert_eq!(status, 401);
        let (status, text) = call(admin, "GET", "/metrics", Some(TOKEN), "").await;
        assert_eq!(status, 200);
        assert!(text.contains("fulcrum_backend_requests_total"));
        let (status, v) = json_call(admin, "GET", "/api/status", Some(TOKEN), "").await;
        assert_eq!(status, 200);
        assert_eq!(v["generation"], 1);
        assert_eq!(v["listeners"][0]["name"], "public");
        assert_eq!(
            v["listeners"][0]["address"],
            f.addr("public").to_string().as_str()
        );
        assert!(v["version"].is_string());
        assert!(
            v["commit"].is_string() && v["build_date"].is_string(),
            "{v}"
        );
        // Unknown paths and wrong methods, behind the same check.
        let (status, v) = json_call(admin, "GET", "/api/nothing", Some(TOKEN), "").await;
        assert_eq!(status, 404, "{v}");
        let (status, v) = json_call(admin, "DELETE", "/api/status", Some(TOKEN), "").await;
        assert_eq!(status, 405, "{v}");
        assert!(v["error"].as_str().unwrap().contains("GET"), "{v}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_and_undrain_through_the_api() {
    within(async {
        let a = Backend::start("a").await;
        let b = Backend::start("b").await;
        let config = format!(
            "{1}{0}",
            admin_section(""),
            one_pool("round_robin", &[quoted(&a), quoted(&b)], "")
        );
        let f = Fulcrum::start(&config);
        let admin = f.admin_addr().await;
        let url = format!("{}/", f.url("public"));
        let c = client();
        for _ in 0..4 {
            assert_eq!(get(&c, &url).await.0, 200);
        }
        assert_eq!(b.requests(), 2);

        let skip = f.log.len();
        let path = format!("/api/pools/p/backends/{}/drain?wait=true", b.addr);
        let (status, v) = json_call(admin, "POST", &path, None, "").await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["state"], "draining");
        assert_eq!(v["outcome"], "released", "{v}");
        f.wait_line(&format!("backend={} from=up to=draining", b.addr), skip)
            .await;
        for _ in 0..10 {
            let (status, name, _) = get(&c, &url).await;
            assert_eq!((status, name.as_str()), (200, "a"));
        }
        assert_eq!(b.requests(), 2, "a drained backend got new requests");
        let (_, pool) = json_call(admin, "GET", "/api/pools/p", None, "").await;
        let drained = pool["backends"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["address"] == b.addr.to_string().as_str())
            .unwrap();
        assert_eq!(drained["state"], "draining");

        let skip = f.log.len();
        let path = format!("/api/pools/p/backends/{}/undrain", b.addr);
        let (status, v) = json_call(admin, "POST", &path, None, "").await;
        assert_eq!(status, 200, "{v}");
        f.wait_line(&format!("backend={} from=draining to=up", b.addr), skip)
            .await;
        for _ in 0..10 {
            assert_eq!(get(&c, &url).await.0, 200);
        }
        assert!(b.requests() > 2, "undrained backend got nothing");

        // Bad input names what was wrong.
        let (status, v) = json_call(
            admin,
            "POST",
            "/api/pools/nope/backends/1.2.3.4:5/drain",
            None,
            "",
        )
        .await;
        assert_eq!(status, 404);
        assert!(v["error"].as_str().unwrap().contains("nope"), "{v}");
        let path = "/api/pools/p/backends/10.9.9.9:1/drain";
        let (status, v) = json_call(admin, "POST", path, None, "").await;
        assert_eq!(status, 404);
        assert!(v["error"].as_str().unwrap().contains("10.9.9.9:1"), "{v}");
        let path = format!("/api/pools/p/backends/{}/drain?wait=soon", b.addr);
        let (status, v) = json_call(admin, "POST", &path, None, "").await;
        assert_eq!(status, 400);
        assert!(v["error"].as_str().unwrap().starts_with("wait:"), "{v}");
        let path = format!("/api/pools/p/backends/{}/drain", b.addr);
        let (status, _) = json_call(admin, "GET", &path, None, "").await;
        assert_eq!(status, 405);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weight_change_shifts_the_share() {
    within(async {
        let a = Backend::start("a").await;
        let b = Backend::start("b").await;
        let config = format!(
            "{1}{0}",
            admin_section(""),
            one_pool("weighted_round_robin", &[quoted(&a), quoted(&b)], "")
        );
        let f = Fulcrum::start(&config);
        let admin = f.admin_addr().await;
        let url = format!("{}/", f.url("public"));
        let c = client();
        let share = |n: usize| {
            let (c, url) = (c.clone(), url.clone());
            async move {
                let mut count: HashMap<String, usize> = HashMap::new();
                for _ in 0..n {
                    let (status, name, _) = get(&c, &url).await;
                    assert_eq!(status, 200);
                    *count.entry(name).or_default() += 1;
                }
                count
            }
        };
        let before = share(100).await;
        assert_eq!((before["a"], before["b"]), (50, 50));

        let path = format!("/api/pools/p/backends/{}/weight", a.addr);
        for (body, why) in [
            (r#"{"weight": 0}"#, "weight:"),
            (r#"{"weight": 1000001}"#, "weight:"),
            (r#"{"weight": "4"}"#, "body:"),
            (r#"{"wait": 4}"#, "body:"),
            ("4", "body:"),
        ] {
            let (status, v) = json_call(admin, "PUT", &path, None, body).await;
            assert_eq!(status, 400, "{body}: {v}");
            assert!(v["error"].as_str().unwrap().starts_with(why), "{body}: {v}");
        }
        let (status, v) = json_call(admin, "PUT", &path, None, r#"{"weight": 4}"#).await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["generation"], 2);
        let after = share(100).await;
        assert_eq!((after["a"], after["b"]), (80, 20), "{after:?}");

        let (_, pool) = json_call(admin, "GET", "/api/pools/p", None, "").await;
        let wa = &pool["backends"][0]["weight"];
        assert_eq!(
            (wa["configured"].clone(), wa["override"].clone()),
            (1.into(), 4.into()),
            "{pool}"
        );
        let text = wait_sample(
            admin,
            None,
            "fulcrum_backend_weight",
            &[("backend", &a.addr.to_string())],
            |v| v == 4.0,
        )
        .await;
        assert_eq!(
            sample(
                &text,
                "fulcrum_backend_effective_weight",
                &[("backend", &a.addr.to_string())]
            ),
            Some(4.0)
        );

        // A reload keeps the override while the backend stays in the config.
        let (status, v) = json_call(admin, "POST", "/api/reload", None, "").await;
        assert_eq!((status, v["generation"].clone()), (200, 3.into()), "{v}");
        let again = share(50).await;
        assert_eq!((again["a"], again["b"]), (40, 10), "{again:?}");

        // Back to the configured weight.
        let (status, v) = json_call(admin, "DELETE", &path, None, "").await;
        assert_eq!(status, 200, "{v}");
        let reset = share(100).await;
        assert_eq!((reset["a"], reset["b"]), (50, 50), "{reset:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_through_the_api_reports_errors_and_keeps_serving() {
    within(async {
        let a = Backend::start("a").await;
        let good = format!(
            "{1}{0}",
            admin_section(""),
            one_pool("round_robin", &[quoted(&a)], "")
        );
        let f = Fulcrum::start(&good);
        let admin = f.admin_addr().await;
        let url = format!("{}/", f.url("public"));
        let bad = good.replace(
            "balance = \"round_robin\"",
            "balance = \"round_robin\"\nmax_idle_per_backend = \"x\"\nweight = 3",
        );
        std::fs::write(&f.config, &bad).unwrap();
        let (status, v) = json_call(admin, "POST", "/api/reload", None, "").await;
        assert_eq!(status, 422, "{v}");
        let errors: Vec<&str> = v["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e.as_str().unwrap())
            .collect();
        assert!(!errors.is_empty(), "{v}");
        assert!(
            errors
                .iter()
                .all(|e| e.contains("fulcrum.toml:") && e.contains("pools.p.")),
            "{errors:?}"
        );
        assert!(
            errors.iter().any(|e| e.contains("pools.p.weight")),
            "{errors:?}"
        );
        f.wait_line("reload failed", 0).await;
        let (status, name, _) = get(&client(), &url).await;
        assert_eq!(
            (status, name.as_str()),
            (200, "a"),
            "old config stopped serving"
        );

        std::fs::write(&f.config, &good).unwrap();
        let (status, v) = json_call(admin, "POST", "/api/reload", None, "").await;
        assert_eq!((status, v["generation"].clone()), (200, 2.into()), "{v}");
        let (_, text) = call(admin, "GET", "/metrics", None, "").await;
        assert_eq!(
            sample(&text, "fulcrum_config_reloads_total", &[("result", "ok")]),
            Some(1.0)
        );
        assert_eq!(
            sample(
                &text,
                "fulcrum_config_reloads_total",
                &[("result", "failed")]
            ),
            Some(1.0)
        );
        assert_eq!(sample(&text, "fulcrum_config_generation", &[]), Some(2.0));
        assert!(text.contains("fulcrum_config_info{sha256=\""), "{text}");
        let (status, _) = call(admin, "GET", "/api/reload", None, "").await;
        assert_eq!(status, 405);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_hash_keys_and_health_checks_are_counted() {
    within(async {
        let a = Backend::start("a").await;
        let b = Backend::start("b").await;
        let config = format!(
            "{1}{0}",
            admin_section(""),
            one_pool(
                "ring_hash",
                &[quoted(&a), quoted(&b)],
                "hash_key = \"header:x-user\"\nhealth = { path = \"/healthz\", interval = \"100ms\", timeout = \"100ms\" }"
            )
        );
        let f = Fulcrum::start(&config);
        let admin = f.admin_addr().await;
        let a_s = a.addr.to_string();
        wait_sample(
            admin,
            None,
            "fulcrum_backend_health_checks_total",
            &[("backend", &a_s), ("result", "pass")],
            |v| v >= 2.0,
        )
        .await;
        f.wait_line(&format!("backend={a_s} from=unknown to=up"), 0).await;
        f.wait_line(&format!("backend={} from=unknown to=up", b.addr), 0).await;
        let c = client();
        let url = format!("{}/", f.url("public"));
        for _ in 0..3 {
            assert_eq!(send_with(&c, "GET", &url, &[("x-user", "alice")]).await.0, 200);
        }
        for _ in 0..5 {
            assert_eq!(send_with(&c, "GET", &url, &[]).await.0, 200);
        }
        let text = wait_sample(
            admin,
            None,
            "fulcrum_pool_hash_key_missing_total",
            &[("pool", "p")],
            |v| v >= 5.0,
        )
        .await;
        assert_eq!(
            sample(&text, "fulcrum_pool_hash_key_missing_total", &[("pool", "p")]),
            Some(5.0)
        );
        assert_eq!(
            sample(&text, "fulcrum_backend_health_checks_total", &[("backend", &a_s), ("result", "fail")]),
            Some(0.0)
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_address_rules() {
    within(async {
        let dir = TempDir::new();
        let base = one_pool("round_robin", &["\"127.0.0.1:9\"".to_owned()], "");
        let path = dir.path("public.toml");
        std::fs::write(&path, format!("{base}[admin]\naddress = \"0.0.0.0:9900\"\n")).unwrap();
        let (code, out) = check(&path);
        assert_eq!(code, 1, "{out}");
        assert!(
            out.contains("admin.address: admin must bind to a loopback address unless allow_public = true"),
            "{out}"
        );
        std::fs::write(
            &path,
            format!("{base}[admin]\naddress = \"0.0.0.0:9900\"\nallow_public = true\ntoken = \"{TOKEN}\"\n"),
        )
        .unwrap();
        assert_eq!(check(&path).0, 0);
        std::fs::write(&path, format!("{base}[admin]\naddress = \"127.0.0.1:0\"\ntoken = \"short\"\n")).unwrap();
        let (code, out) = check(&path);
        assert_eq!(code, 1);
        assert!(out.contains("admin.token: must be at least 16 bytes"), "{out}");

        // An admin address already taken stops the start, naming admin.address.
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        std::fs::write(&path, format!("{base}[admin]\naddress = \"127.0.0.1:{port}\"\n")).unwrap();
        let out = tokio::task::spawn_blocking(move || {
            std::process::Command::new(bin())
                .args(["run", "--config"])
                .arg(&path)
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(&format!("admin.address: cannot bind 127.0.0.1:{port}")), "{stderr}");
        drop(taken);
    })
    .await;
}

/// Memory and scrape size with 10,000 backends (README "Admin API and metrics").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_backends_stay_bounded() {
    within(async {
        let one = |n: usize| {
            let list: Vec<String> = (0..n)
                .map(|i| {
                    format!(
                        "\"127.0.{}.{}:{}\"",
                        1 + i / 50_000,
                        1 + (i / 250) % 200,
                        1000 + i % 250
                    )
                })
                .collect();
            format!(
                "{}{}",
                one_pool("round_robin", &list, ""),
                admin_section("")
            )
        };
        let small = Fulcrum::start(&one(1));
        let small_admin = small.admin_addr().await;
        call(small_admin, "GET", "/metrics", None, "").await;
        let base = small.rss_kib();
        let big = Fulcrum::start(&one(10_000));
        let admin = big.admin_addr().await;
        let loaded = big.rss_kib();
        let started = Instant::now();
        let (status, text) = call(admin, "GET", "/metrics", None, "").await;
        let scrape = started.elapsed();
        assert_eq!(status, 200);
        let scraped = big.rss_kib();
        let (status, pools) = call(admin, "GET", "/api/pools", None, "").await;
        assert_eq!(status, 200);
        let after_api = big.rss_kib();
        let series = text.lines().filter(|l| !l.starts_with('#')).count();
        let grown = loaded.saturating_sub(base);
        eprintln!(
            "10,000 backends: RSS {base} KiB with 1 backend, {loaded} KiB with 10,000 \
             (+{grown} KiB, {} B per backend); {scraped} KiB after a scrape, {after_api} KiB \
             after /api/pools; /metrics {} bytes, {series} series, in {scrape:?}; \
             /api/pools {} bytes",
            grown * 1024 / 10_000,
            text.len(),
            pools.len(),
        );
        assert_eq!(
            text.matches("fulcrum_backend_request_duration_seconds_count{")
                .count(),
            10_000
        );
        // Bounded: a few KB per backend, well under 100 MB all told; a scrape is
        // streamed, so it does not hold its tens of MB of text.
        assert!(grown < 100 * 1024, "{loaded} vs {base}");
        assert!(
            scraped < loaded + 32 * 1024,
            "{scraped} after a scrape vs {loaded}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listeners_routes_and_connect_times_are_measured() {
    within(async {
        let b = Backend::start("b").await;
        let config = format!(
            "{1}{0}",
            admin_section(""),
            one_pool("round_robin", &[quoted(&b)], "")
        );
        let f = Fulcrum::start(&config);
        let admin = f.admin_addr().await;
        let c = client();
        for _ in 0..5 {
            assert_eq!(get(&c, &format!("{}/", f.url("public"))).await.0, 200);
        }
        let listener = [("listener", "public"), ("class", "2xx")];
        let text = wait_sample(
            admin,
            None,
            "fulcrum_listener_requests_total",
            &listener,
            |v| v >= 5.0,
        )
        .await;
        let route = [("route", "0"), ("pool", "p"), ("class", "2xx")];
        assert_eq!(
            sample(&text, "fulcrum_route_requests_total", &route),
            Some(5.0)
        );
        let accepted = sample(
            &text,
            "fulcrum_listener_connections_total",
            &[("listener", "public")],
        );
        assert!(accepted.is_some_and(|n| n >= 1.0), "{text}");
        let open = sample(
            &text,
            "fulcrum_listener_open_connections",
            &[("listener", "public")],
        );
        assert!(
            open.is_some_and(|n| n >= 1.0),
            "the client's keep-alive connection: {text}"
        );
        let connects = sample(
            &text,
            "fulcrum_pool_connect_duration_seconds_count",
            &[("pool", "p")],
        );
        assert!(connects.is_some_and(|n| n >= 1.0), "{text}");
    })
    .await;
}
