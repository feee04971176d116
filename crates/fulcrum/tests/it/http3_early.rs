//! 0-RTT over HTTP/3 (`early_data`), with quinn's client resuming a session: a
//! request in early data goes on only for a safe method, with `Early-Data: 1`;
//! anything else gets 425 and reaches no backend. A UDP relay between client and
//! Fulcrum holds the client's handshake-completing packets, so the requests are
//! read while the handshake is still open, as a replayed one would be.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::{Buf, Bytes};
use http_body_util::Full;
use hyper::Response;
use tokio::net::UdpSocket;
use tokio::sync::watch;

use crate::support::*;
use crate::support_tls::*;

/// A QUIC variable-length integer at the front of `b`, and its length.
fn varint(b: &[u8]) -> Option<(usize, usize)> {
    let first = *b.first()?;
    let len = 1usize << (first >> 6);
    let mut v = u64::from(first & 0x3f);
    for x in b.get(1..len)? {
        v = (v << 8) | u64::from(*x);
    }
    Some((usize::try_from(v).ok()?, len))
}

/// Whether a client datagram carries a Handshake or 1-RTT packet (the client's
/// Finished, or what follows it), walking its coalesced long-header packets.
fn completes_handshake(mut d: &[u8]) -> bool {
    while let Some(&first) = d.first() {
        if first & 0x80 == 0 {
            return true;
        }
        let kind = (first >> 4) & 3;
        if kind == 2 {
            return true;
        }
        let walk = || {
            let mut i = 5;
            i += 1 + usize::from(*d.get(i)?);
            i += 1 + usize::from(*d.get(i)?);
            if kind == 0 {
                let (token, n) = varint(d.get(i..)?)?;
                i += n + token;
            }
            let (len, n) = varint(d.get(i..)?)?;
            Some(i + n + len)
        };
        match walk() {
            Some(next) if next <= d.len() => d = &d[next..],
            _ => return false,
        }
    }
    false
}

/// A UDP relay to `upstream` that holds the client's Handshake and 1-RTT packets,
/// and everything the server sends, until `true` is sent on the returned channel:
/// meanwhile the client can send only in 0-RTT, and the server cannot complete
/// the handshake.
async fn holding_relay(upstream: SocketAddr) -> (SocketAddr, watch::Sender<bool>) {
    let front = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let back = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    back.connect(upstream).await.unwrap();
    let addr = front.local_addr().unwrap();
    let (tx, mut rx) = watch::channel(false);
    tokio::spawn(async move {
        let (mut client, mut held, mut released) = (None, Vec::new(), false);
        let mut held_back: Vec<Vec<u8>> = Vec::new();
        let (mut a, mut b) = (vec![0u8; 65536], vec![0u8; 65536]);
        loop {
            tokio::select! {
                r = front.recv_from(&mut a) => {
                    let Ok((n, from)) = r else { return };
                    client = Some(from);
                    let d = a[..n].to_vec();
                    if !released && completes_handshake(&d) {
                        held.push(d);
                    } else {
                        let _ = back.send(&d).await;
                    }
                }
                r = back.recv(&mut b) => {
                    let Ok(n) = r else { return };
                    if !released {
                        held_back.push(b[..n].to_vec());
                    } else if let Some(c) = client {
                        let _ = front.send_to(&b[..n], c).await;
                    }
                }
                r = rx.changed(), if !released => {
                    if r.is_err() {
                        return;
                    }
                    released = true;
                    for d in held.drain(..) {
                        let _ = back.send(&d).await;
                    }
                    if let Some(c) = client {
                        for d in held_back.drain(..) {
                            let _ = front.send_to(&d, c).await;
                        }
                    }
                }
            }
        }
    });
    (addr, tx)
}

type Send = h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>;

/// An h3 client on `conn`, and the task driving it.
async fn h3_over(conn: quinn::Connection) -> (Send, tokio::task::JoinHandle<()>) {
    let (mut driver, send) = h3::client::new(h3_quinn::Connection::new(conn))
        .await
        .unwrap();
    let driver = tokio::spawn(async move {
        let _ = std::future::poll_fn(|cx| driver.poll_close(cx)).await;
    });
    (send, driver)
}

