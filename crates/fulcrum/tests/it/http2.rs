//! HTTP/2: h2c prior knowledge from clients on the same listener, and `protocol =
//! "h2c"` pools, in every combination with HTTP/1.1; bodies, trailers, concurrency.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Version};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};

use crate::support::*;
use crate::support_stream::{reply, TestBody};

/// One listener, one pool `p` of `protocol` over `b`.
fn config(b: &Backend, protocol: &str, listener_extra: &str) -> String {
    format!(
        "workers = 1\n[listeners.public]\naddress = \"127.0.0.1:0\"\n{listener_extra}\n[[routes]]\npool = \"p\"\n[pools.p]\nprotocol = \"{protocol}\"\nbackends = [{}]\n",
        quoted(b)
    )
}

/// A backend answering the request body with an `x-backend` header.
async fn echo(name: &str, h2: bool) -> Backend {
    Backend::with(
        name,
        h2,
        Arc::new(|name: &str, req: Request<Bytes>| {
            Response::builder()
                .header("x-backend", name)
                .header("x-method", req.method().as_str())
                .body(Full::new(req.into_body()))
                .unwrap()
        }),
    )
    .await
}

type Client = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Full<Bytes>,
>;

/// Sends `method` with `body`; returns status, protocol version, `x-backend` and body.
async fn send(c: &Client, method: &str, url: &str, body: Bytes) -> (u16, Version, String, Bytes) {
    let req = Request::builder()
        .method(method)
        .uri(url)
        .body(Full::new(body))
        .unwrap();
    let res = c.request(req).await.unwrap();
    let (status, version) = (res.status().as_u16(), res.version());
    let backend = res
        .headers()
        .get("x-backend")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, version, backend, body)
}

