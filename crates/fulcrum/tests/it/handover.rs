//! Zero-downtime binary upgrade: SIGUSR2 starts the binary again, which takes the
//! listening sockets over; the old process finishes what it has in flight, a held
//! response and an open WebSocket included.

use std::process::Command;

use bytes::Bytes;

use crate::support::*;
use crate::support_health::*;

/// Kills a process by pid when dropped (the processes started by an upgrade are
/// not the test's children).
pub struct Reap(pub Vec<u32>);

impl Drop for Reap {
    fn drop(&mut self) {
        for pid in &self.0 {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
        }
    }
}

/// Upgrades process `pid`, whose log is `f`'s, and returns the new process's pid
/// from the first line past `skip` that says it serves.
pub async fn upgrade(f: &Fulcrum, pid: u32, skip: usize) -> u32 {
    usr2(pid);
    let line = f.wait_line("upgrade: the new process serves", skip).await;
    line.split_whitespace()
        .find_map(|t| t.strip_prefix("new_pid="))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no new_pid in {line}"))
}

fn usr2(pid: u32) {
    let status = Command::new(bin())
        .args(["upgrade", "--pid", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "fulcrum upgrade failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_upgrades_under_load_refuse_nothing_and_a_long_stream_completes() {
    within(async {
        let a = Switchable::start("a").await;
        // Health-checked: each new process must not take over before its first
        // probes answered (its backends start unknown).
        let checks = "health = { path = \"/healthz\", interval = \"1s\", timeout = \"1s\" }";
        let ws = crate::websocket::Echo::start().await;
        let config = pool_of(&[&a], checks)
            .replace("workers = 1", "workers = 2")
            .replace(
                "[[routes]]\npool = \"p\"",
                "[[routes]]\npath_prefix = \"/ws\"\npool = \"ws\"\n\n[[routes]]\npool = \"p\"",
            );
        let config = format!("{config}\n[pools.ws]\nbackends = [\"{}\"]\n", ws.addr);
        let mut f = Fulcrum::start(&format!("{config}\n[admin]\naddress = \"127.0.0.1:0\"\n"));
        let admin_line = f.wait_line("admin listening", 0).await;
        let admin = admin_line
            .split_whitespace()
            .find_map(|t| t.strip_prefix("address="))
            .unwrap()
            .to_owned();
        f.wait_state(a.addr, "up", 0).await;
        let mut reap = Reap(Vec::new());
        let load = Load::start(format!("{}/", f.url("public")), 4);
        load.wait_total(50).await;
        // Opened on the first process; it must finish there after three upgrades.
        let long = tokio::spawn({
            let url = format!("{}/stream-hold", f.url("public"));
            async move { send(&client(), "GET", &url, "").await }
        });
        until("the long response is held", || a.held() == 1).await;
        // And a WebSocket, two-way, on the first process.
        let (mut sock, _) =
            tokio_tungstenite::connect_async(format!("ws://{}/ws", f.addr("public")))
                .await
                .unwrap();
        let hello = tokio_tungstenite::tungstenite::Message::text("before the upgrades");
        assert_eq!(
            crate::websocket::echo(&mut sock, hello.clone()).await,
            hello
        );
        let mut pid = f.child.id();
        let mut skip = 0;
        for round in 0..3 {
            let new_pid = upgrade(&f, pid, skip).await;
            reap.0.push(new_pid);
            skip = f.log.len();
            pid = new_pid;
            let before = load.tally().total;
            load.wait_total(before + 50).await;
            assert_eq!(
                load.tally().failed(),
                0,
                "round {round}: {:?}",
                load.tally()
            );
        }
        // The WebSocket still talks to the first process, both ways, then closes.
        let after = tokio_tungstenite::tungstenite::Message::text("after three upgrades");
        assert_eq!(
            crate::websocket::echo(&mut sock, after.clone()).await,
            after
        );
        {
            use futures_util::StreamExt;
            sock.close(None).await.unwrap();
            while let Some(Ok(_)) = sock.next().await {}
        }
        drop(sock);
        a.release();
        let r = long.await.unwrap();
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(
            r.body,
            Bytes::from_static(b"start\nend\n"),
            "the stream was cut"
        );
        // Every old process winds down and exits while the load goes on.
        let first = tokio::task::block_in_place(|| f.wait_exit());
        assert!(first.success(), "{first:?}");
        for old in &reap.0[..2] {
            let proc = format!("/proc/{old}");
            until("an old process exits", || {
                std::fs::read_to_string(format!("{proc}/stat"))
                    .map_or(true, |s| s.split_whitespace().nth(2) == Some("Z"))
            })
            .await;
        }
        let before = load.tally().total;
        load.wait_total(before + 50).await;
        let tally = load.stop().await;
        println!("requests {}, failed {}", tally.total, tally.failed());
        assert_eq!(tally.failed(), 0, "{tally:?}");
        // The newest process serves on the same addresses, the admin one included.
        let (status, backend, _) = get(&client(), &format!("{}/", f.url("public"))).await;
        assert_eq!((status, backend.as_str()), (200, "a"));
        let (status, _, _) = get(&client(), &format!("http://{admin}/api/status")).await;
        assert_eq!(status, 200);
    })
    .await;
}
