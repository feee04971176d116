//! `allow` and `deny` on listeners and routes: over IPv4 and IPv6, over HTTP/1.1 and
//! HTTP/2, through a PROXY protocol v2 header (the client it names is the one
//! judged), and on a tcp listener, where a refused connection is closed unread.

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;

/// Sends `bytes` on a new connection to `addr`, then ends its sending half; returns
/// all that came back.
async fn send(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let _ = s.shutdown().await;
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out).await;
    String::from_utf8_lossy(&out).into_owned()
}

const GET: &[u8] = b"GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";

fn status(reply: &str) -> &str {
    reply.get(9..12).unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listeners_and_routes_refuse_by_address() {
    within(async {
        let b = Backend::start("b").await;
        let config = format!(
            "workers = 1\n\
             [listeners.closed]\naddress = \"127.0.0.1:0\"\nallow = [\"10.0.0.0/8\"]\n\n\
             [listeners.open]\naddress = \"127.0.0.1:0\"\ndeny = [\"192.0.2.0/24\"]\n\n\
             [listeners.six]\naddress = \"[::1]:0\"\ndeny = [\"::1\"]\n\n\
             [listeners.six_ok]\naddress = \"[::1]:0\"\nallow = [\"::1/128\"]\n\n\
             [[routes]]\npath_prefix = \"/admin\"\ndeny = [\"127.0.0.0/8\"]\npool = \"p\"\n\n\
             [[routes]]\npool = \"p\"\n\n[pools.p]\nbackends = [{}]\n",
            quoted(&b)
        );
        let f = Fulcrum::start(&config);
        let r = send(f.addr("closed"), GET).await;
        assert_eq!(status(&r), "403", "{r}");
        let r = send(f.addr("open"), GET).await;
        assert_eq!(status(&r), "200", "{r}");
        // The route's own list: /admin refuses loopback clients, / serves them.
        let r = send(
            f.addr("open"),
            b"GET /admin/x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert_eq!(status(&r), "403", "{r}");
        assert_eq!(b.requests(), 1, "a refused request reached the backend");
        // IPv6.
        assert_eq!(status(&send(f.addr("six"), GET).await), "403");
        assert_eq!(status(&send(f.addr("six_ok"), GET).await), "200");
        // HTTP/2 is refused alike.
        let res = h2_client()
            .request(
                hyper::Request::get(format!("{}/x", f.url("closed")))
                    .body(Full::new(Bytes::new()))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(res.status(), 403);
        assert_eq!(b.requests(), 2);
        let lines = f.wait_access_log(6);
        assert_eq!(
            lines.iter().filter(|l| l["status"] == 403).count(),
            4,
            "{lines:?}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_a_proxy_header_names_is_the_one_judged() {
    use fulcrum_core::proxy_protocol::write_v2;
    within(async {
        let b = Backend::start("b").await;
        let echo = TcpEcho::start().await;
        let config = format!(
            "workers = 1\n\
             [listeners.web]\naddress = \"127.0.0.1:0\"\nproxy_protocol = \"v2\"\nproxy_protocol_from = [\"127.0.0.1\"]\nallow = [\"203.0.113.0/24\"]\n\n\
             [listeners.db]\naddress = \"127.0.0.1:0\"\nprotocol = \"tcp\"\npool = \"echo\"\nproxy_protocol = \"v2\"\nproxy_protocol_from = [\"127.0.0.1\"]\ndeny = [\"198.51.100.0/24\"]\n\n\
             [listeners.plain_db]\naddress = \"127.0.0.1:0\"\nprotocol = \"tcp\"\npool = \"echo\"\ndeny = [\"127.0.0.1\"]\n\n\
             [[routes]]\npool = \"p\"\n\n[pools.p]\nbackends = [{}]\n\n[pools.echo]\nbackends = [{}]\n",
            quoted(&b),
            echo.quoted()
        );
        let f = Fulcrum::start(&config);
        let with_header = |src: &str, dst: SocketAddr, rest: &[u8]| {
            let mut out = Vec::new();
            write_v2(&mut out, src.parse().unwrap(), dst, false);
            out.extend_from_slice(rest);
            out
        };
        let web = f.addr("web");
        let r = send(web, &with_header("203.0.113.7:4000", web, GET)).await;
        assert_eq!(status(&r), "200", "{r}");
        // The socket's peer (127.0.0.1) is allowed to send the header, not to be served.
        let r = send(web, &with_header("198.51.100.7:4000", web, GET)).await;
        assert_eq!(status(&r), "403", "{r}");
        // A tcp listener: the denied client's connection is closed, nothing echoed.
        let db = f.addr("db");
        assert_eq!(send(db, &with_header("203.0.113.7:4000", db, b"ping")).await, "ping");
        let refused = send(db, &with_header("198.51.100.7:4000", db, b"ping")).await;
        assert!(refused.is_empty(), "{refused:?}");
        // Without a header the peer itself is judged, before any byte is read.
        let refused = send(f.addr("plain_db"), b"ping").await;
        assert!(refused.is_empty(), "{refused:?}");
        assert_eq!(echo.accepted(), 1, "a refused connection reached the backend");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_holds_at_most_its_share_of_connections() {
    within(async {
        let b = Backend::start("b").await;
        let config = format!(
            "workers = 2\n[listeners.web]\naddress = \"127.0.0.1:0\"\nmax_connections_per_client = 2\n\n\
             [[routes]]\npool = \"p\"\n\n[pools.p]\nbackends = [{}]\n",
            quoted(&b)
        );
        let f = Fulcrum::start(&config);
        let addr = f.addr("web");
        let keep = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        let mut held = Vec::new();
        for _ in 0..2 {
            let mut w = crate::support_wire::Wire::connect(addr).await;
            w.send(keep).await;
            assert_eq!(w.response(false).await.status, 200);
            held.push(w);
        }
        // A third from the same address is closed unanswered.
        let r = send(addr, GET).await;
        assert!(r.is_empty(), "{r}");
        // When one closes, its place is free again.
        drop(held.pop());
        let deadline = std::time::Instant::now() + TIMEOUT;
        loop {
            let r = send(addr, GET).await;
            if status(&r) == "200" {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "the freed place never came back");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        drop(held);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_trusted_proxies_name_the_client() {
    within(async {
        let b = Backend::start("b").await;
        let config = format!(
            "workers = 1\n\
             [listeners.behind]\naddress = \"127.0.0.1:0\"\ntrusted_proxies = [\"127.0.0.0/8\"]\nallow = [\"203.0.113.0/24\"]\n\n\
             [listeners.edge]\naddress = \"127.0.0.1:0\"\n\n\
             [[routes]]\npool = \"p\"\n\n[pools.p]\nbackends = [{}]\n",
            quoted(&b)
        );
        let f = Fulcrum::start(&config);
        let req = |xff: &str| {
            format!("GET /x HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: {xff}\r\nConnection: close\r\n\r\n")
        };
        // Behind a trusted proxy: the client it names is judged, logged and passed on.
        let r = send(f.addr("behind"), req("198.51.100.1, 203.0.113.9").as_bytes()).await;
        assert_eq!(status(&r), "200", "{r}");
        assert_eq!(
            b.last_header("x-forwarded-for").as_deref(),
            Some("198.51.100.1, 203.0.113.9, 127.0.0.1")
        );
        let r = send(f.addr("behind"), req("203.0.113.9, 198.51.100.1").as_bytes()).await;
        assert_eq!(status(&r), "403", "the rightmost untrusted hop is the client: {r}");
        // At the edge, a client's own X-Forwarded-For says nothing.
        let r = send(f.addr("edge"), req("203.0.113.9").as_bytes()).await;
        assert_eq!(status(&r), "200", "{r}");
        assert_eq!(b.last_header("x-forwarded-for").as_deref(), Some("127.0.0.1"));
        let lines = f.wait_access_log(3);
        let behind = lines.iter().find(|l| l["listener"] == "behind" && l["status"] == 200).unwrap();
        assert_eq!(behind["client"], "203.0.113.9:0", "{behind}");
        let edge = lines.iter().find(|l| l["listener"] == "edge").unwrap();
        assert!(edge["client"].as_str().unwrap().starts_with("127.0.0.1:"), "{edge}");
    })
    .await;
}
