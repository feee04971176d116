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

/// `jwt_required`: no token, a forged one and an expired one get 401 with a Bearer
/// challenge (HTTP/1.1 and HTTP/2); a good one passes; a route with claims keeps
/// falling through on a good token whose claims differ.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_tokens_get_401_when_missing_forged_or_expired() {
    within(async {
        let (admin, api) = (Backend::start("admin").await, Backend::start("api").await);
        let f = Fulcrum::start(&format!(
            "workers = 1\n[listeners.public]\naddress = \"127.0.0.1:0\"\n\n\
             [[routes]]\npath_prefix = \"/admin/\"\njwt_claim = {{ role = \"admin\" }}\njwt_required = true\njwt_secret = \"{SECRET}\"\npool = \"admin\"\n\n\
             [[routes]]\npath_prefix = \"/api/\"\njwt_required = true\njwt_secret = \"{SECRET}\"\npool = \"api\"\n\n\
             [[routes]]\npool = \"api\"\n\n\
             [pools.admin]\nbackends = [{}]\n\n[pools.api]\nbackends = [{}]\n",
            quoted(&admin),
            quoted(&api)
        ));
        let url = |p: &str| format!("{}{p}", f.url("public"));
        let good = token(SECRET, r#"{"sub":"u1","role":"user"}"#);
        let boss = token(SECRET, r#"{"sub":"u2","role":"admin"}"#);
        let forged = token("another-secret-of-at-least-32-bytes", r#"{"role":"admin"}"#);
        let expired = token(SECRET, r#"{"role":"admin","exp":1000}"#);
        for c in [client(), h2_client()] {
            assert_eq!(send(&c, &url("/api/x"), Some(&good)).await, (200, "api".into()));
            assert_eq!(send(&c, &url("/api/x"), None).await.0, 401);
            assert_eq!(send(&c, &url("/api/x"), Some(&forged)).await.0, 401);
            assert_eq!(send(&c, &url("/admin/x"), Some(&boss)).await, (200, "admin".into()));
            assert_eq!(send(&c, &url("/admin/x"), Some(&expired)).await.0, 401);
            assert_eq!(send(&c, &url("/admin/x"), Some("Bearer not.a.jwt")).await.0, 401);
            // A good token with other claims is not this route's: the next one serves.
            assert_eq!(send(&c, &url("/admin/x"), Some(&good)).await, (200, "api".into()));
        }
        // The challenge, raw.
        let reply = raw(
            f.addr("public"),
            b"GET /api/x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            std::time::Duration::from_secs(10),
        );
        assert!(reply.starts_with("HTTP/1.1 401"), "{reply}");
        assert!(reply.to_lowercase().contains("www-authenticate: bearer realm=\"fulcrum\"\r\n"), "{reply}");
        let reply = raw(
            f.addr("public"),
            format!("GET /api/x HTTP/1.1\r\nHost: a\r\nAuthorization: {forged}\r\nConnection: close\r\n\r\n").as_bytes(),
            std::time::Duration::from_secs(10),
        );
        assert!(reply.contains("error=\"invalid_token\""), "{reply}");
        assert_eq!(api.requests() + admin.requests(), 6, "a refused request reached a backend");
    })
    .await;
}
