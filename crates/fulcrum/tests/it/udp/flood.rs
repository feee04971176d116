//! A flood of source addresses against a udp listener's `max_sessions`.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{admin, ask, client_socket, config, metric, Echo};
use crate::support::*;

/// [`ask_with`] on a blocking socket: `(backend, session socket it saw)`.
fn ask_blocking(
    s: &std::net::UdpSocket,
    to: SocketAddr,
    msg: &str,
) -> Option<(String, SocketAddr)> {
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut buf = [0u8; 512];
    for _ in 0..10 {
        s.send_to(msg.as_bytes(), to).unwrap();
        let Ok(n) = s.recv(&mut buf) else { continue };
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        let mut parts = text.splitn(3, ' ');
        let backend = parts.next().unwrap().to_owned();
        return Some((backend, parts.next().unwrap().parse().unwrap()));
    }
    None
}

/// 100,000 source addresses (127.1.0.0 onwards: Linux routes all of 127/8 to
/// the loopback interface), one datagram each, against max_sessions = 1000 on two
/// workers, while one real client keeps talking.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_source_addresses_is_bounded_by_max_sessions() {
    const SOURCES: usize = 100_000;
    within(async {
        let b = Echo::start("b").await;
        let f = Fulcrum::start(&format!(
            "{}\n[access_log]\nenabled = false\n",
            config(2, &[b.quoted()], "max_sessions = 1000")
        ));
        let admin = admin(&f).await;
        let dns = f.addr("dns");
        let legit = client_socket().await;
        let first = ask(&legit, dns, "hello").await;
        let before = f.rss_kib();
        // The open-sessions gauge, sampled all along.
        let most = Arc::new(AtomicU64::new(0));
        let done = Arc::new(AtomicUsize::new(0));
        let sampler = {
            let (admin, most, done) = (admin.clone(), most.clone(), done.clone());
            tokio::spawn(async move {
                while done.load(Ordering::Relaxed) == 0 {
                    let open = metric(&admin, "fulcrum_listener_open_sessions{listener=\"dns\"}")
                        .await
                        .unwrap();
                    most.fetch_max(open, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            })
        };
        let legit = legit.into_std().unwrap();
        legit.set_nonblocking(false).unwrap();
        let started = Instant::now();
        // One blocking sender: bind, send, close per source. It keeps at most
        // WINDOW datagrams ahead of what the backend got, so no socket buffer
        // overflows; a datagram lost anyway is given up on after a second.
        const WINDOW: usize = 128;
        let lost = tokio::task::block_in_place(|| {
            // Waits until the backend has all but `lost` of the first `upto` flood
            // datagrams; after a second without progress the rest count as lost.
            let catch_up = |upto: usize, lost: &mut usize| {
                let mut seen = (b.floods.load(Ordering::Relaxed), Instant::now());
                while seen.0 + *lost < upto {
                    std::thread::sleep(Duration::from_micros(200));
                    let now = b.floods.load(Ordering::Relaxed);
                    if now != seen.0 {
                        seen = (now, Instant::now());
                    } else if seen.1.elapsed() > Duration::from_secs(1) {
                        *lost = upto - now;
                    }
                }
            };
            let mut lost = 0;
            for i in 0..SOURCES {
                if i % 32 == 0 && i > WINDOW {
                    catch_up(i - WINDOW, &mut lost);
                }
                let ip = Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 1, 0, 0)) + i as u32);
                let s = std::net::UdpSocket::bind((ip, 0)).unwrap();
                s.send_to(b"flood", dns).unwrap();
                // Every 100 new sources the real client talks again: its session
                // is never the idlest, and keeps its backend socket.
                if i % 100 == 0 {
                    let r = ask_blocking(&legit, dns, "still here");
                    assert_eq!(r.map(|r| r.1), Some(first.seen_from), "at source {i}");
                }
            }
            catch_up(SOURCES, &mut lost);
            lost
        });
        let took = started.elapsed();
        done.store(1, Ordering::Relaxed);
        sampler.await.unwrap();
        let after = f.rss_kib();
        let most = most.load(Ordering::Relaxed);
        let started_total = metric(&admin, "fulcrum_listener_sessions_total{listener=\"dns\"}")
            .await
            .unwrap();
        let evicted = metric(
            &admin,
            "fulcrum_listener_session_evictions_total{listener=\"dns\"}",
        )
        .await
        .unwrap();
        let open = metric(&admin, "fulcrum_listener_open_sessions{listener=\"dns\"}")
            .await
            .unwrap();
        eprintln!(
            "udp flood: {SOURCES} sources in {took:?} ({lost} datagrams lost); sessions started \
             {started_total}, evicted {evicted}, open now {open}, most open seen {most}; RSS \
             {before} KiB before, {after} KiB after"
        );
        assert!(most <= 1000 && open <= 1000, "most {most}, open {open}");
        // Nearly every source made a session (a lost datagram made none).
        assert!(lost < SOURCES / 100, "{lost} lost");
        let sources = (SOURCES - lost) as u64;
        assert!(started_total > sources, "{started_total}");
        assert!(evicted >= sources - 1000, "{evicted}");
        // Held sessions cost memory up to max_sessions, not per source seen: 100,000
        // sessions kept would be well over 100 MB (and as many descriptors).
        assert!(
            after < before + 32 * 1024,
            "RSS {before} KiB -> {after} KiB"
        );
    })
    .await;
}
