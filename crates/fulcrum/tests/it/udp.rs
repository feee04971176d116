//! Layer 4: udp listeners proxy datagrams to a pool of real UDP echo servers, one
//! session per client address.

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;

use crate::support::*;

mod flood;

/// A UDP echo server on port 0: answers `NAME PEER PAYLOAD`, where PEER is the
/// address the datagram came from (Fulcrum's session socket). Datagrams starting
/// with `flood` are only counted.
struct Echo {
    name: &'static str,
    addr: SocketAddr,
    peers: Arc<Mutex<HashSet<SocketAddr>>>,
    floods: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Echo {
    async fn start(name: &'static str) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let peers = Arc::new(Mutex::new(HashSet::new()));
        let floods = Arc::new(AtomicUsize::new(0));
        let (seen, counted) = (peers.clone(), floods.clone());
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            while let Ok((n, peer)) = socket.recv_from(&mut buf).await {
                if buf[..n].starts_with(b"flood") {
                    counted.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                seen.lock().unwrap().insert(peer);
                let mut reply = format!("{name} {peer} ").into_bytes();
                reply.extend_from_slice(&buf[..n]);
                let _ = socket.send_to(&reply, peer).await;
            }
        });
        Self {
            name,
            addr,
            peers,
            floods,
            task,
        }
    }

    fn quoted(&self) -> String {
        format!("\"{}\"", self.addr)
    }

