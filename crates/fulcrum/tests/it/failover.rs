//! Backends going away under load: killed, drained by a reload, replaced one by one
//! in a rolling deploy. Idempotent requests must not fail in any of these.

use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::support::*;
use crate::support_health::*;

/// Retries for every failure a going backend can cause. A budget of 100% keeps the
/// budget out of these tests (`retries::the_retry_budget_caps_retries` covers it).
const RETRIES: &str = "retries = { attempts = 2, on = [\"connect-failure\", \"reset\", \"timeout\", \"503\", \"5xx\"], budget = \"100%\", backoff = \"10ms\", max_backoff = \"50ms\" }";

fn url(f: &Fulcrum) -> String {
    format!("{}/", f.url("public"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_backend_under_load_fails_no_request() {
    within(async {
        let mut b = Switchable::start_n(3).await;
        let f = Fulcrum::start(&pool_of(
            &b.iter().collect::<Vec<_>>(),
            &format!("{}\n{RETRIES}", health_check("100ms", 2)),
        ));
        for x in &b {
            f.wait_state(x.addr, "up", 0).await;
        }
        let load = Load::start(url(&f), 4);
        for x in &b {
            load.wait_served(&x.name, 20).await;
        }
        let skip = f.log.len();
        b[1].kill().await;
        f.wait_state(b[1].addr, "down", skip).await;
        let at_down = load.tally().total;
        load.wait_total(at_down + 100).await;
        let t = load.tally();
        assert_eq!(t.failed(), 0, "failures while b went down: {t:?}");

        let skip = f.log.len();
        b[1].restart();
        f.wait_state(b[1].addr, "up", skip).await;
        let served = load.tally().served_by("b");
        load.wait_served("b", served + 20).await;
        let t = load.stop().await;
        assert_eq!(t.failed(), 0, "{t:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_deploy_fails_no_request() {
    within(async {
        let mut b = Switchable::start_n(3).await;
        let addrs: Vec<String> = b.iter().map(|x| x.quoted()).collect();
        let config = |skip: Option<usize>| {
            let list: Vec<String> = (0..3)
                .filter(|i| Some(*i) != skip)
                .map(|i| addrs[i].clone())
                .collect();
            one_pool(
                "round_robin",
                &list,
                &format!(
                    "{}\nslow_start = \"1s\"\ndrain_timeout = \"10s\"\n{RETRIES}",
                    health_check("100ms", 2)
                ),
            )
        };
        let f = Fulcrum::start(&config(None));
        for x in &b {
            f.wait_state(x.addr, "up", 0).await;
        }
        let load = Load::start(url(&f), 4);
        for (i, x) in b.iter_mut().enumerate() {
            let skip = f.log.len();
            f.reload_ok(&config(Some(i)));
            f.wait_event("backend released", x.addr, skip).await;
            x.kill().await;
            x.restart();
            let skip = f.log.len();
            f.reload_ok(&config(None));
            f.wait_state(x.addr, "up", skip).await;
            // Back in service: it takes requests again (slowly at first).
            let served = load.tally().served_by(&x.name);
            load.wait_served(&x.name, served + 20).await;
        }
        let t = load.stop().await;
        assert_eq!(t.failed(), 0, "{t:?}");
        assert!(t.total >= 120, "{t:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_backend_finishes_its_long_response() {
    within(async {
        let (a, b) = (Switchable::start("a").await, Switchable::start("b").await);
        let extra = "drain_timeout = \"30s\"";
        let f = Fulcrum::start(&pool_of(&[&a], extra));
        // A long response from `a`: `start` at once, `end` once released. Waits for
        // the backend's side only: whether the head reaches the client before the
        // body ends is a streaming question, not a draining one.
        let long = tokio::spawn({
            let url = format!("{}/stream-hold", f.url("public"));
            async move { send(&client(), "GET", &url, "").await }
        });
        until("the long response is held", || a.held() == 1).await;

        let skip = f.log.len();
        f.reload_ok(&pool_of(&[&b], extra));
        f.wait_state(a.addr, "draining", skip).await;
        let c = client();
        for i in 0..10 {
            let (status, backend, _) = get(&c, &url(&f)).await;
            assert_eq!((status, backend.as_str()), (200, "b"), "request {i}");
        }
        assert_eq!(a.requests(), 1, "a draining backend got a new request");
        assert_eq!(
            f.count_events("backend released", a.addr),
            0,
            "released with a response in flight:\n{}",
            f.log.all()
        );

        a.release();
        let r = long.await.unwrap();
        assert_eq!((r.status, r.backend.as_str()), (200, "a"), "{r:?}");
        assert_eq!(
            r.body,
            Bytes::from_static(b"start\nend\n"),
            "the long response was cut"
        );
        f.wait_event("backend released", a.addr, skip).await;
    })
    .await;
}

/// Measures, rather than checks readiness: so it paces itself with sleeps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a minute of load; run with --release ... flap -- --ignored --nocapture"]
async fn flap_one_of_three_for_a_minute() {
    let run = async {
        let mut b = Switchable::start_n(3).await;
        // The default budget here: this measures the configuration people would run.
        let f = Fulcrum::start(&pool_of(
            &b.iter().collect::<Vec<_>>(),
            &format!(
                "{}\nretries = {{ attempts = 2, on = [\"connect-failure\", \"reset\", \"timeout\", \"503\"] }}",
                health_check("100ms", 2)
            ),
        ));
        for x in &b {
            f.wait_state(x.addr, "up", 0).await;
        }
        let load = Load::start(url(&f), 4);
        let started = Instant::now();
        let mut flaps = 0;
        while started.elapsed() < Duration::from_secs(60) {
            let i = flaps % 3;
            tokio::time::sleep(Duration::from_millis(1500)).await;
            b[i].kill().await;
            tokio::time::sleep(Duration::from_millis(1500)).await;
            b[i].restart();
            flaps += 1;
        }
        let t = load.stop().await;
        let secs = started.elapsed().as_secs_f64();
        println!(
            "flap: {flaps} kills in {secs:.1} s; {} requests ({:.0}/s), {} failed ({} errors)",
            t.total,
            t.total as f64 / secs,
            t.failed(),
            t.errors
        );
        println!("flap: by status {:?}", t.by_status);
        println!("flap: by backend {:?}", t.by_backend);
        for s in &t.samples {
            println!("flap: failure: {s}");
        }
        assert_eq!(t.failed(), 0, "{t:?}");
    };
    tokio::time::timeout(Duration::from_secs(180), run)
        .await
        .expect("test timed out");
}

/// A response that sends its head and a first chunk, then pauses (server-sent
/// events, long polling), reaches the client at once, not when the next chunk comes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_stream_reaches_the_client_before_it_resumes() {
    within(async {
        let a = Switchable::start("a").await;
        let f = Fulcrum::start(&pool_of(&[&a], ""));
        let mut io = tokio::net::TcpStream::connect(f.addr("public"))
            .await
            .unwrap();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        io.write_all(b"GET /stream-hold HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        // The backend holds `end` until released: `start` must arrive before that.
        while !got.windows(6).any(|w| w == b"start\n") {
            let n = io.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..n]);
        }
        assert!(
            got.starts_with(b"HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&got)
        );
        assert_eq!(a.held(), 1, "the backend already finished");
        a.release();
        while !got.windows(5).any(|w| w == b"end\n\r") && !got.ends_with(b"0\r\n\r\n") {
            let n = io.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..n]);
        }
    })
    .await;
}
