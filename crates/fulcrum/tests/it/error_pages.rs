//! `error_pages` through the real proxy, over HTTP/1.1 and HTTP/2: a listener's
//! pages for the errors Fulcrum answers itself (502, 404, 431), a route's own over
//! them, JSON for a client that asks for it, and a missing page file refused at
//! check and at reload (the old config keeps serving).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;

use crate::support::*;

type C = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Full<Bytes>,
>;

async fn ask(c: &C, url: &str, accept: Option<&str>) -> (u16, String, String) {
    let accept: Vec<(&str, &str)> = accept.map(|a| ("accept", a)).into_iter().collect();
    let (status, h, body) = fetch(c, "GET", url, &accept).await;
    let ct = h
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, ct, String::from_utf8_lossy(&body).into_owned())
}

fn config(dir: &TempDir, app: &Backend) -> String {
    let p = |name: &str| dir.path(name).display().to_string();
    format!(
        r#"workers = 1

[listeners.public]
address = "127.0.0.1:0"
max_header_bytes = 1024
request_id = {{ header = "X-Request-Id" }}
error_pages = {{ 502 = "{}", 404 = "{}", 431 = "{}", 403 = "{}" }}

[[routes]]
path_prefix = "/down"
pool = "dead"

[[routes]]
path_prefix = "/staff"
allow = ["192.0.2.0/24"]
error_pages = {{ 403 = "{}" }}
pool = "app"

[[routes]]
path_prefix = "/app"
allow = ["192.0.2.0/24"]
pool = "app"

[pools.dead]
connect_timeout = "2s"
backends = ["127.0.0.1:1"]

[pools.app]
backends = [{}]
"#,
        p("502.html"),
        p("404.html"),
        p("431.txt"),
        p("403.html"),
        p("staff-403.html"),
        quoted(app)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fulcrums_own_errors_get_the_configured_pages_or_json() {
    within(async {
        let dir = TempDir::new();
        for (name, text) in [
            ("502.html", "<h1>We will be right back</h1>"),
            ("404.html", "<h1>No such page</h1>"),
            ("431.txt", "headers too large"),
            ("403.html", "<h1>Not for you</h1>"),
            ("staff-403.html", "<h1>Staff only</h1>"),
        ] {
            std::fs::write(dir.path(name), text).unwrap();
        }
        let app = Backend::start("app").await;
        let f = Fulcrum::start(&config(&dir, &app));
        let base = f.url("public");
        let html = "text/html; charset=utf-8";
        for (proto, c) in [("h1", client()), ("h2", h2_client())] {
            let got = ask(&c, &format!("{base}/down"), None).await;
            assert_eq!(
                got,
                (502, html.into(), "<h1>We will be right back</h1>".into()),
                "{proto}"
            );
            let got = ask(&c, &format!("{base}/nowhere"), Some("text/html,*/*;q=0.8")).await;
            assert_eq!(
                got,
                (404, html.into(), "<h1>No such page</h1>".into()),
                "{proto}"
            );
            // A policy's refusal: the listener's page, and a route's own over it.
            let got = ask(&c, &format!("{base}/app"), None).await;
            assert_eq!(
                got,
                (403, html.into(), "<h1>Not for you</h1>".into()),
                "{proto}"
            );
            let got = ask(&c, &format!("{base}/staff"), None).await;
            assert_eq!(
                got,
                (403, html.into(), "<h1>Staff only</h1>".into()),
                "{proto}"
            );
            // An API client gets JSON instead, with the request ID.
            let (status, ct, body) =
                ask(&c, &format!("{base}/down"), Some("application/json")).await;
            assert_eq!((status, ct.as_str()), (502, "application/json"), "{proto}");
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(v["status"], 502, "{proto}");
            assert_eq!(v["error"], "Bad Gateway", "{proto}");
            assert_eq!(
                v["request_id"].as_str().map(str::len),
                Some(32),
                "{proto}: {body}"
            );
            let (status, ct, _) = ask(&c, &format!("{base}/app"), Some("application/json")).await;
            assert_eq!((status, ct.as_str()), (403, "application/json"), "{proto}");
        }
        // An error before any route: a head over max_header_bytes.
        let addr = f.addr("public");
        let big = format!(
            "GET / HTTP/1.1\r\nhost: a\r\nx-big: {}\r\n\r\n",
            "a".repeat(2000)
        );
        let out =
            tokio::task::spawn_blocking(move || raw(addr, big.as_bytes(), Duration::from_secs(30)))
                .await
                .unwrap();
        assert!(out.starts_with("HTTP/1.1 431 "), "{out}");
        assert!(out.ends_with("\r\n\r\nheaders too large"), "{out}");
        assert!(
            out.contains("content-type: text/plain; charset=utf-8\r\n"),
            "{out}"
        );
        assert_eq!(app.requests(), 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_page_is_a_config_error_and_a_reload_keeps_the_old_pages() {
    within(async {
        let dir = TempDir::new();
        for name in [
            "502.html",
            "404.html",
            "431.txt",
            "403.html",
            "staff-403.html",
        ] {
            std::fs::write(dir.path(name), format!("page {name}")).unwrap();
        }
        let app = Backend::start("app").await;
        let good = config(&dir, &app);
        let f = Fulcrum::start(&good);
        let bad = good.replace("staff-403.html", "gone.html");
        let file = dir.path("bad.toml");
        std::fs::write(&file, &bad).unwrap();
        let (code, out) = check(&file);
        assert_ne!(code, 0);
        assert!(
            out.contains("routes[1].error_pages.403:") && out.contains("gone.html"),
            "{out}"
        );
        let line = f.reload(&bad);
        assert!(
            line.contains("reload failed") && line.contains("gone.html"),
            "{line}"
        );
        let got = ask(&client(), &format!("{}/staff", f.url("public")), None).await;
        assert_eq!(got.2, "page staff-403.html");
    })
    .await;
}
