//! Authentication at the edge through the real proxy: `basic_auth` against an
//! htpasswd file made by Apache's own `htpasswd` (bcrypt), reloaded with the
//! config; `forward_auth` against a real HTTP auth service: allow with copied
//! fields, deny with the service's answer, a timeout and an unreachable service
//! (503), and a client's spoofed copies of those fields.

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};

use crate::support::*;

type C = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Full<Bytes>,
>;

/// One GET with `headers`: status, fields and body.
async fn ask(c: &C, url: &str, headers: &[(&str, &str)]) -> (u16, hyper::HeaderMap, String) {
    let (status, fields, body) = fetch(c, "GET", url, headers).await;
    (status, fields, String::from_utf8_lossy(&body).into_owned())
}

fn basic(user: &str, password: &str) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {b64}")
}

/// Adds `user` to the htpasswd file with Apache's `htpasswd -B` (bcrypt).
fn htpasswd(file: &std::path::Path, user: &str, password: &str) {
    let mut cmd = Command::new("htpasswd");
    if !file.exists() {
        cmd.arg("-c");
    }
    let out = cmd
        .args(["-b", "-B", "-C", "5"])
        .arg(file)
        .args([user, password])
        .output()
        .expect("htpasswd (Debian's apache2-utils)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn basic_config(backend: &Backend, users: &std::path::Path) -> String {
    format!(
        r#"workers = 1

[listeners.public]
address = "127.0.0.1:0"

[[routes]]
path_prefix = "/private"
basic_auth = {{ users = "{}", realm = "ops area" }}
pool = "app"

[[routes]]
pool = "app"

[pools.app]
backends = ["{}"]
"#,
        users.display(),
        backend.addr
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_checks_an_htpasswd_file_and_reloads_it() {
    within(async {
        let b = Backend::start("app").await;
        let dir = TempDir::new();
        let users = dir.path("users");
        htpasswd(&users, "alice", "wonderland");
        let f = Fulcrum::start(&basic_config(&b, &users));
        let c = client();
        let url = format!("{}/private/x", f.url("public"));
        let good = basic("alice", "wonderland");
        assert_eq!(ask(&c, &url, &[("authorization", &good)]).await.0, 200);
        // Remembered: the same good credentials again.
        assert_eq!(ask(&c, &url, &[("authorization", &good)]).await.0, 200);
        for auth in [
            Some(basic("alice", "wrong")),
            Some(basic("mallory", "wonderland")),
            Some("Basic !!!".to_owned()),
            Some("Bearer abc".to_owned()),
            None,
        ] {
            let headers: Vec<(&str, &str)> =
                auth.iter().map(|a| ("authorization", a.as_str())).collect();
            let (status, h, _) = ask(&c, &url, &headers).await;
            assert_eq!(status, 401, "{auth:?}");
            assert_eq!(
                h.get("www-authenticate").unwrap(),
                "Basic realm=\"ops area\", charset=\"UTF-8\""
            );
        }
        assert_eq!(b.requests(), 2);
        // Other routes are open.
        assert_eq!(ask(&c, &format!("{}/", f.url("public")), &[]).await.0, 200);
        // A user added to the file counts after a reload.
        htpasswd(&users, "bob", "builder");
        let bob = basic("bob", "builder");
        assert_eq!(ask(&c, &url, &[("authorization", &bob)]).await.0, 401);
        let line = f.reload(&basic_config(&b, &users));
        assert!(line.contains("config reloaded"), "{line}");
        assert_eq!(ask(&c, &url, &[("authorization", &bob)]).await.0, 200);
        // A file with a weak hash is refused, naming the line; the old one stays.
        let weak = dir.path("weak");
        std::fs::write(&weak, "carol:$apr1$abc$def\n").unwrap();
        let line = f.reload(&basic_config(&b, &weak));
        assert!(
            line.contains("reload failed")
                && line.contains("routes[0].basic_auth.users")
                && line.contains("weak:1"),
            "{line}"
        );
        assert_eq!(ask(&c, &url, &[("authorization", &bob)]).await.0, 200);
    })
    .await;
}

/// What the auth service saw of the last subrequest.
#[derive(Default)]
struct Asked {
    fields: Mutex<Vec<(String, String)>>,
    method: Mutex<String>,
}

async fn auth_service(asked: Arc<Asked>) -> Backend {
    Backend::streaming(
        "auth",
        false,
        Arc::new(move |_seen, req: Request<hyper::body::Incoming>| {
            let asked = asked.clone();
            Box::pin(async move {
                *asked.method.lock().unwrap() = req.method().to_string();
                *asked.fields.lock().unwrap() = req
                    .headers()
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
                    .collect();
                let token = req
                    .headers()
                    .get("authorization")
                    .map(|v| v.to_str().unwrap().to_owned())
                    .unwrap_or_default();
                let r = Response::builder();
                let r = match token.as_str() {
                    "Bearer alice" => r
                        .status(204)
                        .header("x-user", "alice")
                        .header("x-other", "no"),
                    "Bearer nobody" => r.status(200),
                    "Bearer slow" => {
                        tokio::time::sleep(Duration::from_secs(30)).await;
                        r.status(204)
                    }
                    _ => r
                        .status(401)
                        .header("www-authenticate", "Bearer realm=\"auth\"")
                        .header("x-internal", "secret"),
                };
                r.body(Full::new(Bytes::from_static(b"denied by auth\n")).boxed())
                    .unwrap()
            })
        }),
    )
    .await
}

fn forward_config(backend: &Backend, auth: &str) -> String {
    format!(
        r#"workers = 1

[listeners.public]
address = "127.0.0.1:0"

[[routes]]
forward_auth = {{ url = "http://{auth}/check", copy_headers = ["x-user"], timeout = "1s" }}
pool = "app"

[pools.app]
backends = ["{}"]
"#,
        backend.addr
    )
}

async fn forward_auth_over(c: C) {
    let asked = Arc::new(Asked::default());
    let auth = auth_service(asked.clone()).await;
    let b = Backend::start("app").await;
    let f = Fulcrum::start(&forward_config(&b, &auth.addr.to_string()));
    let url = format!("{}/orders?id=7", f.url("public"));
    // Allowed: the copied field reaches the backend, the client's spoofed one
    // (in either spelling) does not.
    let (status, _, _) = ask(
        &c,
        &url,
        &[
            ("authorization", "Bearer alice"),
            ("x-user", "admin"),
            ("x_user", "root"),
        ],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(b.last_header("x-user").as_deref(), Some("alice"));
    assert_eq!(b.last_header("x_user"), None);
    assert_eq!(
        b.last_header("x-other"),
        None,
        "only copy_headers are copied"
    );
    {
        let seen = asked.fields.lock().unwrap();
        let get = |n: &str| seen.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        assert_eq!(get("x-forwarded-method").as_deref(), Some("GET"));
        assert_eq!(get("x-forwarded-uri").as_deref(), Some("/orders?id=7"));
        assert_eq!(get("x-forwarded-proto").as_deref(), Some("http"));
        assert_eq!(get("x-forwarded-for").as_deref(), Some("127.0.0.1"));
        assert_eq!(
            get("x-user"),
            None,
            "the client's copy is not shown to the service either"
        );
        assert_eq!(*asked.method.lock().unwrap(), "GET");
    }
    // Allowed without the field: the client's spoofed one is still dropped.
    let (status, _, _) = ask(
        &c,
        &url,
        &[("authorization", "Bearer nobody"), ("x-user", "admin")],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(b.last_header("x-user"), None);
    // Denied: the service's status, its challenge and body; not its other fields.
    let before = b.requests();
    let (status, h, body) = ask(&c, &url, &[("authorization", "Bearer mallory")]).await;
    assert_eq!((status, body.as_str()), (401, "denied by auth\n"));
    assert_eq!(h.get("www-authenticate").unwrap(), "Bearer realm=\"auth\"");
    assert!(h.get("x-internal").is_none());
    // Too slow: 503, within the timeout.
    let started = std::time::Instant::now();
    assert_eq!(
        ask(&c, &url, &[("authorization", "Bearer slow")]).await.0,
        503
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(b.requests(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_auth_allows_denies_and_times_out_over_h1() {
    within(forward_auth_over(client())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_auth_allows_denies_and_times_out_over_h2() {
    within(forward_auth_over(h2_client())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_auth_service_is_503() {
    within(async {
        let b = Backend::start("app").await;
        // A port that was just free: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let f = Fulcrum::start(&forward_config(&b, &format!("127.0.0.1:{port}")));
        let (status, _, _) = ask(&client(), &format!("{}/", f.url("public")), &[]).await;
        assert_eq!(status, 503);
        assert_eq!(b.requests(), 0);
    })
    .await;
}
