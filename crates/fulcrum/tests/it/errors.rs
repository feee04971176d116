//! Every error status, each with an access log line, and the process serving normally
//! after it.

use std::time::{Duration, Instant};

use crate::support::*;
use crate::support_stream::sleepy;
use crate::support_wire::{exchange, Wire};

/// One listener `public` (with `listener_extra`) and one pool `p` over `backends`.
fn config(listener_extra: &str, backends: &[String], pool_extra: &str) -> String {
    format!(
        "workers = 1\n\n[listeners.public]\naddress = \"127.0.0.1:0\"\n{listener_extra}\n\n[[routes]]\npool = \"p\"\n\n[pools.p]\nbackends = [{}]\n{pool_extra}\n",
        backends.join(", ")
    )
}

/// An address where nothing listens: bound, then closed.
fn dead_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    format!("\"{addr}\"")
}

/// A plain request on a new connection answers 200.
async fn still_serves(f: &Fulcrum, host: &str) {
    let mut w = Wire::connect(f.addr("public")).await;
    w.send(format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes())
        .await;
    let r = w.response(false).await;
    assert_eq!(r.status, 200, "{r:?}");
}

/// Sends `req` alone on a connection; expects `status` and the connection closed.
async fn rejected(f: &Fulcrum, req: &[u8], status: u16) {
    let (out, end) = exchange(f.addr("public"), req).await;
    assert!(
        out.starts_with(&format!("HTTP/1.1 {status} ")),
        "wanted {status}, got {out:?}"
    );
    assert!(end.is_closed(), "connection left open after {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_request_is_400_and_closed() {
    within(async {
        let b = Backend::start("a").await;
        let f = Fulcrum::start(&config("", &[quoted(&b)], ""));
        rejected(
            &f,
            b"GET / HTTP/1.1\r\nHost: a\r\nno colon here\r\n\r\n",
            400,
        )
        .await;
        rejected(
            &f,
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
            400,
        )
        .await;
        f.wait_status(400).await;
        assert_eq!(b.requests(), 0);
        still_serves(&f, "a").await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_section_over_limit_is_431() {
    within(async {
        let b = Backend::start("a").await;
        let f = Fulcrum::start(&config("max_header_bytes = 4096", &[quoted(&b)], ""));
        // Just under the limit passes.
        let mut w = Wire::connect(f.addr("public")).await;
        w.send(
            format!(
                "GET / HTTP/1.1\r\nHost: a\r\nX-Pad: {}\r\n\r\n",
                "p".repeat(3900)
            )
            .as_bytes(),
        )
        .await;
        assert_eq!(w.response(false).await.status, 200);
        let big = format!(
            "GET / HTTP/1.1\r\nHost: a\r\nX-Pad: {}\r\n\r\n",
            "p".repeat(5000)
        );
        rejected(&f, big.as_bytes(), 431).await;
        let line = f.wait_status(431).await;
        assert_eq!(line["listener"], "public", "{line}");
        assert_eq!(b.requests(), 1);
        still_serves(&f, "a").await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_over_limit_is_413_by_length_and_chunked() {
    within(async {
        let b = Backend::start("a").await;
        let f = Fulcrum::start(&config("max_body_bytes = 1000", &[quoted(&b)], ""));
        // Content-Length over the limit: refused from the head alone.
        rejected(&f, b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1001\r\n\r\n", 413).await;
        assert_eq!(b.arrived(), 0, "a body known to be too large was forwarded");
        // Exactly the limit passes.
        let mut w = Wire::connect(f.addr("public")).await;
        w.send(format!("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\n{}", "x".repeat(1000)).as_bytes()).await;
        assert_eq!(w.response(false).await.status, 200);
        assert_eq!(b.last_body().len(), 1000);
        // Chunked: found out while streaming.
        let chunked = format!("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n258\r\n{0}\r\n258\r\n{0}\r\n0\r\n\r\n", "y".repeat(600));
        rejected(&f, chunked.as_bytes(), 413).await;
        let lines = f.wait_access_log(3);
        assert_eq!(lines.iter().filter(|l| l["status"] == 413).count(), 2, "{lines:?}");
        assert_eq!(b.requests(), 1, "the too-large chunked body reached the backend whole");
        still_serves(&f, "a").await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_route_is_404() {
    within(async {
        let b = Backend::start("a").await;
        let cfg = config("", &[quoted(&b)], "")
            .replace("[[routes]]\npool", "[[routes]]\nhost = \"only.test\"\npool");
        let f = Fulcrum::start(&cfg);
        let mut w = Wire::connect(f.addr("public")).await;
        w.send(b"GET / HTTP/1.1\r\nHost: other.test\r\n\r\n").await;
        let r = w.response(false).await;
        assert_eq!(r.status, 404, "{r:?}");
        // A 404 is not the client's fault: the connection stays usable.
        w.send(b"GET / HTTP/1.1\r\nHost: only.test\r\n\r\n").await;
        assert_eq!(w.response(false).await.status, 200);
        let line = f.wait_status(404).await;
        assert_eq!(line["host"], "other.test", "{line}");
        assert_eq!(b.requests(), 1);
        still_serves(&f, "only.test").await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_backends_are_502_after_trying_each() {
    within(async {
        let live = Backend::start("live").await;
        let cfg = format!(
            "workers = 1\n[listeners.public]\naddress = \"127.0.0.1:0\"\n\
             [[routes]]\npath_prefix = \"/ok\"\npool = \"live\"\n[[routes]]\npool = \"dead\"\n\
             [pools.live]\nbackends = [{}]\n[pools.dead]\nbackends = [{}, {}]\n",
            quoted(&live),
            dead_addr(),
            dead_addr()
        );
        let f = Fulcrum::start(&cfg);
        let mut w = Wire::connect(f.addr("public")).await;
        w.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await;
        let r = w.response(false).await;
        assert_eq!(r.status, 502, "{r:?}");
        let line = f.wait_status(502).await;
        assert_eq!(line["attempts"], 2, "{line}");
        assert_eq!(line["pool"], "dead", "{line}");
        w.send(b"GET /ok HTTP/1.1\r\nHost: a\r\n\r\n").await;
        assert_eq!(w.response(false).await.status, 200);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_attempts_caps_the_backends_tried() {
    within(async {
        let cfg = config(
            "",
            &[dead_addr(), dead_addr(), dead_addr()],
            "connect_attempts = 1",
        );
        let f = Fulcrum::start(&cfg);
        let mut w = Wire::connect(f.addr("public")).await;
        w.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await;
        assert_eq!(w.response(false).await.status, 502);
        let line = f.wait_status(502).await;
        assert_eq!(line["attempts"], 1, "{line}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_backend_is_skipped_for_the_next() {
    within(async {
        let live = Backend::start("live").await;
        let f = Fulcrum::start(&config("", &[dead_addr(), quoted(&live)], ""));
        let c = client();
        for i in 0..20 {
            let (status, backend, _) = get(&c, &format!("{}/{i}", f.url("public"))).await;
            assert_eq!((status, backend.as_str()), (200, "live"), "request {i}");
        }
        assert_eq!(live.requests(), 20);
        let lines = f.wait_access_log(20);
        assert!(lines.iter().all(|l| l["status"] == 200), "{lines:?}");
        // Round robin puts the dead one first every other request.
        assert!(
            lines.iter().filter(|l| l["attempts"] == 2).count() >= 9,
            "{lines:?}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_backend_is_504() {
    within(async {
        let b = Backend::streaming("slow", false, sleepy(Duration::from_secs(2))).await;
        let f = Fulcrum::start(&config("", &[quoted(&b)], "upstream_timeout = \"300ms\""));
        let mut w = Wire::connect(f.addr("public")).await;
        let started = Instant::now();
        w.send(b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\n").await;
        let r = w.response(false).await;
        assert_eq!(r.status, 504, "{r:?}");
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(300) && took < Duration::from_millis(1900),
            "504 after {took:?}"
        );
        let line = f.wait_status(504).await;
        assert_eq!(line["path"], "/slow", "{line}");
        still_serves(&f, "a").await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absolute_form_for_an_unnamed_host_goes_nowhere() {
    within(async {
        let b = Backend::start("a").await;
        let f = Fulcrum::start(&config("", &[quoted(&b)], ""));
        let mut w = Wire::connect(f.addr("public")).await;
        w.send(b"GET http://evil.test/ HTTP/1.1\r\nHost: evil.test\r\n\r\n")
            .await;
        let r = w.response(false).await;
        assert_eq!(r.status, 404, "{r:?}");
        // The authority wins over a Host field that a route would take.
        w.send(b"GET http://evil.test/x HTTP/1.1\r\nHost: a\r\n\r\n")
            .await;
        assert_eq!(w.response(false).await.status, 404);
        f.wait_status(404).await;
        assert_eq!(b.arrived(), 0, "an absolute-form request was forwarded");
        still_serves(&f, "a").await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_is_405() {
    within(async {
        let b = Backend::start("a").await;
        let f = Fulcrum::start(&config("", &[quoted(&b)], ""));
        let mut w = Wire::connect(f.addr("public")).await;
        w.send(b"CONNECT evil.test:443 HTTP/1.1\r\nHost: evil.test:443\r\n\r\n")
            .await;
        let r = w.response(false).await;
        assert_eq!(r.status, 405, "{r:?}");
        let line = f.wait_status(405).await;
        assert_eq!(line["method"], "CONNECT", "{line}");
        assert_eq!(b.arrived(), 0);
        still_serves(&f, "a").await;
    })
    .await;
}
