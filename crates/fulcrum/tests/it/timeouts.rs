//! Client-side timeouts: slow heads are cut off by `header_timeout` while others are
//! served, and idle keep-alive connections close after `keepalive_timeout`.

use std::time::{Duration, Instant};

use crate::support::*;
use crate::support_wire::{End, Wire};

fn config(b: &Backend, listener_extra: &str) -> String {
    format!(
        "workers = 1\n[listeners.public]\naddress = \"127.0.0.1:0\"\n{listener_extra}\n[[routes]]\npool = \"p\"\n[pools.p]\nbackends = [{}]\n",
        quoted(b)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_a_head_is_cut_off_while_others_are_served() {
    within(async {
        let b = Backend::start("a").await;
        let f = Fulcrum::start(&config(&b, "header_timeout = \"1s\""));
        let mut slow = Wire::connect(f.addr("public")).await;
        let started = Instant::now();
        slow.send(b"GET / HTTP/1.1\r\nHost: a\r\nX-Half: ").await;
        // One worker: another client is served while the slow one holds its connection.
        let c = client();
        let (status, _, _) = get(&c, &format!("{}/", f.url("public"))).await;
        assert_eq!(status, 200);
        assert!(
            started.elapsed() < Duration::from_millis(900),
            "too slow to tell: {:?}",
            started.elapsed()
        );
        assert!(
            slow.is_idle_open(Duration::from_millis(50)).await,
            "the slow client was cut off early"
        );
        let (out, end) = slow.read_to_end(Duration::from_secs(20)).await;
        let took = started.elapsed();
        assert!(
            end.is_closed(),
            "the slow client is still connected after {took:?}"
        );
        assert!(
            took >= Duration::from_millis(1000),
            "cut off after {took:?}, before header_timeout"
        );
        assert!(
            out.is_empty() || out.starts_with("HTTP/1.1 408 "),
            "{out:?}"
        );
        assert_eq!(b.requests(), 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickling_head_is_cut_off_at_the_deadline() {
    within(async {
        let b = Backend::start("a").await;
        let f = Fulcrum::start(&config(&b, "header_timeout = \"500ms\""));
        let mut slow = Wire::connect(f.addr("public")).await;
        let started = Instant::now();
        slow.send(b"GET / HTTP/1.1\r\nHost: a\r\nX-Drip: ").await;
        // One byte every 50 ms: each read is quick, the head never ends.
        let mut end = End::Open;
        while started.elapsed() < Duration::from_secs(20) {
            if !slow.send(b"a").await {
                break;
            }
            let (_, e) = slow.read_to_end(Duration::from_millis(50)).await;
            end = e;
            if end.is_closed() {
                break;
            }
        }
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(5),
            "a trickling client held its connection for {took:?} ({end:?})"
        );
        assert!(took >= Duration::from_millis(500), "cut off after {took:?}");
        assert_eq!(b.arrived(), 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_is_closed_after_header_timeout() {
    within(async {
        let b = Backend::start("a").await;
        let f = Fulcrum::start(&config(&b, "header_timeout = \"500ms\""));
        let mut w = Wire::connect(f.addr("public")).await;
        let started = Instant::now();
        let (out, end) = w.read_to_end(Duration::from_secs(20)).await;
        let took = started.elapsed();
        assert!(
            end.is_closed(),
            "silent connection still open after {took:?}"
        );
        assert!(took >= Duration::from_millis(450), "closed after {took:?}");
        assert_eq!(
            out, "",
            "nothing should be sent to a client that sent nothing"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keep_alive_connection_is_closed() {
    within(async {
        let b = Backend::start("a").await;
        let f = Fulcrum::start(&config(&b, "keepalive_timeout = \"500ms\""));
        let mut w = Wire::connect(f.addr("public")).await;
        w.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await;
        assert_eq!(w.response(false).await.status, 200);
        let idle_since = Instant::now();
        let (out, end) = w.read_to_end(Duration::from_secs(20)).await;
        let took = idle_since.elapsed();
        assert!(
            end.is_closed(),
            "idle keep-alive connection still open after {took:?}"
        );
        assert!(took >= Duration::from_millis(450), "closed after {took:?}");
        assert!(
            took < Duration::from_secs(5),
            "closed only after {took:?}, not after keepalive_timeout (500ms)"
        );
        assert_eq!(out, "");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_idle_longer_than_header_timeout_is_kept() {
    within(async {
        let b = Backend::start("a").await;
        let f = Fulcrum::start(&config(
            &b,
            "header_timeout = \"300ms\"\nkeepalive_timeout = \"20s\"",
        ));
        let mut w = Wire::connect(f.addr("public")).await;
        w.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await;
        assert_eq!(w.response(false).await.status, 200);
        // Idle for three header timeouts: the keep-alive timeout governs.
        assert!(
            w.is_idle_open(Duration::from_millis(900)).await,
            "idle keep-alive closed by the header timeout"
        );
        w.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await;
        assert_eq!(w.response(false).await.status, 200);
        assert_eq!(b.requests(), 2);
    })
    .await;
}
