//! Layer 4 under load and under an operator's hand: many large echo transfers at
//! once, and a drained backend that finishes its connection while new ones go
//! elsewhere.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::TcpEcho as Echo;
use crate::support::*;

/// A tcp listener `db` over pool `p` (round robin), with an admin listener.
fn config(backends: &[&Echo]) -> String {
    let list: Vec<String> = backends.iter().map(|b| format!("\"{}\"", b.addr)).collect();
    format!(
        "workers = 2\n\n[listeners.db]\naddress = \"127.0.0.1:0\"\nprotocol = \"tcp\"\npool = \"p\"\n\n\
         [pools.p]\nbackends = [{}]\ndrain_timeout = \"5m\"\n\n[admin]\naddress = \"127.0.0.1:0\"\n",
        list.join(", ")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_megabyte_echoes_arrive_intact() {
    within(async {
        let (a, b) = (Echo::start().await, Echo::start().await);
        let f = Fulcrum::start(&config(&[&a, &b]));
        let addr = f.addr("db");
        let mut tasks = Vec::new();
        for n in 0..200u32 {
            tasks.push(tokio::spawn(async move {
                // Different bytes per connection: a mix-up between two would show.
                let data: Vec<u8> = (0..1_000_000u32)
                    .map(|i| (i.wrapping_mul(31).wrapping_add(n * 7)) as u8)
                    .collect();
                let s = TcpStream::connect(addr).await.unwrap();
                let (mut r, mut w) = s.into_split();
                let send = {
                    let data = data.clone();
                    async move {
                        w.write_all(&data).await.unwrap();
                        w.shutdown().await.unwrap();
                    }
                };
                let recv = async move {
                    let mut back = Vec::with_capacity(1_000_000);
                    r.read_to_end(&mut back).await.unwrap();
                    back
                };
                let ((), back) = tokio::join!(send, recv);
                assert!(back == data, "connection {n}: {} bytes back", back.len());
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(a.accepted() + b.accepted(), 200);
        assert!(a.accepted() > 0 && b.accepted() > 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_backend_keeps_its_connection_while_new_ones_go_elsewhere() {
    within(async {
        let (a, b) = (Echo::start().await, Echo::start().await);
        let f = Fulcrum::start(&config(&[&a, &b]));
        let admin = f.admin_addr().await;
        let mut open = TcpStream::connect(f.addr("db")).await.unwrap();
        open.write_all(b"first").await.unwrap();
        let mut buf = [0u8; 5];
        open.read_exact(&mut buf).await.unwrap();
        let (held, other) = if a.accepted() == 1 {
            (&a, &b)
        } else {
            (&b, &a)
        };
        assert_eq!(held.accepted(), 1);

        let url = format!("http://{admin}/api/pools/p/backends/{}/drain", held.addr);
        let res = client()
            .request(
                hyper::Request::post(url)
                    .body(http_body_util::Full::new(bytes::Bytes::new()))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(res.status(), 200);

        // New connections all go to the other backend...
        for _ in 0..6 {
            let mut s = TcpStream::connect(f.addr("db")).await.unwrap();
            s.write_all(b"new").await.unwrap();
            s.shutdown().await.unwrap();
            let mut back = Vec::new();
            s.read_to_end(&mut back).await.unwrap();
            assert_eq!(back, b"new");
        }
        assert_eq!(held.accepted(), 1);
        assert_eq!(other.accepted(), 6);
        // ...while the drained one's connection still carries bytes both ways.
        open.write_all(b"still").await.unwrap();
        open.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"still");
        open.shutdown().await.unwrap();
        let mut rest = Vec::new();
        open.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
        // Its end releases the backend.
        f.wait_line("backend released", 0).await;
    })
    .await;
}