    fn peers(&self) -> usize {
        self.peers.lock().unwrap().len()
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One udp listener `dns` over round-robin pool `p`, with an admin listener.
fn config(workers: usize, backends: &[String], listener_extra: &str) -> String {
    format!(
        "workers = {workers}\n\n[admin]\naddress = \"127.0.0.1:0\"\n\n[listeners.dns]\naddress = \"127.0.0.1:0\"\nprotocol = \"udp\"\npool = \"p\"\n{listener_extra}\n\n[pools.p]\nbackends = [{}]\n",
        backends.join(", ")
    )
}

/// A reply: which backend answered, the session socket it saw, and where the
/// reply came from.
#[derive(Debug)]
struct Reply {
    backend: String,
    seen_from: SocketAddr,
    from: SocketAddr,
    payload: String,
}

/// Sends `msg` to `to` until a reply comes (a datagram may be lost), up to `tries`
/// times, waiting `wait` for each.
async fn ask_with(
    s: &UdpSocket,
    to: SocketAddr,
    msg: &str,
    tries: u32,
    wait: Duration,
) -> Option<Reply> {
    let mut buf = vec![0u8; 65536];
    for _ in 0..tries {
        s.send_to(msg.as_bytes(), to).await.unwrap();
        let Ok(got) = tokio::time::timeout(wait, s.recv_from(&mut buf)).await else {
            continue;
        };
        let Ok((n, from)) = got else { continue };
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        let mut parts = text.splitn(3, ' ');
        let backend = parts.next().unwrap().to_owned();
        let seen_from = parts.next().unwrap().parse().unwrap();
        let payload = parts.next().unwrap_or_default().to_owned();
        return Some(Reply {
            backend,
            seen_from,
            from,
            payload,
        });
    }
    None
}

async fn ask(s: &UdpSocket, to: SocketAddr, msg: &str) -> Reply {
    ask_with(s, to, msg, 1, TIMEOUT)
        .await
        .unwrap_or_else(|| panic!("no reply to {msg:?}"))
}

async fn client_socket() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").await.unwrap()
}

/// The admin listener's address.
async fn admin(f: &Fulcrum) -> String {
    let line = f.wait_line("admin listening", 0).await;
    line.split_whitespace()
        .find_map(|t| t.strip_prefix("address="))
        .unwrap()
        .to_owned()
}

/// The value of `series` (name and labels, exactly) on `/metrics`.
async fn metric(admin: &str, series: &str) -> Option<u64> {
    let (status, _, body) = get(&client(), &format!("http://{admin}/metrics")).await;
    assert_eq!(status, 200);
    let text = String::from_utf8_lossy(&body).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Waits until every `(series, value)` shows on `/metrics`.
async fn until_metrics(admin: &str, wanted: &[(&str, u64)]) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let mut missing = Vec::new();
        for (series, value) in wanted {
            let got = metric(admin, series).await;
            if got != Some(*value) {
                missing.push(format!("{series} = {got:?}, wanted {value}"));
            }
        }
        if missing.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "{missing:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echoes_through_the_pool_from_the_listener_address() {
    within(async {
        let b = Echo::start("a").await;
        let f = Fulcrum::start(&config(1, &[b.quoted()], ""));
        let admin = admin(&f).await;
        let dns = f.addr("dns");
        let c = client_socket().await;
        let mut session = None;
        for msg in ["one", "two", "three"] {
            let r = ask(&c, dns, msg).await;
            assert_eq!((r.backend.as_str(), r.payload.as_str()), ("a", msg));
            // The reply comes from the address the client sent to.
            assert_eq!(r.from, dns);
            assert_eq!(*session.get_or_insert(r.seen_from), r.seen_from);
        }
        // One session socket toward the backend, counted like a connection.
        assert_eq!(b.peers(), 1);
        let backend = format!("{{pool=\"p\",backend=\"{}\"}}", b.addr);
        let listener = "{listener=\"dns\"}";
        let replies = ["a ", &session.unwrap().to_string(), " "].concat().len() * 3 + 11;
        until_metrics(
            &admin,
            &[
                (&format!("fulcrum_listener_open_sessions{listener}"), 1),
                (&format!("fulcrum_listener_sessions_total{listener}"), 1),
                (
                    "fulcrum_listener_datagrams_total{listener=\"dns\",direction=\"in\"}",
                    3,
                ),
                (
                    "fulcrum_listener_datagrams_total{listener=\"dns\",direction=\"out\"}",
                    3,
                ),
                (
                    "fulcrum_listener_datagram_bytes_total{listener=\"dns\",direction=\"in\"}",
                    11,
                ),
                (
                    "fulcrum_listener_datagram_bytes_total{listener=\"dns\",direction=\"out\"}",
                    replies as u64,
                ),
                (&format!("fulcrum_backend_in_flight_requests{backend}"), 1),
                (&format!("fulcrum_backend_open_streams{backend}"), 1),
            ],
        )
        .await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_keeps_its_backend_and_the_next_client_gets_the_other() {
    within(async {
        let (a, b) = (Echo::start("a").await, Echo::start("b").await);
        // Two workers, each with its own socket: the kernel keeps sending one
        // client's datagrams to the worker that holds its session.
        let f = Fulcrum::start(&config(2, &[a.quoted(), b.quoted()], ""));
        let dns = f.addr("dns");
        let mut picked = Vec::new();
        for client in 0..2 {
            let c = client_socket().await;
            let first = ask(&c, dns, "0").await;
            for i in 1..50 {
                let r = ask(&c, dns, &i.to_string()).await;
                assert_eq!(r.backend, first.backend, "client {client}, datagram {i}");
                assert_eq!(r.seen_from, first.seen_from, "client {client}");
            }
            picked.push(first.backend);
        }
        picked.sort();
        assert_eq!(picked, [a.name, b.name]);
        assert_eq!((a.peers(), b.peers()), (1, 1));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_session_expires_and_the_next_datagram_picks_again() {
    within(async {
        let (a, b) = (Echo::start("a").await, Echo::start("b").await);
        let f = Fulcrum::start(&config(
            1,
            &[a.quoted(), b.quoted()],
            "session_idle_timeout = \"300ms\"",
        ));
        let dns = f.addr("dns");
        let c = client_socket().await;
        let first = ask(&c, dns, "x").await;
        let again = ask(&c, dns, "y").await;
        assert_eq!(again.backend, first.backend);
        // The session ends by itself: logged once, with what it carried.
        let line = tokio::task::block_in_place(|| f.wait_access_log(1)).remove(0);
        assert_eq!(line["proto"], "UDP", "{line}");
        assert_eq!(line["listener"], "dns", "{line}");
        assert_eq!(line["pool"], "p", "{line}");
        assert_eq!(line["status"], 200, "{line}");
        assert_eq!(line["attempts"], 1, "{line}");
        let backend = if first.backend == "a" { a.addr } else { b.addr };
        assert_eq!(line["backend"], backend.to_string(), "{line}");
        assert_eq!(
            line["client"],
            c.local_addr().unwrap().to_string(),
            "{line}"
        );
        assert_eq!(line["bytes_in"], 2, "{line}");
        let out = format!("a {} x", first.seen_from).len() * 2;
        assert_eq!(line["bytes_out"], out, "{line}");
        assert!(line["duration_ms"].as_f64().unwrap() >= 300.0, "{line}");
        assert!(line["error"].is_null(), "{line}");
        // A new session, a new pick: round robin moves on.
        let next = ask(&c, dns, "z").await;
        assert_ne!(next.backend, first.backend);
        assert_ne!(next.seen_from, first.seen_from);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_backend_ends_its_session_and_the_next_goes_elsewhere() {
    within(async {
        // A port nobody listens on: datagrams to it draw ICMP port unreachable.
        let dead = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let dead_addr = dead.local_addr().unwrap();
        drop(dead);
        let b = Echo::start("b").await;
        let f = Fulcrum::start(&config(1, &[format!("\"{dead_addr}\""), b.quoted()], ""));
        let c = client_socket().await;
        // Round robin tries the dead backend first; the refusal ends that session
        // and the client's retry starts one on the live backend.
        let r = ask_with(&c, f.addr("dns"), "hello", 40, Duration::from_millis(250))
            .await
            .expect("no reply");
        assert_eq!(r.backend, "b");
        let refused = f.wait_status(502).await;
        assert_eq!(refused["backend"], dead_addr.to_string(), "{refused}");
        assert_eq!(refused["error"], "backend refused", "{refused}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_keep_an_unchanged_udp_listener_and_rebind_a_moved_one() {
    within(async {
        let (a, b) = (Echo::start("a").await, Echo::start("b").await);
        let f = Fulcrum::start(&config(2, &[a.quoted()], ""));
        let dns = f.addr("dns");
        let c = client_socket().await;
        let first = ask(&c, dns, "1").await;
        // Same address, another pool: the sockets and the session stay.
        let line = tokio::task::block_in_place(|| {
            f.reload(&config(2, &[b.quoted(), a.quoted()], "max_sessions = 10"))
        });
        assert!(line.contains("config reloaded"), "{line}");
        let kept = ask(&c, dns, "2").await;
        assert_eq!(
            (kept.backend.as_str(), kept.seen_from),
            ("a", first.seen_from)
        );
        // Moved: bound anew, served at once; the old address refuses.
        let skip = f.log.len();
        let moved_config = config(2, &[a.quoted()], "").replace("127.0.0.1:0", "127.0.0.2:0");
        let line = tokio::task::block_in_place(|| f.reload(&moved_config));
        assert!(line.contains("config reloaded"), "{line}");
        let line = f.wait_line("listener=dns", skip).await;
        let moved: SocketAddr = line
            .split_whitespace()
            .find_map(|t| t.strip_prefix("address="))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(moved.ip(), Ipv4Addr::new(127, 0, 0, 2));
        let r = ask(&c, moved, "3").await;
        assert_eq!((r.backend.as_str(), r.from), ("a", moved));
        let old = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        old.connect(dns).unwrap();
        old.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        until("the old address refuses", || {
            let _ = old.send(b"?");
            let mut buf = [0u8; 64];
            let refused = std::io::ErrorKind::ConnectionRefused;
            matches!(old.recv(&mut buf), Err(e) if e.kind() == refused)
        })
        .await;
        // The session on the old socket ended with it, and was logged.
        let ended = tokio::task::block_in_place(|| f.wait_access_log(1));
        assert!(
            ended
                .iter()
                .any(|l| l["error"] == "listener stopped" && l["proto"] == "UDP"),
            "{ended:?}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_hands_the_udp_sockets_over() {
    within(async {
        let a = Echo::start("a").await;
        let mut f = Fulcrum::start(&config(2, &[a.quoted()], ""));
        let dns = f.addr("dns");
        let c = client_socket().await;
        assert_eq!(ask(&c, dns, "before").await.backend, "a");
        let new_pid = crate::handover::upgrade(&f, f.child.id(), 0).await;
        let _reap = crate::handover::Reap(vec![new_pid]);
        // The old process ends its session and exits; the same address answers,
        // now from the new process.
        let old = tokio::task::block_in_place(|| f.wait_exit());
        assert!(old.success(), "{old:?}");
        let r = ask(&c, dns, "after").await;
        assert_eq!((r.backend.as_str(), r.from), ("a", dns));
        assert!(
            f.log.all().contains("took over the listening sockets"),
            "{}",
            f.log.all()
        );
    })
    .await;
}
