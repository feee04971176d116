//! Retries: on another backend, cut by `per_try_timeout`, spent from a budget, and
//! never for a request whose body a backend may have acted on.

use std::time::{Duration, Instant};

use crate::support::*;
use crate::support_health::*;

/// An address where nothing listens: bound, then closed.
fn dead_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    format!("\"{addr}\"")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_backend_is_cut_by_per_try_timeout_and_retried_elsewhere() {
    within(async {
        let (a, b) = (Switchable::start("a").await, Switchable::start("b").await);
        a.set_mode(Mode::Hang);
        // upstream_timeout far above per_try_timeout: only the per-try cut keeps the
        // requests below quick.
        let f = Fulcrum::start(&pool_of(
            &[&a, &b],
            "upstream_timeout = \"20s\"\nretries = { attempts = 2, on = [\"timeout\"], per_try_timeout = \"300ms\", budget = \"100%\", backoff = \"5ms\", max_backoff = \"5ms\" }",
        ));
        let c = client();
        for i in 0..20 {
            let started = Instant::now();
            let (status, backend, _) = get(&c, &format!("{}/", f.url("public"))).await;
            assert_eq!((status, backend.as_str()), (200, "b"), "request {i}");
            let took = started.elapsed();
            assert!(took < Duration::from_secs(5), "request {i} took {took:?}");
        }
        // Round robin sends at least every other first try to `a`.
        assert!(a.requests() >= 5, "a got only {} requests", a.requests());
        assert_eq!(b.requests(), 20);
    })
    .await;
}

/// Two backends answering 503 to everything, with `retries`.
async fn all_503(retries: &str) -> (Fulcrum, Switchable, Switchable) {
    let (a, b) = (Switchable::start("a").await, Switchable::start("b").await);
    a.set_mode(Mode::Fail503);
    b.set_mode(Mode::Fail503);
    let f = Fulcrum::start(&pool_of(&[&a, &b], &format!("retries = {retries}")));
    (f, a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retry_budget_caps_retries() {
    within(async {
        let (f, a, b) = all_503(
            "{ attempts = 3, on = [\"503\"], budget = \"20%\", min_retries_per_sec = 1, backoff = \"5ms\", max_backoff = \"5ms\" }",
        )
        .await;
        const N: usize = 200;
        let c = client();
        for i in 0..N {
            let (status, backend, _) = get(&c, &format!("{}/", f.url("public"))).await;
            assert_eq!(status, 503, "request {i}");
            assert!(backend == "a" || backend == "b", "the backend's 503 is passed as is");
        }
        // Retries ≤ 20% of the requests in the 10 s window + 1/s × 10 s; attempts = 3
        // would allow 3 N without the budget.
        let arrivals = a.requests() + b.requests();
        assert!(
            arrivals <= N + N / 5 + 10 + 5,
            "{arrivals} arrivals for {N} requests: the budget did not hold"
        );
        // The budget did allow some: the retry path is live.
        assert!(arrivals >= N + 20, "{arrivals} arrivals for {N} requests");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_budget_to_spare_every_request_is_retried_once_elsewhere() {
    within(async {
        let (f, a, b) = all_503(
            "{ attempts = 1, on = [\"503\"], budget = \"100%\", min_retries_per_sec = 1, backoff = \"5ms\", max_backoff = \"5ms\" }",
        )
        .await;
        const N: usize = 200;
        let c = client();
        for i in 0..N {
            assert_eq!(get(&c, &format!("{}/", f.url("public"))).await.0, 503, "request {i}");
        }
        let arrivals = a.requests() + b.requests();
        assert!(
            (N * 19 / 10..=2 * N).contains(&arrivals),
            "{arrivals} arrivals for {N} requests with one retry each"
        );
        // The retry goes to the other backend, so neither sees one request twice.
        assert!(
            a.requests() <= N && b.requests() <= N,
            "a {} b {}: a retry went to the backend that failed",
            a.requests(),
            b.requests()
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_with_a_body_are_not_retried() {
    within(async {
        // Both backends 503, one retry allowed: a retried request reaches both, one
        // that is not retried reaches one, whichever round robin picks.
        let (f, a, b) = all_503(
            "{ attempts = 1, on = [\"503\"], budget = \"100%\", backoff = \"5ms\", max_backoff = \"5ms\" }",
        )
        .await;
        let c = client();
        let url = format!("{}/", f.url("public"));
        let arrivals = || a.requests() + b.requests();

        let r = send(&c, "POST", &url, "order=1").await;
        assert_eq!(r.status, 503, "{r:?}");
        assert_eq!(r.body, "unavailable", "the backend's 503 is passed as is");
        assert_eq!(arrivals(), 1, "a POST was retried");
        let got = if a.requests() == 1 { &a } else { &b };
        assert_eq!(got.last_body(), "order=1");

        let r = send(&c, "PUT", &url, "v=2").await;
        assert_eq!(r.status, 503, "{r:?}");
        assert_eq!(arrivals(), 2, "a PUT with a body was retried");

        // Without a body the same methods' kin are retried: the path is live.
        let r = send(&c, "DELETE", &url, "").await;
        assert_eq!(r.status, 503, "{r:?}");
        assert_eq!(arrivals(), 4, "a DELETE without a body was not retried");
        let r = send(&c, "GET", &url, "").await;
        assert_eq!(r.status, 503, "{r:?}");
        assert_eq!(arrivals(), 6, "a GET was not retried");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_whose_body_was_never_sent_is_retried() {
    within(async {
        let live = Switchable::start("live").await;
        let list = [dead_addr(), live.quoted()];
        let f = Fulcrum::start(&one_pool(
            "round_robin",
            &list,
            "retries = { attempts = 1, on = [\"connect-failure\"], budget = \"100%\", backoff = \"5ms\", max_backoff = \"5ms\" }",
        ));
        let c = client();
        for i in 0..4 {
            let r = send(&c, "POST", &format!("{}/", f.url("public")), "once").await;
            assert_eq!((r.status, r.backend.as_str()), (200, "live"), "request {i}: {r:?}");
        }
        assert_eq!(live.requests(), 4, "each POST reached the backend exactly once");
        assert_eq!(live.last_body(), "once");
        let lines = f.wait_access_log(4);
        assert!(
            lines.iter().any(|l| l["attempts"] == 2),
            "no POST met the dead backend first: {lines:?}"
        );
    })
    .await;
}
