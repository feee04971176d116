//! JWT claims through the real proxy: routing on a verified claim, over HTTP/1.1
//! and HTTP/2, and consistent hashing on a claim, agreed by two processes.

use bytes::Bytes;
use fulcrum_core::jwt::{sign_hs256, Claims};
use http_body_util::Full;
use hyper_util::client::legacy::{connect::HttpConnector, Client};

use crate::support::*;

type C = Client<HttpConnector, Full<Bytes>>;

const SECRET: &str = "route-secret-of-at-least-32-bytes!!";

fn token(secret: &str, claims: &str) -> String {
    let claims: Claims = serde_json::from_str(claims).unwrap();
    format!("Bearer {}", sign_hs256(secret.as_bytes(), &claims))
}

/// Sends a GET with an optional `Authorization`; returns the status and backend.
async fn send(c: &C, url: &str, auth: Option<&str>) -> (u16, String) {
    let headers: Vec<(&str, &str)> = auth.map(|a| ("authorization", a)).into_iter().collect();
    send_with(c, "GET", url, &headers).await
}

async fn routes_by_verified_claim(c: C) {
    let (a, b) = (Backend::start("a").await, Backend::start("b").await);
    let f = Fulcrum::start(&format!(
        r#"workers = 1

[listeners.public]
address = "127.0.0.1:0"

[[routes]]
jwt_claim = {{ role = "admin", tier = "~gold|silver" }}
jwt_secret = "{SECRET}"
pool = "a"

[[routes]]
pool = "b"

[pools.a]
backends = ["{}"]

[pools.b]
backends = ["{}"]
"#,
        a.addr, b.addr
    ));
    let url = format!("{}/", f.url("public"));
    let admin = token(SECRET, r#"{"role":"admin","tier":"gold","exp":4102444800}"#);
    let roles = token(SECRET, r#"{"role":["user","admin"],"tier":"silver"}"#);
    let user = token(SECRET, r#"{"role":"user","tier":"gold"}"#);
    let expired = token(SECRET, r#"{"role":"admin","tier":"gold","exp":1000}"#);
    let forged = token(
        "another-secret-of-at-least-32-bytes",
        r#"{"role":"admin","tier":"gold"}"#,
    );
    let cases = [
        (Some(admin.as_str()), "a"),
        (Some(roles.as_str()), "a"),
        (Some(user.as_str()), "b"),
        (Some(expired.as_str()), "b"),
        (Some(forged.as_str()), "b"),
        (Some("Bearer not.a.token"), "b"),
        (None, "b"),
    ];
    for (auth, want) in cases {
        assert_eq!(
            send(&c, &url, auth).await,
            (200, want.to_owned()),
            "{auth:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_by_a_verified_claim_over_h1() {
    within(routes_by_verified_claim(client())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_by_a_verified_claim_over_h2() {
    within(routes_by_verified_claim(h2_client())).await;
}

/// For each user, the backend that answered (the same every time).
async fn users_to_backends(url: &str, users: usize) -> Vec<String> {
    let c = client();
    let mut out = Vec::new();
    for u in 0..users {
        let auth = token(SECRET, &format!(r#"{{"sub":"user-{u}"}}"#));
        let mut seen = None;
        for _ in 0..4 {
            let (status, b) = send(&c, url, Some(&auth)).await;
            assert_eq!(status, 200);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ring_hash_on_a_claim_pins_users_across_processes() {
    within(async {
        let mut backends = Vec::new();
        for name in ["a", "b", "c", "d"] {
            backends.push(Backend::start(name).await);
        }
        let list: Vec<String> = backends.iter().map(quoted).collect();
        let cfg = one_pool(
            "ring_hash",
            &list,
            &format!("hash_key = \"jwt:sub\"\njwt_secret = \"{SECRET}\""),
        );
        let (one, two) = (Fulcrum::start(&cfg), Fulcrum::start(&cfg));
        let first = users_to_backends(&format!("{}/", one.url("public")), 30).await;
        let second = users_to_backends(&format!("{}/", two.url("public")), 30).await;
        assert_eq!(first, second, "two processes disagree");
        let spread: std::collections::HashSet<_> = first.iter().collect();
        assert!(spread.len() >= 3, "30 users on {spread:?}");
        // A forged token is no key: a random pick, still served.
        let forged = token("another-secret-of-at-least-32-bytes", r#"{"sub":"user-0"}"#);
        let url = format!("{}/", one.url("public"));
        assert_eq!(send(&client(), &url, Some(&forged)).await.0, 200);
    })
    .await;
}
