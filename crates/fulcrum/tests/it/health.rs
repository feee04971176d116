//! Active health checks: a backend takes traffic only once a probe passed, leaves
//! after failing ones, the pool panics rather than refuse everything, and a returning
//! backend ramps up through slow start.

use std::collections::HashMap;

use crate::support::*;
use crate::support_health::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_backend_gets_no_traffic_until_a_probe_passes() {
    within(async {
        let a = Switchable::start("a").await;
        a.set_health(503);
        // No panic mode: a lone failing backend must not be routed to. fall = 3 so a
        // probe stalled on a busy machine cannot take `a` out again after it is up.
        let f = Fulcrum::start(&pool_of(
            &[&a],
            &format!("{}\npanic_threshold = 0", health_check("100ms", 3)),
        ));
        let c = client();
        let url = format!("{}/", f.url("public"));
        let (status, _, _) = get(&c, &url).await;
        assert_eq!(status, 503, "served before any probe passed");
        until("two failed probes", || a.probes() >= 2).await;
        let (status, _, _) = get(&c, &url).await;
        assert_eq!(status, 503, "served while failing its checks");
        assert_eq!(a.requests(), 0, "a request reached an unchecked backend");
        let skip = f.log.len();
        a.set_health(200);
        f.wait_state(a.addr, "up", skip).await;
        for i in 0..10 {
            let (status, backend, _) = get(&c, &url).await;
            assert_eq!((status, backend.as_str()), (200, "a"), "request {i}");
        }
        assert_eq!(a.requests(), 10);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_probe_goes_out_at_once() {
    within(async {
        let a = Switchable::start("a").await;
        // An hour between probes: only a first probe sent at start brings `a` up.
        let f = Fulcrum::start(&pool_of(
            &[&a],
            "health = { path = \"/healthz\", interval = \"1h\", timeout = \"2s\", jitter = \"10ms\" }",
        ));
        f.wait_state(a.addr, "up", 0).await;
        let (status, backend, _) = get(&client(), &format!("{}/", f.url("public"))).await;
        assert_eq!((status, backend.as_str()), (200, "a"));
        assert_eq!(a.probes(), 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_probes_take_a_backend_out() {
    within(async {
        let (a, b) = (Switchable::start("a").await, Switchable::start("b").await);
        // fall = 3 so a stalled probe of `b` on a busy machine does not take it out too.
        let f = Fulcrum::start(&pool_of(
            &[&a, &b],
            &format!("{}\npanic_threshold = 0", health_check("100ms", 3)),
        ));
        f.wait_state(a.addr, "up", 0).await;
        f.wait_state(b.addr, "up", 0).await;
        let c = client();
        let url = format!("{}/", f.url("public"));
        for _ in 0..10 {
            assert_eq!(get(&c, &url).await.0, 200);
        }
        assert!(
            a.requests() >= 4 && b.requests() >= 4,
            "round robin uses both"
        );
        // Only the check fails: traffic to `a` would still work, so any request that
        // reaches it after this is a routing fault.
        let skip = f.log.len();
        a.set_health(503);
        f.wait_state(a.addr, "down", skip).await;
        let before = a.requests();
        for i in 0..50 {
            let (status, backend, _) = get(&c, &url).await;
            assert_eq!((status, backend.as_str()), (200, "b"), "request {i}");
        }
        assert_eq!(a.requests(), before, "a down backend got requests");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_in_panic_routes_to_down_backends() {
    within(async {
        let (a, b) = (Switchable::start("a").await, Switchable::start("b").await);
        a.set_health(503);
        b.set_health(503);
        // Both down: 0% routable is under the 50% threshold, so the pool routes to
        // every checked backend rather than refuse everything.
        let f = Fulcrum::start(&pool_of(
            &[&a, &b],
            &format!("{}\npanic_threshold = 50", health_check("100ms", 2)),
        ));
        f.wait_state(a.addr, "down", 0).await;
        f.wait_state(b.addr, "down", 0).await;
        let c = client();
        for i in 0..20 {
            let (status, _, _) = get(&c, &format!("{}/", f.url("public"))).await;
            assert_eq!(status, 200, "request {i}");
        }
        assert!(
            a.requests() >= 5 && b.requests() >= 5,
            "a {} b {}",
            a.requests(),
            b.requests()
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_returning_backend_ramps_up_slowly() {
    within(async {
        let (a, b) = (Switchable::start("a").await, Switchable::start("b").await);
        // A 10 s ramp from 10%: the 200 requests below take well under that even on a
        // busy machine, so b's share stays far below half (about 5-15%) however slow
        // they are. Backends present at start do not ramp, so `a` is at full weight.
        // fall = 3: a stalled probe must not take `a` out and skew the shares.
        let f = Fulcrum::start(&pool_of(
            &[&a, &b],
            &format!(
                "{}\nslow_start = \"10s\"\npanic_threshold = 0",
                health_check("100ms", 3)
            ),
        ));
        f.wait_state(a.addr, "up", 0).await;
        f.wait_state(b.addr, "up", 0).await;
        let skip = f.log.len();
        b.set_health(503);
        let skip = f.wait_state(b.addr, "down", skip).await;
        b.set_health(200);
        f.wait_state(b.addr, "up", skip).await;
        let c = client();
        let mut count: HashMap<String, usize> = HashMap::new();
        for _ in 0..200 {
            let (status, backend, _) = get(&c, &format!("{}/", f.url("public"))).await;
            assert_eq!(status, 200);
            *count.entry(backend).or_default() += 1;
        }
        let to_b = count.get("b").copied().unwrap_or(0);
        assert!(
            to_b < 70,
            "b got {to_b} of 200 right after returning: {count:?}"
        );
        assert!(to_b >= 1, "b took no traffic after returning: {count:?}");
    })
    .await;
}

/// A real TLS server (`openssl s_server` with a fresh self-signed certificate) on
/// port 0; killed on drop.
struct TlsServer {
    child: std::process::Child,
    addr: std::net::SocketAddr,
    _dir: TempDir,
}

impl TlsServer {
    fn start() -> Self {
        use std::io::BufRead;
        let dir = TempDir::new();
        let (cert, key) = (dir.path("cert.pem"), dir.path("key.pem"));
        let made = std::process::Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ])
            .args(["-nodes", "-days", "1", "-subj", "/CN=localhost", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(made.success(), "openssl req failed");
        let mut child = std::process::Command::new("openssl")
            .args(["s_server", "-accept", "127.0.0.1:0", "-www", "-cert"])
            .arg(&cert)
            .arg("-key")
            .arg(&key)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let out = std::io::BufReader::new(child.stdout.take().unwrap());
        // s_server announces its port once it listens: `ACCEPT 127.0.0.1:PORT`.
        let addr = out
            .lines()
            .map_while(Result::ok)
            .find_map(|l| l.strip_prefix("ACCEPT ").map(|a| a.trim().parse().unwrap()))
            .expect("s_server did not announce its port");
        Self {
            child,
            addr,
            _dir: dir,
        }
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_probe_passes_a_tls_backend_and_fails_a_plain_one() {
    within(async {
        let tls = tokio::task::spawn_blocking(TlsServer::start).await.unwrap();
        let plain = Switchable::start("plain").await;
        let f = Fulcrum::start(&one_pool(
            "round_robin",
            &[format!("\"{}\"", tls.addr), plain.quoted()],
            "health = { type = \"tls\", interval = \"100ms\", timeout = \"100ms\", fall = 1 }",
        ));
        f.wait_state(tls.addr, "up", 0).await;
        f.wait_state(plain.addr, "down", 0).await;
    })
    .await;
}
