//! HTTP/3 to clients, with a real QUIC client (quinn and hyperium's h3 client):
//! GET and POST through to an HTTP/1.1 backend, a 50 MiB download and a 10 MiB
//! upload intact, 100 streams at once on one connection, many connections,
//! trailers from a backend, malformed requests refused before any backend, and
//! Alt-Svc on the listener's HTTP/1.1 and HTTP/2 responses.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::Response;

use crate::support::*;
use crate::support_tls::*;

/// An h3 client connection and the task driving it.
struct H3 {
    send: h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>,
    driver: tokio::task::JoinHandle<()>,
    _endpoint: quinn::Endpoint,
}

impl Drop for H3 {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

async fn connect(addr: SocketAddr, ca: &Ca) -> H3 {
    connect_raw(addr, ca).await.0
}

/// One request: status, fields, body and trailers.
struct Got {
    status: u16,
    headers: http::HeaderMap,
    body: Bytes,
    trailers: Option<http::HeaderMap>,
}

async fn request(c: &mut H3, req: http::Request<()>, body: Bytes) -> Result<Got, String> {
    let mut stream = c.send.send_request(req).await.map_err(|e| e.to_string())?;
    // In pieces, as a client streams an upload.
    let mut rest = body;
    while !rest.is_empty() {
        let piece = rest.split_to(rest.len().min(256 * 1024));
        stream.send_data(piece).await.map_err(|e| e.to_string())?;
    }
    stream.finish().await.map_err(|e| e.to_string())?;
    let resp = stream.recv_response().await.map_err(|e| e.to_string())?;
    let mut out = BytesMut::new();
    while let Some(mut chunk) = stream.recv_data().await.map_err(|e| e.to_string())? {
        out.extend_from_slice(&chunk.copy_to_bytes(chunk.remaining()));
    }
    let trailers = stream.recv_trailers().await.map_err(|e| e.to_string())?;
    Ok(Got {
        status: resp.status().as_u16(),
        headers: resp.headers().clone(),
        body: out.freeze(),
        trailers,
    })
}

fn get_req(path: &str) -> http::Request<()> {
    http::Request::get(format!("https://h3.fulcrum.test{path}"))
        .body(())
        .unwrap()
}

/// Fulcrum with an https listener `secure` serving HTTP/3 in front of `backend`.
fn start(ca: &Ca, dir: &TempDir, backend: &Backend, extra: &str) -> Fulcrum {
    let (cert, key) = ca.leaf(&["h3.fulcrum.test"], false).write(dir, "leaf");
    Fulcrum::start(&format!(
        "workers = 2\n\n[admin]\naddress = \"127.0.0.1:0\"\n\n[listeners.secure]\naddress = \"127.0.0.1:0\"\nprotocol = \"https\"\nhttp3 = true\n{extra}\
         tls = {{ certificates = [{{ cert = {cert:?}, key = {key:?} }}] }}\n\n\
         [[routes]]\npool = \"p\"\n\n[pools.p]\nbackends = [{}]\n",
        quoted(backend)
    ))
}

/// A backend that answers `/big` with `n` bytes, echoes a POST's length and
/// SHA-256, and names itself otherwise.
async fn backend(big: usize) -> Backend {
    let payload = Bytes::from((0..big).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    Backend::with(
        "b",
        false,
        Arc::new(move |name: &str, req: hyper::Request<Bytes>| {
            if req.uri().path() == "/big" {
                return Response::new(Full::new(payload.clone()));
            }
            if req.method() == http::Method::POST {
                let body = req.body();
                let sum = sha2_hex(body);
                return Response::new(Full::new(Bytes::from(format!("{} {sum}", body.len()))));
            }
            named(name)
        }),
    )
    .await
}

fn sha2_hex(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_post_a_big_download_and_upload_over_http3() {
    within(async {
        let ca = Ca::new("h3 test CA");
        let dir = TempDir::new();
        let b = backend(50 << 20).await;
        let f = start(&ca, &dir, &b, "");
        let mut c = connect(f.addr("secure"), &ca).await;
        let got = request(&mut c, get_req("/"), Bytes::new()).await.unwrap();
        assert_eq!((got.status, &got.body[..]), (200, &b"b"[..]));
        assert_eq!(got.headers["x-backend"], "b");
        // No Alt-Svc over HTTP/3 itself.
        assert!(got.headers.get("alt-svc").is_none());
        // The GET reached the backend without a body or chunked framing.
        assert_eq!(b.last_header("transfer-encoding"), None);

        let post = http::Request::post("https://h3.fulcrum.test/upload")
            .body(())
            .unwrap();
        let upload = Bytes::from((0..10 << 20).map(|i| (i % 241) as u8).collect::<Vec<u8>>());
        let got = request(&mut c, post, upload.clone()).await.unwrap();
        assert_eq!(got.status, 200);
        assert_eq!(
            std::str::from_utf8(&got.body).unwrap(),
            format!("{} {}", upload.len(), sha2_hex(&upload))
        );

        let got = request(&mut c, get_req("/big"), Bytes::new())
            .await
            .unwrap();
        assert_eq!(got.status, 200);
        assert_eq!(got.body.len(), 50 << 20);
        let want: Vec<u8> = (0..50 << 20).map(|i| (i % 251) as u8).collect();
        assert!(got.body[..] == want[..], "the download came back changed");
        let log = f.wait_access_log(3);
        assert!(log.iter().all(|l| l["proto"] == "HTTP/3"), "{log:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_streams_at_once_and_many_connections() {
    within(async {
        let ca = Ca::new("h3 test CA");
        let dir = TempDir::new();
        let b = backend(0).await;
        let f = start(&ca, &dir, &b, "");
        let c = connect(f.addr("secure"), &ca).await;
        let mut tasks = Vec::new();
        for _ in 0..100 {
            let mut send = c.send.clone();
            tasks.push(tokio::spawn(async move {
                let mut s = send.send_request(get_req("/")).await.unwrap();
                s.finish().await.unwrap();
                let resp = s.recv_response().await.unwrap();
                while s.recv_data().await.unwrap().is_some() {}
                resp.status().as_u16()
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), 200);
        }
        // 200 connections, a request on each.
        let mut conns = Vec::new();
        for _ in 0..200 {
            conns.push(connect(f.addr("secure"), &ca).await);
        }
        for c in &mut conns {
            let got = request(c, get_req("/"), Bytes::new()).await.unwrap();
            assert_eq!(got.status, 200);
        }
        assert_eq!(b.requests(), 300);
        drop(conns);
        drop(c);
        let text = crate::rate_limit::metrics(&f).await;
        let sample = |prefix: &str| -> u64 {
            text.lines()
                .find(|l| l.starts_with(prefix))
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        assert_eq!(
            sample("fulcrum_quic_handshakes_total{listener=\"secure\",result=\"ok\"}"),
            201,
            "{text}"
        );
        assert_eq!(
            sample("fulcrum_quic_streams_total{listener=\"secure\"}"),
            300,
            "{text}"
        );
        assert!(
            text.contains("fulcrum_quic_open_connections{listener=\"secure\"}"),
            "{text}"
        );
        assert!(text.contains("fulcrum_quic_rtt_seconds_bucket"), "{text}");
        // The admin API (and so the dashboard) shows HTTP/3 apart.
        let admin = f.admin_addr().await;
        let (_, _, body) = get(&client(), &format!("http://{admin}/api/status")).await;
        let status: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let h3 = &status["http3"][0];
        assert_eq!(h3["listener"], "secure", "{status}");
        assert_eq!(h3["streams"], 300, "{status}");
        assert_eq!(h3["handshakes"]["ok"], 201, "{status}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trailers_pass_and_malformed_requests_stop_at_the_edge() {
    within(async {
        let ca = Ca::new("h3 test CA");
        let dir = TempDir::new();
        // An h2c backend that ends its body with trailers, as gRPC servers do.
        let b = Backend::streaming(
            "t",
            true,
            Arc::new(|seen: Arc<Seen>, _req| {
                seen.requests.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Box::pin(async move {
                    let mut trailers = http::HeaderMap::new();
                    trailers.insert("x-checksum", "abc123".parse().unwrap());
                    let body = http_body_util::StreamBody::new(futures_util::stream::iter(vec![
                        Ok::<_, std::convert::Infallible>(hyper::body::Frame::data(Bytes::from_static(b"payload"))),
                        Ok(hyper::body::Frame::trailers(trailers)),
                    ]));
                    Response::new(body.boxed())
                })
            }),
        )
        .await;
        let (cert, key) = ca.leaf(&["h3.fulcrum.test"], false).write(&dir, "leaf");
        let f = Fulcrum::start(&format!(
            "workers = 1\n\n[listeners.secure]\naddress = \"127.0.0.1:0\"\nprotocol = \"https\"\nhttp3 = true\n\
             tls = {{ certificates = [{{ cert = {cert:?}, key = {key:?} }}] }}\n\n\
             [[routes]]\npool = \"p\"\n\n[pools.p]\nprotocol = \"h2c\"\nbackends = [{}]\n",
            quoted(&b)
        ));
        let mut c = connect(f.addr("secure"), &ca).await;
        let req = http::Request::get("https://h3.fulcrum.test/")
            .header("te", "trailers")
            .body(())
            .unwrap();
        let got = request(&mut c, req, Bytes::new()).await.unwrap();
        assert_eq!((got.status, &got.body[..]), (200, &b"payload"[..]));
        let trailers = got.trailers.expect("trailers");
        assert_eq!(trailers["x-checksum"], "abc123");
        assert_eq!(b.seen.requests.load(std::sync::atomic::Ordering::Relaxed), 1);

        // Connection-specific fields (RFC 9114 §4.2) are refused, never forwarded.
        let mut refused = 0;
        for (name, value) in [
            ("connection", "close"),
            ("transfer-encoding", "chunked"),
            ("keep-alive", "300"),
            ("upgrade", "websocket"),
            ("te", "gzip"),
        ] {
            let req = http::Request::get("https://h3.fulcrum.test/")
                .header(name, value)
                .body(())
                .unwrap();
            match request(&mut c, req, Bytes::new()).await {
                Ok(got) => {
                    assert_eq!(got.status, 400, "{name}");
                    refused += 1;
                }
                // Or the client's own library refused to send it.
                Err(e) => println!("{name}: the client did not send it: {e}"),
            }
        }
        println!("{refused} of 5 refused by Fulcrum with 400");
        assert!(refused >= 3, "{refused}");
        assert_eq!(b.seen.requests.load(std::sync::atomic::Ordering::Relaxed), 1);
        // The connection still serves.
        let got = request(&mut c, get_req("/"), Bytes::new()).await.unwrap();
        assert_eq!(got.status, 200);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_and_http2_responses_advertise_http3() {
    within(async {
        let ca = Ca::new("h3 test CA");
        let dir = TempDir::new();
        let b = backend(0).await;
        let f = start(&ca, &dir, &b, "alt_svc_max_age = \"1h\"\n");
        let port = f.addr("secure").port();
        for alpn in ["http/1.1", "h2"] {
            let tls = client_config(&[ca.der()], &[alpn], None);
            let s = crate::support_tls::connect(f.addr("secure"), "h3.fulcrum.test", tls)
                .await
                .unwrap();
            let io = hyper_util::rt::TokioIo::new(s.tls);
            let res = if alpn == "h2" {
                let (mut send, conn) =
                    hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
                        .await
                        .unwrap();
                tokio::spawn(conn);
                let req = hyper::Request::get("https://h3.fulcrum.test/")
                    .body(Full::new(Bytes::new()))
                    .unwrap();
                send.send_request(req).await.unwrap()
            } else {
                let (mut send, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
                tokio::spawn(conn);
                let req = hyper::Request::get("/")
                    .header("host", "h3.fulcrum.test")
                    .body(Full::new(Bytes::new()))
                    .unwrap();
                send.send_request(req).await.unwrap()
            };
            let (status, headers) = (res.status().as_u16(), res.headers().clone());
            assert_eq!(status, 200, "{alpn}");
            assert_eq!(
                headers
                    .get("alt-svc")
                    .map(|v| v.to_str().unwrap().to_owned()),
                Some(format!("h3=\":{port}\"; ma=3600")),
                "{alpn}"
            );
        }
    })
    .await;
}

/// A gRPC message with its 5-byte length prefix.
fn grpc_frame(m: &crate::grpc::Msg) -> Bytes {
    use prost::Message;
    let body = m.encode_to_vec();
    let mut out = vec![0u8];
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    Bytes::from(out)
}

/// The messages of a gRPC body.
fn grpc_messages(mut body: Bytes) -> Vec<crate::grpc::Msg> {
    use prost::Message;
    let mut out = Vec::new();
    while body.len() >= 5 {
        let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
        let frame = body.split_to(5 + len);
        out.push(crate::grpc::Msg::decode(&frame[5..]).unwrap());
    }
    assert!(body.is_empty(), "a partial gRPC frame");
    out
}

fn grpc_call(method: &str) -> http::Request<()> {
    http::Request::post(format!("https://h3.fulcrum.test/test.Echo/{method}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_calls_cross_http3_to_an_h2c_pool() {
    within(async {
        let ca = Ca::new("h3 test CA");
        let dir = TempDir::new();
        let server = crate::grpc::Server::start().await;
        let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let dead_addr = dead.local_addr().unwrap();
        drop(dead);
        let (cert, key) = ca.leaf(&["h3.fulcrum.test"], false).write(&dir, "leaf");
        let f = Fulcrum::start(&format!(
            "workers = 1\n\n[listeners.secure]\naddress = \"127.0.0.1:0\"\nprotocol = \"https\"\nhttp3 = true\n\
             tls = {{ certificates = [{{ cert = {cert:?}, key = {key:?} }}] }}\n\n\
             [[routes]]\npath_prefix = \"/gone.\"\npool = \"gone\"\n\n\
             [[routes]]\npool = \"grpc\"\n\n\
             [pools.grpc]\nprotocol = \"h2c\"\nbackends = [\"{}\"]\n\n\
             [pools.gone]\nprotocol = \"h2c\"\nbackends = [\"{dead_addr}\"]\n",
            server.addr
        ));
        let mut c = connect(f.addr("secure"), &ca).await;
        // Unary.
        let got = request(&mut c, grpc_call("Unary"), grpc_frame(&crate::grpc::msg("hello", 1)))
            .await
            .unwrap();
        assert_eq!(got.status, 200);
        assert_eq!(grpc_messages(got.body), vec![crate::grpc::msg("echo hello", 2)]);
        assert_eq!(got.headers["x-served-by"], "grpc-test");
        assert_eq!(got.trailers.expect("trailers")["grpc-status"], "0");
        // Server streaming.
        let got = request(&mut c, grpc_call("Count"), grpc_frame(&crate::grpc::msg("", 5)))
            .await
            .unwrap();
        let items = grpc_messages(got.body);
        assert_eq!(items.len(), 5);
        assert_eq!(items[4], crate::grpc::msg("item", 4));
        assert_eq!(got.trailers.expect("trailers")["grpc-status"], "0");
        // Client streaming: three messages in one body.
        let mut body = BytesMut::new();
        for n in [1, 2, 3] {
            body.extend_from_slice(&grpc_frame(&crate::grpc::msg("x", n)));
        }
        let got = request(&mut c, grpc_call("Sum"), body.freeze()).await.unwrap();
        assert_eq!(got.trailers.expect("trailers")["grpc-status"], "0");
        assert_eq!(grpc_messages(got.body).len(), 1);
        // The server's error status: a trailers-only answer, whose status is in
        // the header section.
        let got = request(&mut c, grpc_call("Unary"), grpc_frame(&crate::grpc::msg("fail", 0)))
            .await
            .unwrap();
        let status = got.trailers.as_ref().unwrap_or(&got.headers)["grpc-status"].clone();
        assert_eq!(status, "3", "{:?}", got.headers);
        // Fulcrum's own error (no backend answers): trailers-only, UNAVAILABLE.
        let req = http::Request::post("https://h3.fulcrum.test/gone.Svc/Call")
            .header("content-type", "application/grpc")
            .body(())
            .unwrap();
        let got = request(&mut c, req, grpc_frame(&crate::grpc::msg("x", 0)))
            .await
            .unwrap();
        assert_eq!(got.status, 200);
        assert_eq!(got.headers["grpc-status"], "14", "{:?}", got.headers);
    })
    .await;
}

/// The leaf certificate the server showed on `c`.
fn leaf_of(conn: &quinn::Connection) -> rustls::pki_types::CertificateDer<'static> {
    let chain = conn
        .peer_identity()
        .unwrap()
        .downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
        .unwrap();
    chain[0].clone()
}

/// Connects, and returns the connection handle beside the h3 client.
async fn connect_raw(addr: SocketAddr, ca: &Ca) -> (H3, quinn::Connection) {
    let tls = client_config(&[ca.der()], &["h3"], None);
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
    let conn = endpoint
        .connect(addr, "h3.fulcrum.test")
        .unwrap()
        .await
        .unwrap();
    let handle = conn.clone();
    let (mut driver, send) = h3::client::new(h3_quinn::Connection::new(conn))
        .await
        .unwrap();
    let driver = tokio::spawn(async move {
        let _ = std::future::poll_fn(|cx| driver.poll_close(cx)).await;
    });
    (
        H3 {
            send,
            driver,
            _endpoint: endpoint,
        },
        handle,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_swap_leaves_open_connections_working() {
    within(async {
        let ca = Ca::new("h3 test CA");
        let dir = TempDir::new();
        let b = backend(0).await;
        let first = ca.leaf(&["h3.fulcrum.test"], false);
        let (cert, key) = first.write(&dir, "leaf");
        let f = Fulcrum::start(&format!(
            "workers = 1\n\n[listeners.secure]\naddress = \"127.0.0.1:0\"\nprotocol = \"https\"\nhttp3 = true\n\
             tls = {{ certificates = [{{ cert = {cert:?}, key = {key:?} }}], watch_interval = \"50ms\" }}\n\n\
             [[routes]]\npool = \"p\"\n\n[pools.p]\nbackends = [{}]\n",
            quoted(&b)
        ));
        let addr = f.addr("secure");
        let (mut held, conn) = connect_raw(addr, &ca).await;
        assert_eq!(leaf_of(&conn), first.der);
        assert_eq!(request(&mut held, get_req("/"), Bytes::new()).await.unwrap().status, 200);
        let second = ca.leaf(&["h3.fulcrum.test"], false);
        second.write(&dir, "leaf");
        loop {
            let (_, c) = connect_raw(addr, &ca).await;
            if leaf_of(&c) == second.der {
                break;
            }
            tokio::task::yield_now().await;
        }
        // The connection opened before the swap still serves.
        assert_eq!(request(&mut held, get_req("/"), Bytes::new()).await.unwrap().status, 200);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_under_http3_load_fail_nothing() {
    within(async {
        let ca = Ca::new("h3 test CA");
        let dir = TempDir::new();
        let a = Backend::start("a").await;
        let b = Backend::start("b").await;
        let (cert, key) = ca.leaf(&["h3.fulcrum.test"], false).write(&dir, "leaf");
        let config = |backends: &[&Backend]| {
            let list: Vec<String> = backends.iter().map(|x| quoted(x)).collect();
            format!(
                "workers = 2\n\n[listeners.secure]\naddress = \"127.0.0.1:0\"\nprotocol = \"https\"\nhttp3 = true\n\
                 tls = {{ certificates = [{{ cert = {cert:?}, key = {key:?} }}] }}\n\n\
                 [[routes]]\npool = \"p\"\n\n[pools.p]\nbackends = [{}]\n",
                list.join(", ")
            )
        };
        let f = Fulcrum::start(&config(&[&a]));
        let addr = f.addr("secure");
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut load = Vec::new();
        for _ in 0..3 {
            let mut c = connect(addr, &ca).await;
            let stop = stop.clone();
            load.push(tokio::spawn(async move {
                let (mut ok, mut failed, mut names) = (0, Vec::new(), std::collections::BTreeSet::new());
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    match request(&mut c, get_req("/"), Bytes::new()).await {
                        Ok(g) if g.status == 200 => {
                            ok += 1;
                            names.insert(String::from_utf8_lossy(&g.body).into_owned());
                        }
                        Ok(g) => failed.push(format!("status {}", g.status)),
                        Err(e) => failed.push(e),
                    }
                }
                (ok, failed, names)
            }));
        }
        for i in 0..6 {
            let next = if i % 2 == 0 { config(&[&a, &b]) } else { config(&[&b]) };
            f.reload_ok(&next);
            let before = a.requests() + b.requests();
            until("requests after the reload", || a.requests() + b.requests() >= before + 30).await;
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let (mut ok, mut names) = (0, std::collections::BTreeSet::new());
        for t in load {
            let (n, failed, seen) = t.await.unwrap();
            assert!(failed.is_empty(), "{failed:?}");
            ok += n;
            names.extend(seen);
        }
        println!("{ok} requests over HTTP/3 across 6 reloads, served by {names:?}");
        assert_eq!(names.len(), 2, "{names:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_header_section_never_reaches_a_backend() {
    within(async {
        let ca = Ca::new("h3 test CA");
        let dir = TempDir::new();
        let b = backend(0).await;
        let f = start(&ca, &dir, &b, "max_header_bytes = 4096\n");
        let mut c = connect(f.addr("secure"), &ca).await;
        let big = "x".repeat(8192);
        let req = http::Request::get("https://h3.fulcrum.test/")
            .header("x-big", big.as_str())
            .body(())
            .unwrap();
        match request(&mut c, req, Bytes::new()).await {
            Ok(got) => assert_eq!(got.status, 431),
            // The client saw the server's SETTINGS_MAX_FIELD_SECTION_SIZE and did
            // not send it, or the server answered with a stream error.
            Err(e) => println!("refused: {e}"),
        }
        assert_eq!(b.requests(), 0);
        // A new connection still serves.
        let mut c = connect(f.addr("secure"), &ca).await;
        let got = request(&mut c, get_req("/"), Bytes::new()).await.unwrap();
        assert_eq!(got.status, 200);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_cancelled_streams_closes_the_connection_and_spares_backends() {
    within(async {
        let ca = Ca::new("h3 test CA");
        let dir = TempDir::new();
        let b = backend(0).await;
        let f = start(&ca, &dir, &b, "max_concurrent_streams = 1000\n");
        let (mut c, conn) = connect_raw(f.addr("secure"), &ca).await;
        // Rapid Reset: each stream's request is sent and cancelled at once.
        let mut sent = 0;
        for _ in 0..1000 {
            let Ok(mut s) = c.send.send_request(get_req("/")).await else {
                break;
            };
            s.stop_stream(h3::error::Code::H3_REQUEST_CANCELLED);
            s.stop_sending(h3::error::Code::H3_REQUEST_CANCELLED);
            sent += 1;
        }
        let reason = tokio::time::timeout(TIMEOUT, conn.closed()).await.unwrap();
        println!(
            "{sent} streams sent and cancelled; closed: {reason}; backend saw {}",
            b.requests()
        );
        assert!(
            reason.to_string().contains("too many cancelled streams"),
            "{reason}"
        );
        assert!(
            b.requests() < 100,
            "{} of {sent} reached the backend",
            b.requests()
        );
        let line = f
            .wait_line("HTTP/3 connection closed: too many cancelled streams", 0)
            .await;
        assert!(line.contains("cancelled="), "{line}");
        // Other clients are served.
        let mut other = connect(f.addr("secure"), &ca).await;
        let got = request(&mut other, get_req("/"), Bytes::new())
            .await
            .unwrap();
        assert_eq!(got.status, 200);
        drop(c);
    })
    .await;
}

/// Whether an HTTP/3 handshake with `addr` completes within a second.
async fn answers_h3(addr: SocketAddr, ca: &Ca) -> bool {
    let tls = client_config(&[ca.der()], &["h3"], None);
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    transport.max_idle_timeout(Some(std::time::Duration::from_secs(1).try_into().unwrap()));
    config.transport_config(Arc::new(transport));
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(config);
    let connecting = endpoint.connect(addr, "h3.fulcrum.test").unwrap();
    matches!(
        tokio::time::timeout(std::time::Duration::from_secs(3), connecting).await,
        Ok(Ok(_))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_turns_http3_on_and_off() {
    within(async {
        let ca = Ca::new("h3 test CA");
        let dir = TempDir::new();
        let b = backend(0).await;
        let (cert, key) = ca.leaf(&["h3.fulcrum.test"], false).write(&dir, "leaf");
        let config = |http3: bool| {
            format!(
                "workers = 2\n\n[listeners.secure]\naddress = \"127.0.0.1:0\"\nprotocol = \"https\"\nhttp3 = {http3}\n\
                 tls = {{ certificates = [{{ cert = {cert:?}, key = {key:?} }}] }}\n\n\
                 [[routes]]\npool = \"p\"\n\n[pools.p]\nbackends = [{}]\n",
                quoted(&b)
            )
        };
        let f = Fulcrum::start(&config(false));
        let addr = f.addr("secure");
        assert!(!answers_h3(addr, &ca).await, "HTTP/3 before it was turned on");
        f.reload_ok(&config(true));
        f.wait_line("listening for HTTP/3", 0).await;
        let mut c = connect(addr, &ca).await;
        assert_eq!(request(&mut c, get_req("/"), Bytes::new()).await.unwrap().status, 200);
        f.reload_ok(&config(false));
        f.wait_line("HTTP/3 stopped; its connections finish", 0).await;
        // The connection opened before goes on; new ones are refused.
        assert_eq!(request(&mut c, get_req("/"), Bytes::new()).await.unwrap().status, 200);
        assert!(!answers_h3(addr, &ca).await, "HTTP/3 after it was turned off");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_idle_http3_connections_and_exits_at_once() {
    within(async {
        let ca = Ca::new("h3 test CA");
        let dir = TempDir::new();
        let b = backend(0).await;
        let (cert, key) = ca.leaf(&["h3.fulcrum.test"], false).write(&dir, "leaf");
        let mut f = Fulcrum::start(&format!(
            "workers = 2\nshutdown_timeout = \"30s\"\n\n[listeners.secure]\naddress = \"127.0.0.1:0\"\n\
             protocol = \"https\"\nhttp3 = true\n\
             tls = {{ certificates = [{{ cert = {cert:?}, key = {key:?} }}] }}\n\n\
             [[routes]]\npool = \"p\"\n\n[pools.p]\nbackends = [{}]\n",
            quoted(&b)
        ));
        let (mut c, conn) = connect_raw(f.addr("secure"), &ca).await;
        assert_eq!(request(&mut c, get_req("/"), Bytes::new()).await.unwrap().status, 200);
        // The connection stays open and idle; a stop must not wait 30 s for it.
        let started = std::time::Instant::now();
        f.signal(15);
        let reason = tokio::time::timeout(TIMEOUT, conn.closed()).await.unwrap();
        let status = tokio::task::block_in_place(|| f.wait_exit());
        let took = started.elapsed();
        println!("closed ({reason}) and exited {status:?} after {took:?}");
        assert!(status.success(), "{status:?}");
        assert!(took < std::time::Duration::from_secs(15), "{took:?}");
    })
    .await;
}

/// What an HTTP/3 load client saw: answers, requests a client may resend on a new
/// connection (refused before any backend saw them: GOAWAY, a closed connection,
/// H3_REQUEST_REJECTED), and failures.
#[derive(Debug, Default)]
struct H3Tally {
    ok: usize,
    resent: usize,
    connections: usize,
    failed: Vec<String>,
}

/// Whether a client may send a request again on a new connection after `e`, seen
/// before any of the answer arrived: the server said it did not take the request
/// (GOAWAY, H3_REQUEST_REJECTED), or closed the connection with H3_NO_ERROR, which
/// Fulcrum does only once every request it took is answered.
fn may_resend(e: &h3::error::StreamError) -> bool {
    use h3::error::{Code, StreamError};
    match e {
        StreamError::RemoteClosing { .. } => true,
        StreamError::RemoteTerminate { code, .. } => *code == Code::H3_REQUEST_REJECTED,
        _ => e.is_h3_no_error(),
    }
}

/// Requests over HTTP/3 until `stop`, a new connection every 20 requests (and
/// whenever the server closes one), as browsers do.
async fn h3_load(
    addr: SocketAddr,
    ca: Arc<Ca>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    total: Arc<std::sync::atomic::AtomicUsize>,
) -> H3Tally {
    let mut t = H3Tally::default();
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let mut c = connect(addr, &ca).await;
        t.connections += 1;
        for _ in 0..20 {
            let mut stream = match c.send.send_request(get_req("/")).await {
                Ok(s) => s,
                Err(e) if may_resend(&e) => {
                    t.resent += 1;
                    break;
                }
                Err(e) => {
                    t.failed.push(format!("send: {e}"));
                    break;
                }
            };
            let head = async {
                stream.finish().await?;
                stream.recv_response().await
            };
            let status = match head.await {
                Ok(resp) => resp.status(),
                Err(e) if may_resend(&e) => {
                    t.resent += 1;
                    break;
                }
                Err(e) => {
                    t.failed.push(format!("head: {e}"));
                    break;
                }
            };
            // Once the answer started, nothing may cut it.
            let body = async {
                while stream.recv_data().await?.is_some() {}
                Ok::<_, h3::error::StreamError>(())
            };
            match body.await {
                Ok(()) if status == 200 => {
                    t.ok += 1;
                    total.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                Ok(()) => t.failed.push(format!("status {status}")),
                Err(e) => {
                    t.failed.push(format!("body: {e}"));
                    break;
                }
            }
        }
    }
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_under_http3_load_fails_nothing_and_old_connections_finish_there() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    within(async {
        let ca = Arc::new(Ca::new("h3 test CA"));
        let dir = TempDir::new();
        let a = crate::support_health::Switchable::start("a").await;
        let (cert, key) = ca.leaf(&["h3.fulcrum.test"], false).write(&dir, "leaf");
        let mut f = Fulcrum::start(&format!(
            "workers = 2\nshutdown_timeout = \"60s\"\n\n[listeners.secure]\naddress = \"127.0.0.1:0\"\n\
             protocol = \"https\"\nhttp3 = true\n\
             tls = {{ certificates = [{{ cert = {cert:?}, key = {key:?} }}] }}\n\n\
             [[routes]]\npool = \"p\"\n\n[pools.p]\nbackends = [\"{}\"]\n",
            a.addr
        ));
        let addr = f.addr("secure");
        let mut reap = crate::handover::Reap(Vec::new());
        // Opened on the old process and held there across the upgrade: every packet
        // of it the new process reads must reach the old one.
        let mut held = Vec::new();
        for _ in 0..4 {
            let mut c = connect(addr, &ca).await;
            held.push(tokio::spawn(async move {
                request(&mut c, get_req("/stream-hold"), Bytes::new()).await
            }));
        }
        until("the held responses started", || a.held() == 4).await;
        let (stop, total) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicUsize::new(0)));
        let load: Vec<_> = (0..4)
            .map(|_| tokio::spawn(h3_load(addr, ca.clone(), stop.clone(), total.clone())))
            .collect();
        until("load before the upgrade", || total.load(Ordering::Relaxed) >= 100).await;
        reap.0.push(crate::handover::upgrade(&f, f.child.id(), 0).await);
        let after = total.load(Ordering::Relaxed);
        until("load on both processes", || total.load(Ordering::Relaxed) >= after + 300).await;
        // The held responses finish on the old process, then it exits.
        a.release();
        for h in held {
            let got = h.await.unwrap().expect("a held response over HTTP/3");
            assert_eq!(got.status, 200);
            assert_eq!(got.body, Bytes::from_static(b"start\nend\n"), "cut short");
        }
        let status = tokio::task::block_in_place(|| f.wait_exit());
        assert!(status.success(), "{status:?}");
        let after = total.load(Ordering::Relaxed);
        until("load on the new process alone", || total.load(Ordering::Relaxed) >= after + 200).await;
        stop.store(true, Ordering::Relaxed);
        let mut all = H3Tally::default();
        for t in load {
            let t = t.await.unwrap();
            all.ok += t.ok;
            all.resent += t.resent;
            all.connections += t.connections;
            all.failed.extend(t.failed);
        }
        println!("{all:?}");
        assert!(all.failed.is_empty(), "{:?}", all.failed);
    })
    .await;
}

/// The h3 stream's data until at least `n` bytes are in `got`.
async fn read_h3_at_least(
    stream: &mut h3::client::RequestStream<h3_quinn::BidiStream<Bytes>, Bytes>,
    got: &mut Vec<u8>,
    n: usize,
) {
    while got.len() < n {
        let mut chunk = stream
            .recv_data()
            .await
            .unwrap()
            .expect("the stream ended early");
        got.extend_from_slice(&chunk.copy_to_bytes(chunk.remaining()));
    }
}

/// RFC 9220: an HTTP/3 client's extended CONNECT reaches an HTTP/1.1 WebSocket
/// backend (tungstenite) as an upgrade, and frames cross both ways on the stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_over_http3_reaches_an_http1_backend() {
    within(async {
        let ca = Ca::new("h3 test CA");
        let dir = TempDir::new();
        let echo = crate::websocket::Echo::start().await;
        let (cert, key) = ca.leaf(&["h3.fulcrum.test"], false).write(&dir, "leaf");
        let f = Fulcrum::start(&format!(
            "workers = 1\n\n[listeners.secure]\naddress = \"127.0.0.1:0\"\nprotocol = \"https\"\n\
             http3 = true\ntls = {{ certificates = [{{ cert = {cert:?}, key = {key:?} }}] }}\n\n\
             [[routes]]\npool = \"p\"\n\n[pools.p]\nbackends = [\"{}\"]\n",
            echo.addr
        ));
        let mut c = connect(f.addr("secure"), &ca).await;
        let mut req = http::Request::builder()
            .method(http::Method::CONNECT)
            .uri("https://h3.fulcrum.test/chat")
            .header("sec-websocket-version", "13")
            .body(())
            .unwrap();
        req.extensions_mut().insert(h3::ext::Protocol::WEBSOCKET);
        let mut stream = c.send.send_request(req).await.unwrap();
        let res = stream.recv_response().await.unwrap();
        assert_eq!(res.status(), 200);
        assert!(res.headers().get("sec-websocket-accept").is_none());

        let hello = b"hello over h3";
        let frame = crate::websocket::client_frame(0x1, hello);
        stream.send_data(Bytes::from(frame)).await.unwrap();
        let mut got = Vec::new();
        read_h3_at_least(&mut stream, &mut got, 2 + hello.len()).await;
        assert_eq!(&got[..2], &[0x81, hello.len() as u8]);
        assert_eq!(&got[2..2 + hello.len()], hello);
        got.drain(..2 + hello.len());

        // A 100 KiB binary message, then close 1000: the backend answers with a
        // close and ends its connection, which ends the stream.
        let big: Vec<u8> = (0..100 * 1024).map(|i| (i % 251) as u8).collect();
        let frame = crate::websocket::client_frame(0x2, &big);
        stream.send_data(Bytes::from(frame)).await.unwrap();
        read_h3_at_least(&mut stream, &mut got, 10 + big.len()).await;
        assert_eq!(&got[..2], &[0x82, 127]);
        assert_eq!(&got[10..10 + big.len()], &big[..]);
        got.drain(..10 + big.len());
        let close = crate::websocket::client_frame(0x8, &1000u16.to_be_bytes());
        stream.send_data(Bytes::from(close)).await.unwrap();
        stream.finish().await.unwrap();
        read_h3_at_least(&mut stream, &mut got, 4).await;
        assert_eq!(&got[..4], &[0x88, 2, 0x03, 0xe8]);
        while stream.recv_data().await.unwrap().is_some() {}
        assert_eq!(echo.accepted.load(std::sync::atomic::Ordering::SeqCst), 1);

        // A plain CONNECT is still refused: no open tunnel.
        let plain = http::Request::builder()
            .method(http::Method::CONNECT)
            .uri("https://h3.fulcrum.test/")
            .body(())
            .unwrap();
        let mut stream = c.send.send_request(plain).await.unwrap();
        stream.finish().await.unwrap();
        assert_eq!(stream.recv_response().await.unwrap().status(), 405);
    })
    .await;
}

/// aioquic (Python; its own QUIC, TLS and QPACK) through Fulcrum: a GET, a 1 MiB
/// POST, and a WebSocket over HTTP/3 to a tungstenite backend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aioquic_client_gets_posts_and_talks_websocket_through_fulcrum() {
    within(async {
        let ca = Ca::new("h3 test CA");
        let dir = TempDir::new();
        let b = backend(0).await;
        let echo = crate::websocket::Echo::start().await;
        let ca_file = dir.path("ca.pem");
        std::fs::write(&ca_file, ca.pem()).unwrap();
        let (cert, key) = ca.leaf(&["h3.fulcrum.test"], false).write(&dir, "leaf");
        let f = Fulcrum::start(&format!(
            "workers = 1\n\n[listeners.secure]\naddress = \"127.0.0.1:0\"\nprotocol = \"https\"\n\
             http3 = true\ntls = {{ certificates = [{{ cert = {cert:?}, key = {key:?} }}] }}\n\n\
             [[routes]]\npath_prefix = \"/ws\"\npool = \"ws\"\n\n[[routes]]\npool = \"p\"\n\n\
             [pools.p]\nbackends = [{}]\n\n[pools.ws]\nbackends = [\"{}\"]\n",
            quoted(&b),
            echo.addr
        ));
        let addr = f.addr("secure");
        let script = format!("{}/tests/it/aioquic/client.py", env!("CARGO_MANIFEST_DIR"));
        let out = tokio::task::spawn_blocking(move || {
            std::process::Command::new("python3")
                .arg(script)
                .arg(addr.to_string())
                .arg(ca_file)
                .arg("h3.fulcrum.test")
                .stdin(std::process::Stdio::null())
                .output()
                .expect("python3 runs (scripts/test-all installs aioquic)")
        })
        .await
        .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "aioquic client failed through Fulcrum:\n{stdout}\n{stderr}"
        );
        assert!(stdout.contains("aioquic client: all passed"), "{stdout}");
        assert_eq!(echo.accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
    })
    .await;
}