/// 300 KB of varied bytes: more than the default HTTP/2 flow-control windows.
fn big_body() -> Bytes {
    (0..300_000u32)
        .map(|i| (i * 7 % 256) as u8)
        .collect::<Vec<u8>>()
        .into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_client_to_http1_pool() {
    within(async {
        let b = echo("h1", false).await;
        let f = Fulcrum::start(&config(&b, "http1", ""));
        let url = format!("{}/x?q=1", f.url("public"));
        let (status, version, backend, body) = send(&h2_client(), "GET", &url, Bytes::new()).await;
        assert_eq!(
            (status, version, backend.as_str(), &body[..]),
            (200, Version::HTTP_2, "h1", &b""[..])
        );
        assert_eq!(b.seen.last_target.lock().unwrap().as_str(), "GET /x?q=1");
        assert_eq!(b.last_header("via").as_deref(), Some("2 fulcrum"));
        assert_eq!(b.last_header("host"), Some(f.addr("public").to_string()));
        let line = f.wait_status(200).await;
        assert_eq!(line["proto"], "HTTP/2", "{line}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_client_to_h2c_pool() {
    within(async {
        let b = echo("h2", true).await;
        let f = Fulcrum::start(&config(&b, "h2c", ""));
        let (status, version, backend, _) = send(
            &h2_client(),
            "GET",
            &format!("{}/", f.url("public")),
            Bytes::new(),
        )
        .await;
        assert_eq!(
            (status, version, backend.as_str()),
            (200, Version::HTTP_2, "h2")
        );
        assert_eq!(b.requests(), 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_client_to_h2c_pool() {
    within(async {
        let b = Backend::start_h2("h2").await;
        let f = Fulcrum::start(&config(&b, "h2c", ""));
        let c = client();
        for _ in 0..3 {
            let (status, version, backend, _) =
                send(&c, "GET", &format!("{}/", f.url("public")), Bytes::new()).await;
            assert_eq!(
                (status, version, backend.as_str()),
                (200, Version::HTTP_11, "h2")
            );
        }
        assert_eq!(b.requests(), 3);
        assert_eq!(
            b.connections(),
            1,
            "h2c connections to the backend are not reused"
        );
        assert_eq!(b.last_header("via").as_deref(), Some("1.1 fulcrum"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_client_to_h2c_pool_empty_response() {
    within(async {
        let b = echo("h2", true).await;
        let f = Fulcrum::start(&config(&b, "h2c", ""));
        let mut w = crate::support_wire::Wire::connect(f.addr("public")).await;
        w.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await;
        let (out, end) = w.read_to_end(Duration::from_secs(3)).await;
        // Either a length says where the (empty) body ends, or the connection closes.
        let delimited =
            out.to_ascii_lowercase().contains("content-length: 0\r\n") || end.is_closed();
        assert!(
            out.starts_with("HTTP/1.1 200 ") && delimited,
            "{out:?} {end:?}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_bodies_cross_versions_intact() {
    within(async {
        for (client_h2, pool) in [
            (true, "http1"),
            (true, "h2c"),
            (false, "h2c"),
            (false, "http1"),
        ] {
            let b = echo("e", pool == "h2c").await;
            let f = Fulcrum::start(&config(&b, pool, ""));
            let c = if client_h2 { h2_client() } else { client() };
            let body = big_body();
            let (status, _, _, back) =
                send(&c, "POST", &format!("{}/up", f.url("public")), body.clone()).await;
            let case = format!("h2 client: {client_h2}, pool: {pool}");
            assert_eq!(status, 200, "{case}");
            assert_eq!(b.last_body().len(), body.len(), "{case}: request body");
            assert!(b.last_body() == body, "{case}: request body differs");
            assert_eq!(back.len(), body.len(), "{case}: response body");
            assert!(back == body, "{case}: response body differs");
            // An empty POST, answered empty.
            let (status, _, _, back) = send(
                &c,
                "POST",
                &format!("{}/empty", f.url("public")),
                Bytes::new(),
            )
            .await;
            assert_eq!((status, back.len()), (200, 0), "{case}");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trailers_from_an_h2c_backend_reach_an_h2c_client() {
    within(async {
        let b = Backend::streaming(
            "t",
            true,
            Arc::new(|_seen, _req: Request<Incoming>| -> ResponseFuture {
                Box::pin(async {
                    let mut t = HeaderMap::new();
                    t.insert("grpc-status", HeaderValue::from_static("0"));
                    t.insert("x-checksum", HeaderValue::from_static("abc"));
                    Response::new(TestBody::full("payload").trailers(t).boxed())
                })
            }),
        )
        .await;
        let f = Fulcrum::start(&config(&b, "h2c", ""));
        let res = h2_client()
            .get(format!("{}/", f.url("public")).parse().unwrap())
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let collected = res.into_body().collect().await.unwrap();
        let trailers = collected.trailers().cloned().expect("no trailers");
        assert_eq!(
            trailers.get("grpc-status").map(|v| v.as_bytes()),
            Some(&b"0"[..]),
            "{trailers:?}"
        );
        assert_eq!(
            trailers.get("x-checksum").map(|v| v.as_bytes()),
            Some(&b"abc"[..]),
            "{trailers:?}"
        );
        assert_eq!(&collected.to_bytes()[..], b"payload");
    })
    .await;
}

/// A backend whose handler holds every request until `n` are in it at once.
async fn barrier_backend(h2: bool, n: usize) -> Backend {
    let barrier = Arc::new(tokio::sync::Barrier::new(n));
    Backend::streaming(
        "b",
        h2,
        Arc::new(move |_seen, req: Request<Incoming>| -> ResponseFuture {
            let barrier = barrier.clone();
            Box::pin(async move {
                if req.uri().path() == "/warm" {
                    return reply(200, "warm");
                }
                match tokio::time::timeout(Duration::from_secs(20), barrier.wait()).await {
                    Ok(_) => reply(200, req.uri().path().to_owned()),
                    Err(_) => reply(500, "requests were not concurrent"),
                }
            })
        }),
    )
    .await
}

/// An HTTP/2 prior-knowledge connection to `addr`; requests name any authority.
async fn h2_connect(
    addr: std::net::SocketAddr,
) -> hyper::client::conn::http2::SendRequest<Full<Bytes>> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    send
}

/// Sends `n` requests as concurrent streams on one HTTP/2 connection.
async fn concurrent_streams(addr: std::net::SocketAddr, n: usize) {
    let send = h2_connect(addr).await;
    let mut tasks = Vec::new();
    for i in 0..n {
        let mut send = send.clone();
        tasks.push(tokio::spawn(async move {
            let req = Request::builder()
                .uri(format!("http://a/{i}"))
                .body(Full::new(Bytes::new()))
                .unwrap();
            let res = send.send_request(req).await.unwrap();
            let status = res.status().as_u16();
            let body = res.into_body().collect().await.unwrap().to_bytes();
            (status, body)
        }));
    }
    for (i, t) in tasks.into_iter().enumerate() {
        let (status, body) = t.await.unwrap();
        assert_eq!(
            (status, &body[..]),
            (200, format!("/{i}").as_bytes()),
            "stream {i}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_streams_to_an_http1_pool() {
    within(async {
        let b = barrier_backend(false, 50).await;
        let f = Fulcrum::start(&config(&b, "http1", ""));
        concurrent_streams(f.addr("public"), 50).await;
        assert_eq!(b.arrived(), 50);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_streams_to_an_h2c_pool_share_one_connection() {
    within(async {
        let b = barrier_backend(true, 50).await;
        let f = Fulcrum::start(&config(&b, "h2c", ""));
        let (status, _, _, _) = send(
            &h2_client(),
            "GET",
            &format!("{}/warm", f.url("public")),
            Bytes::new(),
        )
        .await;
        assert_eq!(status, 200);
        concurrent_streams(f.addr("public"), 50).await;
        assert_eq!(b.arrived(), 51);
        assert_eq!(
            b.connections(),
            1,
            "streams to an h2c pool were not multiplexed"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_errors_have_statuses_and_log_lines() {
    within(async {
        let b = echo("a", false).await;
        let cfg = config(&b, "http1", "max_body_bytes = 1000")
            .replace("[[routes]]\n", "[[routes]]\nhost = \"only.test\"\n");
        let f = Fulcrum::start(&cfg);
        let mut c = h2_connect(f.addr("public")).await;
        let mut status = |method: &str, host: &str, body: usize| {
            let req = Request::builder()
                .method(method)
                .uri(format!("http://{host}/"))
                .body(Full::new(Bytes::from(vec![b'x'; body])))
                .unwrap();
            let fut = c.send_request(req);
            async move { fut.await.unwrap().status().as_u16() }
        };
        assert_eq!(status("GET", "other.test", 0).await, 404);
        assert_eq!(status("POST", "only.test", 1000).await, 200);
        assert_eq!(status("POST", "only.test", 1001).await, 413);
        f.wait_status(404).await;
        let line = f.wait_status(413).await;
        assert_eq!(line["proto"], "HTTP/2", "{line}");
        assert_eq!(b.requests(), 1);
    })
    .await;
}
