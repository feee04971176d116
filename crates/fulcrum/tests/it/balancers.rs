//! The issue 3 algorithms through the real proxy: load-aware ones avoid a slow
//! backend, random spreads, consistent hashing is sticky per key and agrees across
//! two Fulcrum processes.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::Request;

use crate::balance::futures_join;
use crate::support::*;
use crate::support_stream::reply;

/// A backend that answers its name after `delay`.
async fn slow(name: &'static str, delay: Duration) -> Backend {
    let handler: StreamHandler = Arc::new(
        move |seen: Arc<Seen>, _req: Request<Incoming>| -> ResponseFuture {
            Box::pin(async move {
                tokio::time::sleep(delay).await;
                seen.requests.fetch_add(1, Ordering::Relaxed);
                let mut r = reply(200, name);
                r.headers_mut().insert("x-backend", name.parse().unwrap());
                r
            })
        },
    );
    Backend::streaming(name, false, handler).await
}

/// Four clients send requests back to back until `total` are answered; returns the
/// count per backend.
async fn load(url: String, total: usize) -> HashMap<String, usize> {
    let counts = Arc::new(std::sync::Mutex::new(HashMap::<String, usize>::new()));
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (url, counts, done) = (url.clone(), counts.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let c = client();
            while done.fetch_add(1, Ordering::Relaxed) < total {
                let (status, backend, _) = get(&c, &url).await;
                assert_eq!(status, 200);
                *counts.lock().unwrap().entry(backend).or_default() += 1;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let counts = counts.lock().unwrap().clone();
    counts
}

async fn avoids_the_slow_backend(balance: &str, extra: &str) {
    let fast = futures_join(["a", "b"]).await;
    let s = slow("slow", Duration::from_millis(200)).await;
    let list = [quoted(&fast[0]), quoted(&fast[1]), quoted(&s)];
    let f = Fulcrum::start(&one_pool(balance, &list, extra));
    let counts = load(format!("{}/", f.url("public")), 300).await;
    let slow_share = *counts.get("slow").unwrap_or(&0) as f64 / 300.0;
    // Round robin would give it a third; a load-aware pick only when it is idle.
    assert!(slow_share < 0.15, "{balance}: {counts:?}");
    assert!(
        counts.contains_key("a") && counts.contains_key("b"),
        "{counts:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_connections_avoids_a_slow_backend() {
    within(avoids_the_slow_backend("least_connections", "")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_of_two_avoids_a_slow_backend() {
    within(avoids_the_slow_backend("power_of_two", "")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_of_two_peak_ewma_avoids_a_slow_backend() {
    within(avoids_the_slow_backend(
        "power_of_two",
        "load = \"peak_ewma\"",
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_reaches_every_backend() {
    within(async {
        let b = futures_join(["a", "b", "c"]).await;
        let f = Fulcrum::start(&one_pool(
            "random",
            &b.iter().map(quoted).collect::<Vec<_>>(),
            "",
        ));
        let counts = load(format!("{}/", f.url("public")), 600).await;
        for name in ["a", "b", "c"] {
            let n = *counts.get(name).unwrap_or(&0);
            assert!((100..=300).contains(&n), "{counts:?}");
        }
    })
    .await;
}

/// For each user, the backend that answered (and that it answered alike every time).
async fn users_to_backends(url: &str, users: usize) -> Vec<String> {
    let c = client();
    let mut out = Vec::new();
    for u in 0..users {
        let mut seen = None;
        for _ in 0..5 {
            let req = hyper::Request::get(url)
                .header("x-user", format!("user-{u}"))
                .body(http_body_util::Full::new(bytes::Bytes::new()))
                .unwrap();
            let res = c.request(req).await.unwrap();
            assert_eq!(res.status(), 200);
            let b = res.headers()["x-backend"].to_str().unwrap().to_owned();
            assert!(
                seen.as_ref().is_none_or(|s| *s == b),
                "user-{u} moved from {seen:?} to {b}"
            );
            seen = Some(b);
        }
        out.extend(seen);
    }
    out
}

async fn hashing_is_sticky_and_fleet_wide(balance: &str) {
    let b = futures_join(["a", "b", "c", "d"]).await;
    let list: Vec<String> = b.iter().map(quoted).collect();
    let cfg = one_pool(balance, &list, "hash_key = \"header:x-user\"");
    let one = Fulcrum::start(&cfg);
    let two = Fulcrum::start(&cfg);
    let first = users_to_backends(&format!("{}/", one.url("public")), 40).await;
    let second = users_to_backends(&format!("{}/", two.url("public")), 40).await;
    assert_eq!(first, second, "two processes disagree");
    let spread: std::collections::HashSet<_> = first.iter().collect();
    assert!(spread.len() >= 3, "40 users on {spread:?}");
    // Listing the backends in another order changes nothing: identity is the address.
    let mut reversed = list.clone();
    reversed.reverse();
    let three = Fulcrum::start(&one_pool(
        balance,
        &reversed,
        "hash_key = \"header:x-user\"",
    ));
    let third = users_to_backends(&format!("{}/", three.url("public")), 40).await;
    assert_eq!(first, third, "backend order changed the mapping");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ring_hash_is_sticky_and_agrees_across_processes() {
    within(hashing_is_sticky_and_fleet_wide("ring_hash")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maglev_is_sticky_and_agrees_across_processes() {
    within(hashing_is_sticky_and_fleet_wide("maglev")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_of_a_dead_backend_stick_to_their_fallback() {
    within(async {
        let b = futures_join(["a", "b", "c"]).await;
        let dead = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let mut list: Vec<String> = b.iter().map(quoted).collect();
        list.push(format!("\"{dead}\""));
        let f = Fulcrum::start(&one_pool("maglev", &list, "hash_key = \"header:x-user\""));
        // Keys whose backend refuses connections are retried on the next one; the
        // others stay where a healthy pool would put them.
        let live = users_to_backends(&format!("{}/", f.url("public")), 40).await;
        assert_eq!(live.len(), 40);
    })
    .await;
}
