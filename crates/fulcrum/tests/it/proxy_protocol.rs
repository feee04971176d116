//! PROXY protocol: headers taken on tcp and http listeners (v1, v2, LOCAL, a network
//! not listed, truncated and malformed headers), headers sent to tcp and http pools
//! (and health probes), and a listener's `max_connections`.

mod peers;

use bytes::Bytes;
use fulcrum_core::proxy_protocol::{self, Version};
use http_body_util::Full;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::TcpEcho as Echo;
use crate::support::*;
use peers::*;

/// The client a load balancer in front of Fulcrum reports, in v4 and v6.
const CLIENT_V4: &str = "203.0.113.7:40000";
const CLIENT_V6: &str = "[2001:db8::7]:40001";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_listener_takes_v1_and_v2_headers() {
    within(async {
        let echo = Echo::start().await;
        let f = Fulcrum::start(&format!(
            "workers = 1\n\n{}{}[pools.p]\nbackends = [\"{}\"]\n",
            tcp_listener("one", "p", &takes("v1", "127.0.0.0/8")),
            tcp_listener("two", "p", &takes("v2", "127.0.0.1")),
            echo.addr
        ));
        let cases = [
            (
                "one",
                header(Version::V1, CLIENT_V4, f.addr("one")),
                CLIENT_V4,
            ),
            (
                "two",
                header(Version::V2, CLIENT_V6, f.addr("two")),
                CLIENT_V6,
            ),
        ];
        for (listener, mut first, _) in cases.clone() {
            // The header and the stream's first bytes in one segment: nothing after
            // the header may be lost.
            first.extend_from_slice(b"hello, ");
            let mut s = TcpStream::connect(f.addr(listener)).await.unwrap();
            s.write_all(&first).await.unwrap();
            s.write_all(b"world").await.unwrap();
            s.shutdown().await.unwrap();
            assert_eq!(until_closed(&mut s).await, b"hello, world", "{listener}");
        }
        // A v2 LOCAL header keeps the socket's own peer as the client.
        let mut local = Vec::new();
        proxy_protocol::write_local(&mut local, Version::V2);
        let mut s = TcpStream::connect(f.addr("two")).await.unwrap();
        let me = s.local_addr().unwrap();
        s.write_all(&local).await.unwrap();
        s.write_all(b"local").await.unwrap();
        s.shutdown().await.unwrap();
        assert_eq!(until_closed(&mut s).await, b"local");
        let lines = tokio::task::block_in_place(|| f.wait_access_log(3));
        for (listener, _, client) in cases {
            let line = lines
                .iter()
                .find(|l| l["listener"] == listener && l["client"] != me.to_string())
                .unwrap();
            assert_eq!(line["client"], client, "{line}");
            assert_eq!(line["status"], 200, "{line}");
            assert_eq!(line["bytes_in"], 12, "{line}");
        }
        assert!(
            lines.iter().any(|l| l["client"] == me.to_string()),
            "{lines:?}"
        );
        assert_eq!(echo.accepted(), 3);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_listener_takes_v1_and_v2_headers() {
    within(async {
        let b = Backend::start("b").await;
        let f = Fulcrum::start(&format!(
            "workers = 1\n\n{}{}[[routes]]\npool = \"p\"\n\n[pools.p]\nbackends = [{}]\n",
            http_listener("one", &takes("v1", "127.0.0.1")),
            http_listener("two", &takes("v2", "127.0.0.0/8")),
            quoted(&b)
        ));
        let request = "GET /x HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n";
        let cases = [
            ("one", Version::V1, CLIENT_V4, "203.0.113.7"),
            ("two", Version::V2, CLIENT_V6, "2001:db8::7"),
        ];
        for (listener, version, client, ip) in cases {
            let mut first = header(version, client, f.addr(listener));
            first.extend_from_slice(request.as_bytes());
            let got = send_and_close(f.addr(listener), &first, false).await;
            let got = String::from_utf8_lossy(&got);
            assert!(got.starts_with("HTTP/1.1 200"), "{listener}: {got}");
            assert_eq!(b.last_header("x-forwarded-for").as_deref(), Some(ip));
        }
        let lines = tokio::task::block_in_place(|| f.wait_access_log(2));
        for (listener, _, client, _) in cases {
            let line = lines.iter().find(|l| l["listener"] == listener).unwrap();
            assert_eq!(line["client"], client, "{line}");
        }
        // HTTP/2 starts after the header as HTTP/1.1 does, with the same client.
        let mut tcp = TcpStream::connect(f.addr("two")).await.unwrap();
        let src = "198.51.100.9:5555";
        tcp.write_all(&header(Version::V2, src, f.addr("two")))
            .await
            .unwrap();
        let (mut send, conn) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(tcp),
        )
        .await
        .unwrap();
        tokio::spawn(conn);
        let req = hyper::Request::builder()
            .uri("http://a/h2")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let res = send.send_request(req).await.unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(
            b.last_header("x-forwarded-for").as_deref(),
            Some("198.51.100.9")
        );
        let lines = tokio::task::block_in_place(|| f.wait_access_log(3));
        let h2 = lines.iter().find(|l| l["proto"] == "HTTP/2").unwrap();
        assert_eq!(h2["client"], src, "{h2}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_from_a_network_not_listed_is_refused() {
    within(async {
        let echo = Echo::start().await;
        let b = Backend::start("b").await;
        // Tests connect from 127.0.0.1, which is not in 10.0.0.0/8.
        let f = Fulcrum::start(&format!(
            "workers = 1\n\n{}{}[[routes]]\npool = \"web\"\n\n[pools.web]\nbackends = [{}]\n\n\
             [pools.p]\nbackends = [\"{}\"]\n{ADMIN}",
            tcp_listener("db", "p", &takes("v1", "10.0.0.0/8")),
            http_listener("web", &takes("v2", "10.0.0.0/8")),
            quoted(&b),
            echo.addr
        ));
        let admin = f.admin_addr().await;
        let mut first = header(Version::V1, CLIENT_V4, f.addr("db"));
        first.extend_from_slice(b"data");
        assert!(send_and_close(f.addr("db"), &first, false).await.is_empty());
        let mut first = header(Version::V2, CLIENT_V4, f.addr("web"));
        first.extend_from_slice(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n");
        assert!(send_and_close(f.addr("web"), &first, false)
            .await
            .is_empty());
        assert_eq!(refused(admin, "db", "proxy_protocol").await, 1);
        assert_eq!(refused(admin, "web", "proxy_protocol").await, 1);
        assert_eq!(refused(admin, "db", "max_connections").await, 0);
        assert_eq!(echo.accepted(), 0);
        assert_eq!(b.connections(), 0);
        assert!(f.access_log().is_empty());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_or_malformed_header_closes_the_connection() {
    within(async {
        let echo = Echo::start().await;
        let b = Backend::start("b").await;
        let f = Fulcrum::start(&format!(
            "workers = 1\n\n{}{}[[routes]]\npool = \"web\"\n\n[pools.web]\nbackends = [{}]\n\n\
             [pools.p]\nbackends = [\"{}\"]\n{ADMIN}",
            tcp_listener(
                "db",
                "p",
                &format!("{}\nheader_timeout = \"200ms\"", takes("v1", "127.0.0.1"))
            ),
            http_listener("web", &takes("v2", "127.0.0.1")),
            quoted(&b),
            echo.addr
        ));
        let admin = f.admin_addr().await;
        let (db, web) = (f.addr("db"), f.addr("web"));
        let v1 = header(Version::V1, CLIENT_V4, db);
        let v2 = header(Version::V2, CLIENT_V4, web);
        // Part of a header, then the client stops sending.
        assert!(send_and_close(db, &v1[..v1.len() - 4], true)
            .await
            .is_empty());
        assert!(send_and_close(web, &v2[..20], true).await.is_empty());
        // Part of a header, and then nothing for longer than header_timeout.
        assert!(send_and_close(db, &v1[..10], false).await.is_empty());
        // No header at all: the request itself is refused, unanswered.
        let plain = b"GET / HTTP/1.1\r\nhost: a\r\n\r\n";
        assert!(send_and_close(db, plain, false).await.is_empty());
        assert!(send_and_close(web, plain, false).await.is_empty());
        // The other version's header, and a v1 header with a bad port.
        assert!(
            send_and_close(web, &header(Version::V1, CLIENT_V4, web), false)
                .await
                .is_empty()
        );
        assert!(
            send_and_close(db, b"PROXY TCP4 1.2.3.4 5.6.7.8 01 80\r\n", false)
                .await
                .is_empty()
        );
        assert_eq!(refused(admin, "db", "proxy_protocol").await, 4);
        assert_eq!(refused(admin, "web", "proxy_protocol").await, 3);
        assert_eq!(echo.accepted(), 0);
        assert_eq!(b.connections(), 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_pools_send_v1_and_v2_headers() {
    within(async {
        let r1 = Receiver::start(Version::V1, false).await;
        let r2 = Receiver::start(Version::V2, false).await;
        let f = Fulcrum::start(&format!(
            "workers = 1\n\n{}{}[pools.p1]\nbackends = [\"{}\"]\nsend_proxy_protocol = \"v1\"\n\n\
             [pools.p2]\nbackends = [\"{}\"]\nsend_proxy_protocol = \"v2\"\n",
            tcp_listener("one", "p1", ""),
            tcp_listener("two", "p2", ""),
            r1.addr,
            r2.addr
        ));
        for (listener, r) in [("one", &r1), ("two", &r2)] {
            let mut s = TcpStream::connect(f.addr(listener)).await.unwrap();
            let me = s.local_addr().unwrap();
            s.write_all(b"after the header").await.unwrap();
            s.shutdown().await.unwrap();
            assert_eq!(until_closed(&mut s).await, b"after the header");
            assert_eq!(r.seen(), [format!("{me}>{}", f.addr(listener))]);
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_pools_send_v1_and_v2_headers_per_connection_and_probes_send_local() {
    within(async {
        let r1 = Receiver::start(Version::V1, true).await;
        let r2 = Receiver::start(Version::V2, true).await;
        let health =
            "health = { path = \"/health\", interval = \"100ms\", timeout = \"100ms\", rise = 1 }";
        let f = Fulcrum::start(&format!(
            "workers = 1\n\n{}[[routes]]\npath_prefix = \"/one\"\npool = \"p1\"\n\n\
             [[routes]]\npool = \"p2\"\n\n\
             [pools.p1]\nbackends = [\"{}\"]\nsend_proxy_protocol = \"v1\"\n{health}\n\n\
             [pools.p2]\nbackends = [\"{}\"]\nsend_proxy_protocol = \"v2\"\n{health}\n",
            http_listener("web", ""),
            r1.addr,
            r2.addr
        ));
        // The probes' headers name no client, and the backends come up on them.
        for r in [&r1, &r2] {
            f.wait_line(&format!("backend={} from=unknown to=up", r.addr), 0)
                .await;
        }
        assert!(r1.seen().iter().all(|r| r == "LOCAL"), "{:?}", r1.seen());
        assert!(r2.seen().iter().all(|r| r == "LOCAL"), "{:?}", r2.seen());
        let web = f.addr("web");
        let mut s = TcpStream::connect(web).await.unwrap();
        let me = s.local_addr().unwrap();
        let want = format!("{me}>{web}");
        // Two requests on one client connection: each goes out on a connection of
        // its own with its header, never on one another client could reuse.
        for path in ["/one/a", "/one/b", "/two/a", "/two/b"] {
            let got = exchange(&mut s, &format!("GET {path} HTTP/1.1\r\nhost: a\r\n\r\n")).await;
            assert_eq!(got, want, "{path}");
        }
        assert_eq!(r1.clients(), [want.clone(), want.clone()]);
        assert_eq!(r2.clients(), [want.clone(), want]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_connections_refuses_past_the_cap_at_once() {
    within(async {
        let echo = Echo::start().await;
        // Two workers, each with its own socket: the cap holds across both.
        let f = Fulcrum::start(&format!(
            "workers = 2\n\n{}[pools.p]\nbackends = [\"{}\"]\n{ADMIN}",
            tcp_listener("db", "p", "max_connections = 2"),
            echo.addr
        ));
        let admin = f.admin_addr().await;
        let addr = f.addr("db");
        let mut a = TcpStream::connect(addr).await.unwrap();
        round_trip(&mut a, b"a").await;
        let mut b = TcpStream::connect(addr).await.unwrap();
        round_trip(&mut b, b"b").await;
        // The third is closed without a byte, while the two stay served.
        let mut c = TcpStream::connect(addr).await.unwrap();
        assert!(until_closed(&mut c).await.is_empty());
        assert_eq!(refused(admin, "db", "max_connections").await, 1);
        round_trip(&mut a, b"still a").await;
        round_trip(&mut b, b"still b").await;
        assert_eq!(echo.accepted(), 2);
        // Once one closes, a new connection is served. Its place frees as its task
        // ends, just after the close: a try that still finds the listener full is
        // refused (and counted) and tried again.
        b.shutdown().await.unwrap();
        assert!(until_closed(&mut b).await.is_empty());
        let mut refusals = 1;
        let mut d = loop {
            let mut d = TcpStream::connect(addr).await.unwrap();
            // A refused connection may already be reset: its write can fail too.
            let _ = d.write_all(b"d").await;
            let mut one = [0u8; 1];
            match d.read(&mut one).await {
                Ok(1) => break d,
                _ => refusals += 1,
            }
        };
        round_trip(&mut d, b"more d").await;
        round_trip(&mut a, b"a again").await;
        assert_eq!(refused(admin, "db", "max_connections").await, refusals);
        assert_eq!(echo.accepted(), 3);
    })
    .await;
}
