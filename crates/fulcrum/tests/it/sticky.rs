//! Sticky sessions through the real proxy: the cookie pins a client to a backend,
//! across Fulcrum processes, and is ignored when forged or when its backend is gone.

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::{connect::HttpConnector, Client};

use crate::balance::futures_join;
use crate::support::*;

const STICKY: &str =
    "sticky = { cookie = \"fsrv\", ttl = \"1h\", secret = \"test-secret-0123456789\" }";

type C = Client<HttpConnector, Full<Bytes>>;

/// GET `url` with an optional `Cookie`; returns status, `x-backend` and the
/// `NAME=VALUE` part of a `Set-Cookie`, checking its attributes.
async fn get_with(c: &C, url: &str, cookie: Option<&str>) -> (u16, String, Option<String>) {
    let mut req = http::Request::get(url);
    if let Some(cookie) = cookie {
        req = req.header("cookie", format!("theme=dark; {cookie}"));
    }
    let res = c.request(req.body(Full::default()).unwrap()).await.unwrap();
    let status = res.status().as_u16();
    let backend = res
        .headers()
        .get("x-backend")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let set = res.headers().get("set-cookie").map(|v| {
        let v = v.to_str().unwrap();
        assert!(
            v.ends_with("; Path=/; HttpOnly; SameSite=Lax; Max-Age=3600"),
            "{v}"
        );
        v.split(';').next().unwrap().to_owned()
    });
    (status, backend, set)
}

fn pool_of(b: &[Backend]) -> Vec<String> {
    b.iter().map(quoted).collect()
}

/// Pins to the first response's backend for 30 requests where round robin would
/// rotate, with no new cookie while the old one is fresh; `protocol` is the pool's.
async fn pins_one_backend(c: &C, protocol: &str, h2_backends: bool) {
    let mut b = Vec::new();
    for n in ["a", "b", "c"] {
        b.push(if h2_backends {
            Backend::start_h2(n).await
        } else {
            Backend::start(n).await
        });
    }
    let extra = format!("protocol = \"{protocol}\"\n{STICKY}");
    let f = Fulcrum::start(&one_pool("round_robin", &pool_of(&b), &extra));
    let url = format!("{}/", f.url("public"));
    let (status, first, cookie) = get_with(c, &url, None).await;
    assert_eq!(status, 200);
    let cookie = cookie.expect("first response sets the cookie");
    assert!(cookie.starts_with("fsrv="), "{cookie}");
    // Unreadable: the backend's address is not in it.
    let port = b.iter().find(|x| x.name == first).unwrap().addr.port();
    assert!(!cookie.contains(&port.to_string()), "{cookie}");
    for _ in 0..30 {
        let (status, backend, set) = get_with(c, &url, Some(&cookie)).await;
        assert_eq!((status, backend.as_str()), (200, first.as_str()));
        assert_eq!(
            set, None,
            "a fresh cookie for the answering backend is kept"
        );
    }
    // Without it, round robin rotates (the cookie goes on to the backend).
    let mut seen = std::collections::HashSet::new();
    for _ in 0..3 {
        let (_, backend, set) = get_with(c, &url, None).await;
        assert!(set.is_some());
        seen.insert(backend);
    }
    assert_eq!(seen.len(), 3, "{seen:?}");
    get_with(c, &url, Some(&cookie)).await;
    let sent = b.iter().find(|x| x.name == first).unwrap();
    assert!(sent.last_header("cookie").unwrap().contains(&cookie));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_pins_a_backend_for_every_client_and_pool_protocol() {
    within(async {
        pins_one_backend(&client(), "http1", false).await;
        pins_one_backend(&h2_client(), "http1", false).await;
        pins_one_backend(&client(), "h2c", true).await;
        pins_one_backend(&h2_client(), "h2c", true).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_fulcrum_with_the_same_config_honours_the_cookie() {
    within(async {
        let b = futures_join(["a", "b", "c"]).await;
        let f1 = Fulcrum::start(&one_pool("round_robin", &pool_of(&b), STICKY));
        // Same backends, listed in another order: the cookie names a backend, not a slot.
        let mut rev = pool_of(&b);
        rev.reverse();
        let f2 = Fulcrum::start(&one_pool("least_connections", &rev, STICKY));
        let c = client();
        // Skip one so the pinned backend is not the first in either list.
        get_with(&c, &format!("{}/", f1.url("public")), None).await;
        let (_, pinned, cookie) = get_with(&c, &format!("{}/", f1.url("public")), None).await;
        let cookie = cookie.unwrap();
        for _ in 0..10 {
            let (status, backend, set) =
                get_with(&c, &format!("{}/", f2.url("public")), Some(&cookie)).await;
            assert_eq!(
                (status, backend.as_str(), set),
                (200, pinned.as_str(), None)
            );
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_cookie_is_ignored_and_rewritten() {
    within(async {
        let b = futures_join(["a", "b"]).await;
        let f = Fulcrum::start(&one_pool("round_robin", &pool_of(&b), STICKY));
        let url = format!("{}/", f.url("public"));
        let c = client();
        let (_, first, cookie) = get_with(&c, &url, None).await;
        let cookie = cookie.unwrap();
        // Change one character of the value.
        let mut forged = cookie.clone().into_bytes();
        let last = forged.len() - 5;
        forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
        let forged = String::from_utf8(forged).unwrap();
        let mut answered = Vec::new();
        for _ in 0..4 {
            let (status, backend, set) = get_with(&c, &url, Some(&forged)).await;
            assert_eq!(status, 200);
            let set = set.expect("a forged cookie is rewritten");
            assert_ne!(set, forged);
            // The new cookie names the backend that answered.
            let (_, again, none) = get_with(&c, &url, Some(&set)).await;
            assert_eq!((again.as_str(), none), (backend.as_str(), None));
            answered.push(backend);
        }
        // Balanced normally: both backends answered a forged cookie.
        assert!(answered.iter().any(|x| *x != first), "{answered:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_for_a_stopped_backend_moves_to_another() {
    within(async {
        let mut b = futures_join(["a", "b"]).await;
        // No idle upstream connections: a stopped backend's open ones would still answer.
        let extra = format!("max_idle_per_backend = 0\n{STICKY}");
        let f = Fulcrum::start(&one_pool("round_robin", &pool_of(&b), &extra));
        let url = format!("{}/", f.url("public"));
        let clients = [client(), h2_client()];
        let mut cookies = Vec::new();
        for c in &clients {
            // A cookie for backend b.
            let cookie = loop {
                let (_, backend, cookie) = get_with(c, &url, None).await;
                if backend == "b" {
                    break cookie.unwrap();
                }
            };
            let (_, backend, _) = get_with(c, &url, Some(&cookie)).await;
            assert_eq!(backend, "b");
            cookies.push(cookie);
        }
        drop(b.pop()); // aborts b's listener: its port now refuses
        for (c, cookie) in clients.iter().zip(&cookies) {
            let (status, backend, set) = get_with(c, &url, Some(cookie)).await;
            assert_eq!((status, backend.as_str()), (200, "a"));
            let set = set.expect("the cookie is rewritten to name a");
            assert_ne!(&set, cookie);
            let (_, backend, none) = get_with(c, &url, Some(&set)).await;
            assert_eq!((backend.as_str(), none), ("a", None));
        }
    })
    .await;
}
