//! Reloads that add, move and remove listeners: only what changed is rebound, and a
//! port in use fails the reload with the old config serving.

use std::net::SocketAddr;

use crate::support::*;

fn config(b: &Backend, second: Option<&str>) -> String {
    let mut c = format!(
        "workers = 2\n\n[listeners.public]\naddress = \"127.0.0.1:0\"\n\n[[routes]]\npool = \"p\"\n\n[pools.p]\nbackends = [{}]\n",
        quoted(b)
    );
    if let Some(address) = second {
        c.push_str(&format!("\n[listeners.second]\naddress = \"{address}\"\n"));
    }
    c
}

/// The address of the `listening listener=second` line after `skip` lines.
async fn second_addr(f: &Fulcrum, skip: usize) -> SocketAddr {
    let line = f.wait_line("listener=second", skip).await;
    line.split_whitespace()
        .find_map(|t| t.strip_prefix("address="))
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_bind_only_what_changed() {
    within(async {
        let b = Backend::start("b").await;
        let f = Fulcrum::start(&config(&b, None));
        let c = client();
        let public = f.url("public");
        assert_eq!(get(&c, &format!("{public}/")).await.0, 200);

        // Added: bound by the reload, served at once.
        let skip = f.log.len();
        let line = tokio::task::block_in_place(|| f.reload(&config(&b, Some("127.0.0.1:0"))));
        assert!(line.contains("config reloaded"), "{line}");
        let first = second_addr(&f, skip).await;
        assert_eq!(get(&client(), &format!("http://{first}/")).await.0, 200);
        // The unchanged listener kept its socket and address.
        assert_eq!(get(&c, &format!("{public}/")).await.0, 200);

        // Moved: the new address serves, the old one is closed.
        let skip = f.log.len();
        let line = tokio::task::block_in_place(|| f.reload(&config(&b, Some("127.0.0.2:0"))));
        assert!(line.contains("config reloaded"), "{line}");
        let moved = second_addr(&f, skip).await;
        assert_eq!(moved.ip().to_string(), "127.0.0.2");
        assert_eq!(get(&client(), &format!("http://{moved}/")).await.0, 200);
        until("the old address is closed", || {
            std::net::TcpStream::connect(first).is_err()
        })
        .await;

        // A port in use: the reload fails and nothing changes.
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let busy = taken.local_addr().unwrap().to_string();
        let line = tokio::task::block_in_place(|| f.reload(&config(&b, Some(&busy))));
        assert!(line.contains("reload failed"), "{line}");
        assert!(
            f.log.all().contains("listeners.second: cannot bind"),
            "{}",
            f.log.all()
        );
        assert_eq!(get(&client(), &format!("http://{moved}/")).await.0, 200);

        // Removed: its address refuses new connections; public serves on.
        let line = tokio::task::block_in_place(|| f.reload(&config(&b, None)));
        assert!(line.contains("config reloaded"), "{line}");
        until("the removed listener is closed", || {
            std::net::TcpStream::connect(moved).is_err()
        })
        .await;
        assert_eq!(get(&c, &format!("{public}/")).await.0, 200);
    })
    .await;
}
