//! Layer 4: tcp listeners proxy bytes to a pool of real TCP echo servers.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::TcpEcho as Echo;
use crate::support::*;

/// One tcp listener `db` on `address` over pool `p` (round robin, one worker).
fn config(address: &str, backends: &[String], listener_extra: &str) -> String {
    format!(
        "workers = 1\n\n[listeners.db]\naddress = \"{address}\"\nprotocol = \"tcp\"\npool = \"p\"\n{listener_extra}\n\n[pools.p]\nbackends = [{}]\n",
        backends.join(", ")
    )
}

/// Sends `msg`, half-closes, and reads until the proxy closes.
async fn echo_once(addr: SocketAddr, msg: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(msg).await.unwrap();
    s.shutdown().await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    out
}

/// Writes `msg` and reads its echo back, on an open connection.
async fn round_trip(s: &mut TcpStream, msg: &[u8]) {
    s.write_all(msg).await.unwrap();
    let mut back = vec![0u8; msg.len()];
    s.read_exact(&mut back).await.unwrap();
    assert_eq!(back, msg);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echoes_through_the_pool_and_logs_the_connection() {
    within(async {
        let b = Echo::start().await;
        let admin = "\n[admin]\naddress = \"127.0.0.1:0\"\n";
        let f = Fulcrum::start(&format!(
            "{}{admin}",
            config("127.0.0.1:0", &[b.quoted()], "")
        ));
        let admin_line = f.wait_line("admin listening", 0).await;
        let admin = admin_line
            .split_whitespace()
            .find_map(|t| t.strip_prefix("address="))
            .unwrap()
            .to_owned();
        let addr = f.addr("db");
        let mut s = TcpStream::connect(addr).await.unwrap();
        // Interactive: each message comes back before the next is sent.
        round_trip(&mut s, b"hello").await;
        round_trip(&mut s, b", world").await;
        drop(s);
        let line = tokio::task::block_in_place(|| f.wait_access_log(1)).remove(0);
        assert_eq!(line["proto"], "TCP", "{line}");
        assert_eq!(line["listener"], "db", "{line}");
        assert_eq!(line["pool"], "p", "{line}");
        assert_eq!(line["status"], 200, "{line}");
        assert_eq!(line["backend"], b.addr.to_string(), "{line}");
        assert_eq!(line["bytes_in"], 12, "{line}");
        assert_eq!(line["bytes_out"], 12, "{line}");
        assert_eq!(line["attempts"], 1, "{line}");
        // The listener's metrics count the connection, and no longer as open.
        let wanted = [
            "fulcrum_listener_connections_total{listener=\"db\"} 1",
            "fulcrum_listener_open_connections{listener=\"db\"} 0",
            "fulcrum_listener_requests_total{listener=\"db\",class=\"2xx\"} 1",
        ];
        let deadline = std::time::Instant::now() + TIMEOUT;
        loop {
            let (status, _, body) = get(&client(), &format!("http://{admin}/metrics")).await;
            assert_eq!(status, 200);
            let text = String::from_utf8_lossy(&body).into_owned();
            if wanted.iter().all(|w| text.lines().any(|l| l == *w)) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{wanted:?} not in:\n{text}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_spreads_connections() {
    within(async {
        let (a, b) = (Echo::start().await, Echo::start().await);
        let f = Fulcrum::start(&config("127.0.0.1:0", &[a.quoted(), b.quoted()], ""));
        for i in 0..10u8 {
            assert_eq!(echo_once(f.addr("db"), &[i; 100]).await, [i; 100]);
        }
        assert_eq!((a.accepted(), b.accepted()), (5, 5));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connect_moves_to_another_backend() {
    within(async {
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let b = Echo::start().await;
        let backends = [format!("\"{closed}\""), b.quoted()];
        let f = Fulcrum::start(&config("127.0.0.1:0", &backends, ""));
        for i in 0..6u8 {
            assert_eq!(echo_once(f.addr("db"), &[i; 10]).await, [i; 10]);
        }
        assert_eq!(b.accepted(), 6);
        let lines = tokio::task::block_in_place(|| f.wait_access_log(6));
        assert!(lines.iter().all(|l| l["status"] == 200), "{lines:?}");
        // The closed port was tried, and skipped within the same connection.
        assert!(lines.iter().any(|l| l["attempts"] == 2), "{lines:?}");
        assert!(
            lines.iter().all(|l| l["backend"] == b.addr.to_string()),
            "{lines:?}"
        );
    })
    .await;
}

/// A server that reads until the client half-closes, then answers with what it
/// read, reversed, and closes: it only ever answers after end of stream.
async fn reverser() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut got = Vec::new();
                if s.read_to_end(&mut got).await.is_ok() {
                    got.reverse();
                    let _ = s.write_all(&got).await;
                    let _ = s.shutdown().await;
                }
            });
        }
    });
    (addr, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_close_reaches_the_backend_and_the_reply_still_arrives() {
    within(async {
        let (addr, task) = reverser().await;
        let f = Fulcrum::start(&config("127.0.0.1:0", &[format!("\"{addr}\"")], ""));
        let mut s = TcpStream::connect(f.addr("db")).await.unwrap();
        s.write_all(b"stressed").await.unwrap();
        // The backend answers only once it sees end of stream, so the client's
        // shutdown must reach it while the way back stays open.
        s.shutdown().await.unwrap();
        let mut reply = Vec::new();
        s.read_to_end(&mut reply).await.unwrap();
        assert_eq!(reply, b"desserts");
        task.abort();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_is_closed_after_idle_timeout() {
    within(async {
        let b = Echo::start().await;
        let f = Fulcrum::start(&config(
            "127.0.0.1:0",
            &[b.quoted()],
            "idle_timeout = \"300ms\"",
        ));
        let mut s = TcpStream::connect(f.addr("db")).await.unwrap();
        round_trip(&mut s, b"ping").await;
        let started = std::time::Instant::now();
        let mut buf = [0u8; 16];
        // Nothing is sent either way: Fulcrum closes both sides.
        assert_eq!(s.read(&mut buf).await.unwrap(), 0);
        assert!(started.elapsed() >= std::time::Duration::from_millis(250));
        let line = tokio::task::block_in_place(|| f.wait_access_log(1)).remove(0);
        assert_eq!(line["error"], "idle timeout", "{line}");
        assert_eq!(line["status"], 200, "{line}");
    })
    .await;
}

/// The address of the `listening listener=db` line after `skip` lines.
async fn db_addr(f: &Fulcrum, skip: usize) -> SocketAddr {
    let line = f.wait_line("listener=db", skip).await;
    line.split_whitespace()
        .find_map(|t| t.strip_prefix("address="))
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_moves_the_listener_and_open_connections_carry_on() {
    within(async {
        let b = Echo::start().await;
        let f = Fulcrum::start(&config("127.0.0.1:0", &[b.quoted()], ""));
        let old = f.addr("db");
        let mut open = TcpStream::connect(old).await.unwrap();
        round_trip(&mut open, b"before").await;

        let skip = f.log.len();
        let line =
            tokio::task::block_in_place(|| f.reload(&config("127.0.0.2:0", &[b.quoted()], "")));
        assert!(line.contains("config reloaded"), "{line}");
        let moved = db_addr(&f, skip).await;
        assert_eq!(moved.ip().to_string(), "127.0.0.2");
        assert_eq!(echo_once(moved, b"moved").await, b"moved");
        until("the old address is closed", || {
            std::net::TcpStream::connect(old).is_err()
        })
        .await;
        // Accepted before the move: still spliced.
        round_trip(&mut open, b"after").await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_megabytes_each_way_arrive_intact() {
    within(async {
        let b = Echo::start().await;
        let f = Fulcrum::start(&config("127.0.0.1:0", &[b.quoted()], ""));
        let data: Vec<u8> = (0..20 * 1024 * 1024u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect();
        let s = TcpStream::connect(f.addr("db")).await.unwrap();
        let (mut r, mut w) = s.into_split();
        let sent = data.clone();
        // Written and read at once: an echo would deadlock a client that only writes.
        let writer = tokio::spawn(async move {
            w.write_all(&sent).await.unwrap();
            w.shutdown().await.unwrap();
        });
        let mut back = Vec::with_capacity(data.len());
        r.read_to_end(&mut back).await.unwrap();
        writer.await.unwrap();
        assert_eq!(back.len(), data.len());
        assert!(back == data, "the echo differs from what was sent");
        let line = tokio::task::block_in_place(|| f.wait_access_log(1)).remove(0);
        assert_eq!(line["bytes_in"], data.len(), "{line}");
        assert_eq!(line["bytes_out"], data.len(), "{line}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_waits_for_an_open_connection() {
    within(async {
        let b = Echo::start().await;
        let mut f = Fulcrum::start(&format!(
            "shutdown_timeout = \"60s\"\n{}",
            config("127.0.0.1:0", &[b.quoted()], "")
        ));
        let mut s = TcpStream::connect(f.addr("db")).await.unwrap();
        round_trip(&mut s, b"before").await;
        let skip = f.log.len();
        f.signal(15);
        f.wait_line("shutting down", skip).await;
        // Still spliced while shutdown waits; the process exits once it closes.
        round_trip(&mut s, b"during").await;
        assert!(f.child.try_wait().unwrap().is_none());
        s.shutdown().await.unwrap();
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).await.unwrap();
        let status = tokio::task::block_in_place(|| f.wait_exit());
        assert!(status.success(), "{status}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_hands_the_listener_over_and_the_old_process_finishes_its_connection() {
    within(async {
        let b = Echo::start().await;
        let mut f = Fulcrum::start(&config("127.0.0.1:0", &[b.quoted()], ""));
        let addr = f.addr("db");
        let mut open = TcpStream::connect(addr).await.unwrap();
        round_trip(&mut open, b"before").await;
        let new_pid = crate::handover::upgrade(&f, f.child.id(), 0).await;
        let _reap = crate::handover::Reap(vec![new_pid]);
        // The old process still splices the connection it accepted...
        round_trip(&mut open, b"during").await;
        open.shutdown().await.unwrap();
        let mut rest = Vec::new();
        open.read_to_end(&mut rest).await.unwrap();
        // ...and exits once it is done; the successor serves the same address.
        let status = tokio::task::block_in_place(|| f.wait_exit());
        assert!(status.success(), "{status}");
        assert_eq!(echo_once(addr, b"after").await, b"after");
    })
    .await;
}