/// Status and body of one request.
async fn ask(send: &mut Send, method: http::Method, path: &str) -> (u16, String) {
    let req = http::Request::builder()
        .method(method)
        .uri(format!("https://h3.fulcrum.test{path}"))
        .body(())
        .unwrap();
    let mut stream = send.send_request(req).await.unwrap();
    stream.finish().await.unwrap();
    let resp = stream.recv_response().await.unwrap();
    let mut body = Vec::new();
    while let Some(mut chunk) = stream.recv_data().await.unwrap() {
        body.extend_from_slice(&chunk.copy_to_bytes(chunk.remaining()));
    }
    (
        resp.status().as_u16(),
        String::from_utf8_lossy(&body).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_data_forwards_safe_methods_marked_and_refuses_the_rest_with_425() {
    within(async {
        let ca = Ca::new("h3 test CA");
        let dir = TempDir::new();
        let posts = Arc::new(AtomicUsize::new(0));
        let seen = posts.clone();
        // Answers the Early-Data field it got; counts the POSTs that reach it.
        let backend = Backend::with(
            "b",
            false,
            Arc::new(move |_: &str, req: hyper::Request<Bytes>| {
                if req.method() == http::Method::POST {
                    seen.fetch_add(1, Ordering::Relaxed);
                }
                let early = req
                    .headers()
                    .get("early-data")
                    .map_or("none".to_owned(), |v| {
                        String::from_utf8_lossy(v.as_bytes()).into_owned()
                    });
                Response::new(Full::new(Bytes::from(format!("early-data={early}"))))
            }),
        )
        .await;
        let (cert, key) = ca.leaf(&["h3.fulcrum.test"], false).write(&dir, "leaf");
        let log = dir.path("access.log").display().to_string();
        let f = Fulcrum::start(&format!(
            "workers = 1\n\n[listeners.secure]\naddress = \"127.0.0.1:0\"\nprotocol = \"https\"\n\
             http3 = true\nearly_data = true\n\
             tls = {{ certificates = [{{ cert = {cert:?}, key = {key:?} }}] }}\n\n\
             [[routes]]\npool = \"p\"\n\n[pools.p]\nbackends = [{}]\n\n\
             [access_log]\npath = {log:?}\n",
            quoted(&backend)
        ));
        let addr = f.addr("secure");
        // A client that keeps session tickets and sends early data.
        let mut tls = (*client_config(&[ca.der()], &["h3"], None)).clone();
        tls.resumption = rustls::client::Resumption::default();
        tls.enable_early_data = true;
        let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(Arc::new(tls)).unwrap();
        let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));

        // A first connection, straight to Fulcrum: a full handshake and a ticket.
        let first = endpoint
            .connect(addr, "h3.fulcrum.test")
            .unwrap()
            .await
            .unwrap();
        let (mut send, driver) = h3_over(first.clone()).await;
        assert_eq!(
            ask(&mut send, http::Method::GET, "/").await,
            (200, "early-data=none".into())
        );
        drop(send);
        driver.abort();
        first.close(0u32.into(), b"done");

        // The second resumes with 0-RTT through a relay that holds the handshake's
        // end: its requests are read while the handshake is open, as a replayed
        // handshake's would be (one that never completes).
        let (relay, release) = holding_relay(addr).await;
        let connecting = endpoint.connect(relay, "h3.fulcrum.test").unwrap();
        let Ok((conn, accepted)) = connecting.into_0rtt() else {
            panic!("no 0-RTT: the client has no ticket from the first connection");
        };
        let (send, _driver) = h3_over(conn.clone()).await;
        let get = tokio::spawn({
            let mut send = send.clone();
            async move { ask(&mut send, http::Method::GET, "/early").await }
        });
        let post = tokio::spawn({
            let mut send = send.clone();
            async move { ask(&mut send, http::Method::POST, "/early").await }
        });
        // Both taken while the handshake is open: the GET reached the backend, the
        // POST was answered (logged) without it.
        until("the early GET reaches the backend", || {
            backend.requests() >= 2
        })
        .await;
        until("the early POST is answered", || {
            std::fs::read_to_string(&log).is_ok_and(|l| l.contains("\"status\":425"))
        })
        .await;
        assert_eq!(
            posts.load(Ordering::Relaxed),
            0,
            "a POST in early data reached the backend"
        );
        release.send(true).unwrap();
        assert_eq!(
            get.await.unwrap(),
            (200, "early-data=1".into()),
            "a GET in early data goes on, marked"
        );
        assert_eq!(post.await.unwrap().0, 425, "a POST in early data");
        let mut send = send;

        // Once the handshake completes, the same connection's requests are ordinary.
        release.send(true).unwrap();
        assert!(accepted.await, "the server refused the early data");
        assert_eq!(
            ask(&mut send, http::Method::POST, "/late").await,
            (200, "early-data=none".into())
        );
        assert_eq!(
            ask(&mut send, http::Method::GET, "/late").await,
            (200, "early-data=none".into())
        );
        assert_eq!(posts.load(Ordering::Relaxed), 1);
    })
    .await;
}

#[test]
fn the_relay_tells_the_client_finished_apart() {
    // A client Initial (long header, type 0) with a token length and a length.
    let mut initial = vec![0xc0, 0, 0, 0, 1, 8];
    initial.extend_from_slice(&[1; 8]);
    initial.push(0);
    initial.push(0); // no token
    initial.extend_from_slice(&[0x40, 4]); // length 4 (two-byte varint)
    initial.extend_from_slice(&[0; 4]);
    assert!(!completes_handshake(&initial));
    let mut zero_rtt = vec![0xd0, 0, 0, 0, 1, 0, 0, 3, 9, 9, 9];
    assert!(!completes_handshake(&zero_rtt));
    let mut coalesced = initial.clone();
    coalesced.extend_from_slice(&[0xe0, 0, 0, 0, 1, 0, 0, 1, 0]);
    assert!(
        completes_handshake(&coalesced),
        "an Initial with a Handshake packet after it"
    );
    zero_rtt.extend_from_slice(&[0x40, 1, 2, 3]);
    assert!(
        completes_handshake(&zero_rtt),
        "a 1-RTT packet after a 0-RTT one"
    );
}
