//! Shaping at the edge through the real proxy, over HTTP/1.1 and HTTP/2: the
//! path's normal form (which route matched, what the backend saw), strip_prefix
//! and rewrite, header rules with placeholders on listener and route, a pool's
//! Host, redirect routes, and per-route body limits and timeouts.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};

use crate::support::*;

type C = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Full<Bytes>,
>;

/// The last method and target `b` received, and how many requests it took.
fn saw(b: &Backend) -> (String, usize) {
    (b.seen.last_target.lock().unwrap().clone(), b.requests())
}

/// One raw HTTP/1.1 GET of `target` (sent byte for byte); the status line.
fn raw_get(addr: SocketAddr, target: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let req = format!("GET {target} HTTP/1.1\r\nhost: shop.test\r\nconnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// One HTTP/2 GET of `target` (the `:path` as given); the status.
async fn h2_get(url: &str) -> u16 {
    let c = h2_client();
    let uri: hyper::Uri = url.parse().unwrap();
    c.get(uri).await.unwrap().status().as_u16()
}

fn paths_config(admin: &Backend, api: &Backend, web: &Backend) -> String {
    format!(
        r#"workers = 1

[listeners.public]
address = "127.0.0.1:0"

[[routes]]
path_prefix = "/admin"
pool = "admin"

[[routes]]
path_prefix = "/api"
strip_prefix = "/api"
pool = "api"

[[routes]]
pool = "web"

[pools.admin]
backends = [{}]

[pools.api]
backends = [{}]

[pools.web]
backends = [{}]
"#,
        quoted(admin),
        quoted(api),
        quoted(web)
    )
}

/// Each case: the target as sent, the backend that must get it (or none: 400) and
/// what it must see.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_path_a_route_matched_is_the_path_the_backend_sees() {
    within(async {
        let admin = Backend::start("admin").await;
        let api = Backend::start("api").await;
        let web = Backend::start("web").await;
        let f = Fulcrum::start(&paths_config(&admin, &api, &web));
        let addr = f.addr("public");
        let cases: &[(&str, Option<&Backend>, &str)] = &[
            // dot-segments: the /api rule does not hold /admin
            ("/api/../admin/users", Some(&admin), "GET /admin/users"),
            ("/api/./v1/../orders", Some(&api), "GET /orders"),
            ("/../../etc/passwd", Some(&web), "GET /etc/passwd"),
            // encoded dots are dots
            ("/api/%2e%2e/admin", Some(&admin), "GET /admin"),
            ("/api/.%2E/admin/x", Some(&admin), "GET /admin/x"),
            ("/%61dmin/x", Some(&admin), "GET /admin/x"),
            // encoded slashes are refused: a backend that decodes them would see
            // /api/../admin
            ("/api/..%2Fadmin", None, ""),
            ("/api/..%2fadmin", None, ""),
            ("/api/..%5Cadmin", None, ""),
            // double slashes merge
            ("//admin", Some(&admin), "GET /admin"),
            ("/api//v1///x", Some(&api), "GET /v1/x"),
            // case is kept: /API is not /api
            ("/API/x", Some(&web), "GET /API/x"),
            ("/Admin", Some(&web), "GET /Admin"),
            // strip_prefix then ..: resolved before routing, and only whole
            // segments are stripped
            ("/api/..", Some(&web), "GET /"),
            ("/api/%2e%2e/", Some(&web), "GET /"),
            (
                "/api/v1/..?next=/../admin",
                Some(&api),
                "GET /?next=/../admin",
            ),
            ("/api..", Some(&api), "GET /api.."),
            ("/api", Some(&api), "GET /"),
            // escapes stay escaped, in upper case
            ("/api/a%20b/%c3%a9", Some(&api), "GET /a%20b/%C3%A9"),
        ];
        for (target, backend, expect) in cases {
            for h2 in [false, true] {
                let before: Vec<usize> =
                    [&admin, &api, &web].iter().map(|b| b.requests()).collect();
                let status = if h2 {
                    h2_get(&format!("http://{addr}{target}")).await
                } else {
                    let line = tokio::task::spawn_blocking({
                        let target = target.to_string();
                        move || raw_get(addr, &target)
                    })
                    .await
                    .unwrap();
                    line.split(' ')
                        .nth(1)
                        .unwrap_or_default()
                        .parse()
                        .unwrap_or(0)
                };
                let after: Vec<usize> = [&admin, &api, &web].iter().map(|b| b.requests()).collect();
                let proto = if h2 { "h2" } else { "h1" };
                match backend {
                    None => {
                        assert_eq!(status, 400, "{proto} {target}");
                        assert_eq!(before, after, "{proto} {target} reached a backend");
                    }
                    Some(b) => {
                        assert_eq!(status, 200, "{proto} {target}");
                        let (seen, _) = saw(b);
                        assert_eq!(seen, *expect, "{proto} {target} at {}", b.name);
                        let moved: usize = after.iter().zip(&before).map(|(a, b)| a - b).sum();
                        assert_eq!(moved, 1, "{proto} {target}");
                    }
                }
            }
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encoded_slashes_can_be_kept_as_characters() {
    within(async {
        let admin = Backend::start("admin").await;
        let api = Backend::start("api").await;
        let web = Backend::start("web").await;
        let cfg = paths_config(&admin, &api, &web).replace(
            "address = \"127.0.0.1:0\"",
            "address = \"127.0.0.1:0\"\nencoded_slashes = \"keep\"",
        );
        let f = Fulcrum::start(&cfg);
        let addr = f.addr("public");
        let line = tokio::task::spawn_blocking(move || raw_get(addr, "/api/projects/a%2fb/../c"))
            .await
            .unwrap();
        assert!(line.contains(" 200 "), "{line}");
        // One segment `a%2Fb`, never a separator: `..` takes it whole.
        assert_eq!(saw(&api).0, "GET /projects/c");
        let line = tokio::task::spawn_blocking(move || raw_get(addr, "/api/..%2Fadmin"))
            .await
            .unwrap();
        assert!(line.contains(" 200 "), "{line}");
        assert_eq!(saw(&api).0, "GET /..%2Fadmin");
        assert_eq!(admin.requests(), 0);
    })
    .await;
}

/// One request with `headers`; status and response fields.
async fn ask(c: &C, method: &str, url: &str, headers: &[(&str, &str)]) -> (u16, hyper::HeaderMap) {
    let (status, fields, _) = fetch(c, method, url, headers).await;
    (status, fields)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_rules_rewrites_and_the_pool_host_reach_the_backend() {
    within(async {
        let app = Backend::with(
            "app",
            false,
            Arc::new(|_name: &str, _req| {
                hyper::Response::builder()
                    .header("x-powered-by", "php/5")
                    .header("server", "app")
                    .body(Full::new(Bytes::from_static(b"ok")))
                    .unwrap()
            }),
        )
        .await;
        let cfg = format!(
            r#"workers = 1

[listeners.public]
address = "127.0.0.1:0"
request_id = {{ header = "X-Request-Id" }}
request_headers = {{ set = {{ "X-Env" = "prod" }} }}
response_headers = {{ set = {{ "Strict-Transport-Security" = "max-age=63072000; includeSubDomains", "X-Content-Type-Options" = "nosniff", "X-Frame-Options" = "DENY" }}, remove = ["X-Powered-By"] }}

[[routes]]
name = "legacy"
path_prefix = "/old"
rewrite = {{ regex = '^/old/(.*)$', to = "/new/$1" }}
request_headers = {{ set = {{ "X-Client" = "{{client_ip}}", "X-Seen" = "{{scheme}}://{{host}} {{route}}" }}, remove = ["X-Debug"] }}
response_headers = {{ add = {{ "X-Route" = "{{route}}", "X-Id" = "{{request_id}}" }}, remove = ["Server"] }}
pool = "app"

[[routes]]
pool = "app"
response_headers = {{ set = {{ "X-Frame-Options" = "SAMEORIGIN" }} }}

[pools.app]
host = "backend.internal"
backends = [{}]
"#,
            quoted(&app)
        );
        let f = Fulcrum::start(&cfg);
        for (proto, c) in [("h1", client()), ("h2", h2_client())] {
            let url = format!("{}/old/a/b?q=1", f.url("public"));
            let (status, h) = ask(
                &c,
                "GET",
                &url,
                &[("x-debug", "1"), ("x_debug", "2"), ("x-env", "dev"), ("x-client", "spoofed")],
            )
            .await;
            assert_eq!(status, 200, "{proto}");
            assert_eq!(saw(&app).0, "GET /new/a/b?q=1", "{proto}");
            assert_eq!(app.last_header("host").as_deref(), Some("backend.internal"), "{proto}");
            let client_host = f.addr("public").to_string();
            assert_eq!(app.last_header("x-forwarded-host"), Some(client_host.clone()), "{proto}");
            assert_eq!(app.last_header("x-env").as_deref(), Some("prod"), "{proto}");
            assert_eq!(app.last_header("x-client").as_deref(), Some("127.0.0.1"), "{proto}");
            assert_eq!(
                app.last_header("x-seen"),
                Some(format!("http://{client_host} legacy")),
                "{proto}"
            );
            assert_eq!(app.last_header("x-debug"), None, "{proto}");
            assert_eq!(app.last_header("x_debug"), None, "{proto}");
            let one = |n: &str| h.get_all(n).iter().map(|v| v.to_str().unwrap().to_owned()).collect::<Vec<_>>();
            assert_eq!(one("strict-transport-security"), ["max-age=63072000; includeSubDomains"], "{proto}");
            assert_eq!(one("x-frame-options"), ["DENY"], "{proto}");
            assert_eq!(one("x-route"), ["legacy"], "{proto}");
            let id = one("x-request-id");
            assert_eq!(one("x-id"), id, "{proto}");
            assert!(one("x-powered-by").is_empty() && one("server").is_empty(), "{proto}");
            // The other route: the listener's rules, one of them overridden.
            let (_, h) = ask(&c, "GET", &format!("{}/x", f.url("public")), &[]).await;
            assert_eq!(saw(&app).0, "GET /x", "{proto}");
            let frame: Vec<_> = h.get_all("x-frame-options").iter().collect();
            assert_eq!(frame, ["SAMEORIGIN"], "{proto}");
            assert_eq!(h.get("server").map(|v| v.to_str().unwrap()), Some("app"), "{proto}");
            assert!(h.get("x-route").is_none() && h.get("x-powered-by").is_none(), "{proto}");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_routes_answer_at_the_edge() {
    within(async {
        let app = Backend::start("app").await;
        let cfg = format!(
            r#"workers = 1

[listeners.public]
address = "127.0.0.1:0"

[[routes]]
host = "localhost"
redirect = {{ to = "https://example.com{{path}}{{query}}", status = 301 }}

[[routes]]
path_prefix = "/docs/"
redirect = {{ to = "https://docs.example.com{{path}}", status = 308 }}

[[routes]]
path = "/moved"
redirect = {{ to = "/new-home" }}

[[routes]]
pool = "app"

[pools.app]
backends = [{}]
"#,
            quoted(&app)
        );
        let f = Fulcrum::start(&cfg);
        let base = f.url("public");
        for (proto, c) in [("h1", client()), ("h2", h2_client())] {
            // By host: www to apex, the path normalized, the query kept.
            let port = f.addr("public").port();
            let url = format!("http://localhost:{port}/a/../shop?item=1");
            let (status, h) = ask(&c, "GET", &url, &[]).await;
            assert_eq!(status, 301, "{proto}");
            assert_eq!(
                h.get("location").unwrap(),
                "https://example.com/shop?item=1",
                "{proto}"
            );
            let (status, h) = ask(&c, "POST", &format!("{base}/docs/guide?x=1"), &[]).await;
            assert_eq!(status, 308, "{proto}");
            assert_eq!(
                h.get("location").unwrap(),
                "https://docs.example.com/docs/guide",
                "{proto}"
            );
            let (status, h) = ask(&c, "GET", &format!("{base}/moved"), &[]).await;
            assert_eq!(status, 302, "{proto}");
            assert_eq!(h.get("location").unwrap(), "/new-home", "{proto}");
        }
        assert_eq!(app.requests(), 0);
        let (status, _) = ask(&client(), "GET", &format!("{base}/shop"), &[]).await;
        assert_eq!(status, 200);
        assert_eq!(app.requests(), 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_sets_its_own_body_limit_and_timeouts() {
    within(async {
        let app = Backend::streaming(
            "app",
            false,
            Arc::new(|seen, req: hyper::Request<hyper::body::Incoming>| {
                Box::pin(async move {
                    let slow = req.uri().path().starts_with("/slow");
                    let Ok(body) = req.into_body().collect().await else {
                        // The body broke off: never a complete request here.
                        seen.aborted.fetch_add(1, Ordering::Relaxed);
                        let empty = Full::new(Bytes::new()).boxed();
                        return hyper::Response::builder().status(400).body(empty).unwrap();
                    };
                    let body = body.to_bytes().len();
                    seen.requests.fetch_add(1, Ordering::Relaxed);
                    if slow {
                        tokio::time::sleep(Duration::from_secs(3)).await;
                    }
                    hyper::Response::new(Full::new(Bytes::from(body.to_string())).boxed())
                })
            }),
        )
        .await;
        let cfg = format!(
            r#"workers = 1

[listeners.public]
address = "127.0.0.1:0"
max_body_bytes = 1000

[[routes]]
path_prefix = "/upload"
max_body_bytes = 100000
pool = "app"

[[routes]]
path_prefix = "/small"
max_body_bytes = 10
pool = "app"

[[routes]]
path_prefix = "/slowtry"
per_try_timeout = "300ms"
pool = "app"

[[routes]]
path_prefix = "/slow"
upstream_timeout = "300ms"
pool = "app"

[[routes]]
pool = "app"

[pools.app]
upstream_timeout = "30s"
backends = [{}]
"#,
            quoted(&app)
        );
        let f = Fulcrum::start(&cfg);
        let base = f.url("public");
        let addr = f.addr("public");
        // HTTP/1.1, from the head alone (no body bytes sent, so the close that
        // follows a 413 loses nothing): the route's limit, not the listener's.
        let head = |path: &str, n: usize| {
            format!("POST {path} HTTP/1.1\r\nhost: a\r\ncontent-length: {n}\r\n\r\n")
        };
        for (path, n, status) in [("/other", 1001, 413), ("/upload", 100_001, 413)] {
            let req = head(path, n);
            let out = tokio::task::spawn_blocking(move || raw(addr, req.as_bytes(), Duration::from_secs(30)))
                .await
                .unwrap();
            assert!(out.starts_with(&format!("HTTP/1.1 {status} ")), "{path}: {out}");
        }
        // Chunked: found out while streaming, with the route's lower limit.
        let chunked = "POST /small HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n14\r\naaaaaaaaaaaaaaaaaaaa\r\n0\r\n\r\n";
        let out = tokio::task::spawn_blocking(move || raw(addr, chunked.as_bytes(), Duration::from_secs(30)))
            .await
            .unwrap();
        assert!(out.starts_with("HTTP/1.1 413 "), "{out}");
        // A streamed body may have started toward the backend; it never ends there.
        assert_eq!(app.requests(), 0, "a body over its route's limit reached the backend whole");
        for (proto, c) in [("h1", client()), ("h2", h2_client())] {
            let post = |path: &str, n: usize| {
                hyper::Request::post(format!("{base}{path}"))
                    .body(Full::new(Bytes::from(vec![b'x'; n])))
                    .unwrap()
            };
            let res = c.request(post("/upload", 50_000)).await.unwrap();
            assert_eq!(res.status(), 200, "{proto}");
            let body = res.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(&body[..], b"50000", "{proto}");
            if proto == "h2" {
                // HTTP/2 refuses a stream, not the connection: nothing is lost.
                let res = c.request(post("/other", 5_000)).await.unwrap();
                assert_eq!(res.status(), 413, "{proto}");
                let res = c.request(post("/upload", 200_000)).await.unwrap();
                assert_eq!(res.status(), 413, "{proto}");
            }
            for path in ["/slow", "/slowtry"] {
                let started = std::time::Instant::now();
                let (status, _) = ask(&c, "GET", &format!("{base}{path}"), &[]).await;
                assert_eq!(status, 504, "{proto} {path}");
                let took = started.elapsed();
                assert!(took < Duration::from_secs(3), "{proto} {path}: {took:?}");
            }
        }
    })
    .await;
}

#[test]
fn bad_shaping_keys_are_refused_with_the_key_and_reason() {
    let dir = TempDir::new();
    let path = dir.path("bad.toml");
    std::fs::write(
        &path,
        r#"[listeners.public]
address = "127.0.0.1:0"
response_headers = { set = { "Content-Length" = "0" } }

[[routes]]
redirect = { to = "https://x{nope}", status = 200 }

[[routes]]
pool = "app"
rewrite = { regex = "(", to = "/x" }
request_headers = { add = { "X-A" = "{path}" } }

[pools.app]
host = "a b"
backends = ["127.0.0.1:1"]
"#,
    )
    .unwrap();
    let (code, out) = check(&path);
    assert_ne!(code, 0);
    for needle in [
        "listeners.public.response_headers.set.Content-Length: Content-Length cannot be changed",
        "routes[0].redirect.status: must be 301, 302, 303, 307 or 308",
        "routes[0].redirect.to: unknown placeholder {nope}",
        "routes[1].rewrite.regex:",
        "routes[1].request_headers.add.X-A: unknown placeholder {path}",
        "pools.app.host: must be a host name",
    ] {
        assert!(out.contains(needle), "{needle}\n{out}");
    }
}

/// The API behind Fulcrum for the CORS tests: JSON, with a CORS field of its own
/// that Fulcrum must drop.
async fn json_api() -> Backend {
    Backend::with(
        "api",
        false,
        Arc::new(|_name: &str, _req| {
            hyper::Response::builder()
                .header("content-type", "application/json")
                .header("access-control-allow-origin", "*")
                .header("x-total-count", "3")
                .body(Full::new(Bytes::from_static(b"{\"items\":3}")))
                .unwrap()
        }),
    )
    .await
}

fn cors_config(api: &Backend, origin: &str) -> String {
    format!(
        r#"workers = 1

[listeners.public]
address = "127.0.0.1:0"

[[routes]]
path_prefix = "/api/"
cors = {{ origins = ["{origin}", "https://*.example.com"], methods = ["GET", "PUT"], headers = ["Content-Type", "X-Token"], expose = ["X-Total-Count"], credentials = true, max_age = "10m" }}
pool = "api"

[[routes]]
path_prefix = "/private/"
allow = ["192.0.2.0/24"]
cors = {{ origins = ["{origin}"] }}
pool = "api"

[[routes]]
pool = "api"

[pools.api]
backends = [{}]
"#,
        quoted(api)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_preflights_are_answered_at_the_edge() {
    within(async {
        let api = json_api().await;
        let cfg = cors_config(&api, "https://app.example.org");
        let f = Fulcrum::start(&cfg);
        let url = format!("{}/api/items", f.url("public"));
        for (proto, c) in [("h1", client()), ("h2", h2_client())] {
            let preflight = [
                ("origin", "https://app.example.org"),
                ("access-control-request-method", "PUT"),
                ("access-control-request-headers", "content-type, x-token"),
            ];
            let (status, h) = ask(&c, "OPTIONS", &url, &preflight).await;
            assert_eq!(status, 204, "{proto}");
            let get = |h: &hyper::HeaderMap, n: &str| {
                h.get_all(n)
                    .iter()
                    .map(|v| v.to_str().unwrap().to_owned())
                    .collect::<Vec<_>>()
                    .join("|")
            };
            assert_eq!(
                get(&h, "access-control-allow-origin"),
                "https://app.example.org",
                "{proto}"
            );
            assert_eq!(
                get(&h, "access-control-allow-methods"),
                "GET, PUT",
                "{proto}"
            );
            assert_eq!(
                get(&h, "access-control-allow-headers"),
                "Content-Type, X-Token",
                "{proto}"
            );
            assert_eq!(
                get(&h, "access-control-allow-credentials"),
                "true",
                "{proto}"
            );
            assert_eq!(get(&h, "access-control-max-age"), "600", "{proto}");
            // A wildcard origin, and one that is not allowed: no CORS fields.
            let sub = [
                ("origin", "https://shop.example.com"),
                ("access-control-request-method", "GET"),
            ];
            let (status, h) = ask(&c, "OPTIONS", &url, &sub).await;
            assert_eq!(
                (status, get(&h, "access-control-allow-origin")),
                (204, "https://shop.example.com".into()),
                "{proto}"
            );
            let evil = [
                ("origin", "https://evil.test"),
                ("access-control-request-method", "PUT"),
            ];
            let (status, h) = ask(&c, "OPTIONS", &url, &evil).await;
            assert_eq!(status, 403, "{proto}");
            assert!(
                h.keys().all(|k| !k.as_str().starts_with("access-control-")),
                "{proto}: {h:?}"
            );
            assert_eq!(
                api.requests(),
                0,
                "{proto}: a preflight reached the backend"
            );
            // Actual requests: the allow fields for an allowed origin only, the
            // backend's own `*` dropped, Vary: Origin always.
            let (status, h) = ask(&c, "GET", &url, &[("origin", "https://app.example.org")]).await;
            assert_eq!(status, 200, "{proto}");
            assert_eq!(
                get(&h, "access-control-allow-origin"),
                "https://app.example.org",
                "{proto}"
            );
            assert_eq!(
                get(&h, "access-control-expose-headers"),
                "X-Total-Count",
                "{proto}"
            );
            assert_eq!(
                get(&h, "access-control-allow-credentials"),
                "true",
                "{proto}"
            );
            assert_eq!(get(&h, "vary"), "Origin", "{proto}");
            let (_, h) = ask(&c, "GET", &url, &[("origin", "https://evil.test")]).await;
            assert!(
                h.keys().all(|k| !k.as_str().starts_with("access-control-")),
                "{proto}: {h:?}"
            );
            assert_eq!(get(&h, "vary"), "Origin", "{proto}");
            // Fulcrum's own refusal on a CORS route is readable by the allowed origin.
            let private = format!("{}/private/x", f.url("public"));
            let (status, h) = ask(
                &c,
                "GET",
                &private,
                &[("origin", "https://app.example.org")],
            )
            .await;
            assert_eq!(status, 403, "{proto}");
            assert_eq!(
                get(&h, "access-control-allow-origin"),
                "https://app.example.org",
                "{proto}"
            );
            // A plain OPTIONS (no Access-Control-Request-Method) goes to the backend.
            let before = api.requests();
            let (status, _) = ask(
                &c,
                "OPTIONS",
                &url,
                &[("origin", "https://app.example.org")],
            )
            .await;
            assert_eq!((status, api.requests()), (200, before + 1), "{proto}");
            api.seen.requests.store(0, Ordering::Relaxed);
        }
    })
    .await;
}

/// A page on one origin fetches a JSON API behind Fulcrum on another, in real
/// headless Chromium: the allowed origin reads it (its preflight answered by
/// Fulcrum, never seen by the backend), another origin is refused by the browser.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_on_an_allowed_origin_reads_the_api_and_another_cannot() {
    within(async {
        let page = |name: &'static str| {
            Backend::with(
                name,
                false,
                Arc::new(|_n: &str, _req| {
                    hyper::Response::builder()
                        .header("content-type", "text/html")
                        .body(Full::new(Bytes::from_static(b"<!doctype html><title>app</title><p>app</p>")))
                        .unwrap()
                }),
            )
        };
        let good = page("good").await;
        let evil = page("evil").await;
        let api = json_api().await;
        let origin = format!("http://{}", good.addr);
        let f = Fulcrum::start(&cors_config(&api, &origin));
        let Some(mut browser) = crate::dashboard::Browser::launch().await else {
            return;
        };
        // PUT with a JSON body and a custom field: the browser must preflight.
        let call = format!(
            "fetch('{}/api/items', {{ method: 'PUT', credentials: 'include', \
             headers: {{ 'Content-Type': 'application/json', 'X-Token': 't' }}, body: '{{}}' }})\
             .then(r => r.text().then(t => r.status + ' ' + t + ' ' + r.headers.get('x-total-count')))\
             .catch(e => 'refused: ' + e)",
            f.url("public")
        );
        browser.navigate(&format!("http://{}/", good.addr)).await;
        let got = browser.eval(&call).await;
        assert_eq!(got, "200 {\"items\":3} 3", "{got}");
        // The backend saw the PUT only; its preflight was answered by Fulcrum.
        assert_eq!(api.requests(), 1);
        assert!(saw(&api).0.starts_with("PUT "), "{:?}", saw(&api));
        let lines = f.wait_access_log(2);
        let preflight = lines.iter().find(|l| l["method"] == "OPTIONS").expect("the preflight reached Fulcrum");
        assert_eq!(preflight["status"], 204, "{lines:?}");
        browser.navigate(&format!("http://{}/", evil.addr)).await;
        let got = browser.eval(&call).await;
        assert!(got.as_str().is_some_and(|s| s.starts_with("refused: TypeError")), "{got}");
        // Its preflight was refused at the edge: the PUT was never sent.
        assert_eq!(api.requests(), 1);
        browser.close().await;
    })
    .await;
}
