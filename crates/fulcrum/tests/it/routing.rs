//! Routing by each predicate through the real proxy, over HTTP/1.1 and HTTP/2:
//! matching requests reach pool `a`, the rest fall through to pool `b`.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::{connect::HttpConnector, Client};

use crate::support::*;

type C = Client<HttpConnector, Full<Bytes>>;

/// Routes 0–6 each test one predicate (or a combination) and go to `a`; the
/// catch-all goes to `b`.
fn config(a: &Backend, b: &Backend, catch_all: bool) -> String {
    let last = if catch_all {
        "[[routes]]\npool = \"b\"\n"
    } else {
        ""
    };
    format!(
        r#"workers = 1

[listeners.public]
address = "127.0.0.1:0"

[[routes]]
path_regex = '/users/\d+'
pool = "a"

[[routes]]
method = ["DELETE", "PATCH"]
pool = "a"

[[routes]]
header = {{ X-Canary = "1" }}
pool = "a"

[[routes]]
header = {{ x-client = "~mobile-(ios|android)" }}
pool = "a"

[[routes]]
cookie = {{ beta = "yes" }}
pool = "a"

[[routes]]
query = {{ v = '~2\d*' }}
pool = "a"

[[routes]]
path_prefix = "/both/"
method = "GET"
header = {{ x-key = "k" }}
pool = "a"

{last}
[pools.a]
backends = ["{}"]

[pools.b]
backends = ["{}"]
"#,
        a.addr, b.addr
    )
}

/// Method, path, header fields, and the pool that must answer.
type Case = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
    &'static str,
);

const CASES: &[Case] = &[
    ("GET", "/users/42", &[], "a"),
    ("GET", "/users/42?x=1", &[], "a"),
    ("GET", "/users/42/posts", &[], "b"),
    ("GET", "/users/x", &[], "b"),
    ("DELETE", "/x", &[], "a"),
    ("PATCH", "/x", &[], "a"),
    ("PUT", "/x", &[], "b"),
    ("GET", "/x", &[("x-canary", "1")], "a"),
    ("GET", "/x", &[("X-CANARY", "1")], "a"),
    ("GET", "/x", &[("x-canary", "2")], "b"),
    ("GET", "/x", &[("x-client", "mobile-android")], "a"),
    ("GET", "/x", &[("x-client", "mobile-android-tv")], "b"),
    ("GET", "/x", &[("cookie", "a=1; beta=yes")], "a"),
    ("GET", "/x", &[("cookie", "beta=no")], "b"),
    ("GET", "/x?v=2", &[], "a"),
    ("GET", "/x?a=1&v=20", &[], "a"),
    ("GET", "/x?v=3", &[], "b"),
    ("GET", "/both/1", &[("x-key", "k")], "a"),
    ("HEAD", "/both/1", &[("x-key", "k")], "b"),
    ("GET", "/both/1", &[("x-key", "K")], "b"),
    ("GET", "/other/1", &[("x-key", "k")], "b"),
    ("GET", "/", &[], "b"),
];

async fn every_predicate(c: C, h2: bool) {
    let (a, b) = (Backend::start("a").await, Backend::start("b").await);
    let f = Fulcrum::start(&config(&a, &b, true));
    for &(method, path, headers, want) in CASES {
        let url = format!("{}{path}", f.url("public"));
        let (status, got) = send_with(&c, method, &url, headers).await;
        assert_eq!(status, 200, "{method} {path} {headers:?} (h2: {h2})");
        assert_eq!(got, want, "{method} {path} {headers:?} (h2: {h2})");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_predicate_over_h1() {
    within(every_predicate(client(), false)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_predicate_over_h2() {
    within(every_predicate(h2_client(), true)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_split_over_several_fields() {
    within(async {
        let (a, b) = (Backend::start("a").await, Backend::start("b").await);
        let f = Fulcrum::start(&config(&a, &b, true));
        let url = format!("{}/x", f.url("public"));
        // HTTP/2 clients may send one field per cookie (RFC 9113 §8.2.3).
        let two = [("cookie", "a=1"), ("cookie", "beta=yes")];
        assert_eq!(
            send_with(&h2_client(), "GET", &url, &two).await,
            (200, "a".into())
        );
        // HTTP/1.1: two Cookie lines, sent raw.
        let reply = raw(
            f.addr("public"),
            b"GET /x HTTP/1.1\r\nHost: t\r\nCookie: a=1\r\nCookie: beta=yes\r\n\
              Connection: close\r\n\r\n",
            Duration::from_secs(10),
        );
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        assert!(
            reply.to_ascii_lowercase().contains("x-backend: a"),
            "{reply}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_matching_route_is_404() {
    within(async {
        let (a, b) = (Backend::start("a").await, Backend::start("b").await);
        let f = Fulcrum::start(&config(&a, &b, false));
        let url = format!("{}/x", f.url("public"));
        assert_eq!(send_with(&client(), "GET", &url, &[]).await.0, 404);
        assert_eq!(send_with(&h2_client(), "PUT", &url, &[]).await.0, 404);
        let canary = [("x-canary", "1")];
        assert_eq!(
            send_with(&client(), "GET", &url, &canary).await,
            (200, "a".into())
        );
        assert_eq!(b.requests(), 0);
    })
    .await;
}
