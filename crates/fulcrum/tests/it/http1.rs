//! HTTP/1.1 proxying: keep-alive, headers, bodies.

use std::time::Duration;

use crate::balance::futures_join;
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_reuses_upstream_connections() {
    within(async {
        let b = futures_join(["a"]).await;
        let f = Fulcrum::start(&one_pool("round_robin", &[quoted(&b[0])], ""));
        let c = client();
        for _ in 0..1000 {
            let (status, _, _) = get(&c, &format!("{}/", f.url("public"))).await;
            assert_eq!(status, 200);
        }
        assert_eq!(b[0].requests(), 1000);
        assert!(
            b[0].connections() <= 2,
            "opened {} upstream connections for 1000 requests",
            b[0].connections()
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_headers_are_set_and_hop_by_hop_removed() {
    within(async {
        let b = futures_join(["a"]).await;
        let f = Fulcrum::start(&one_pool("round_robin", &[quoted(&b[0])], ""));
        let req = "GET /h HTTP/1.1\r\nHost: example.test\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\nKeep-Alive: timeout=5\r\nX-Forwarded-For: 10.0.0.1\r\nVia: 1.0 other\r\nX-Keep: yes\r\nConnection: close\r\n\r\n";
        let out = raw(f.addr("public"), req.as_bytes(), Duration::from_secs(30));
        assert!(out.starts_with("HTTP/1.1 200"), "{out}");
        assert_eq!(b[0].last_header("host").as_deref(), Some("example.test"));
        // The client is no trusted proxy: its own X-Forwarded-For is replaced.
        assert_eq!(b[0].last_header("x-forwarded-for").as_deref(), Some("127.0.0.1"));
        assert_eq!(b[0].last_header("x-forwarded-proto").as_deref(), Some("http"));
        assert_eq!(b[0].last_header("x-forwarded-host").as_deref(), Some("example.test"));
        assert_eq!(b[0].last_header("via").as_deref(), Some("1.0 other, 1.1 fulcrum"));
        assert_eq!(b[0].last_header("x-keep").as_deref(), Some("yes"));
        assert_eq!(b[0].last_header("x-secret"), None);
        assert_eq!(b[0].last_header("keep-alive"), None);
        assert_eq!(b[0].last_header("connection"), None);
    })
    .await;
}
