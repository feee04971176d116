//! Bodies: large uploads and downloads stream with bounded memory, chunked bodies
//! arrive intact, and `Expect: 100-continue` is honoured.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};

use crate::support::*;
use crate::support_stream::{body_client, counting, download, drain, TestBody};
use crate::support_wire::Wire;

/// Large enough that buffering it would show: 256 MiB.
const BIG: u64 = 256 << 20;

/// Fulcrum's resident memory must stay under this while a big body passes.
const RSS_LIMIT_KIB: u64 = 64 << 10;

/// Samples Fulcrum's RSS every 20 ms until dropped; reports the peak.
struct RssWatch {
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl RssWatch {
    fn start(f: &Fulcrum) -> Self {
        let pid = f.child.id();
        let (peak, stop) = (
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let (p, s) = (peak.clone(), stop.clone());
        let task = tokio::spawn(async move {
            while !s.load(Ordering::Relaxed) {
                if let Some(kib) = rss_of(pid) {
                    p.fetch_max(kib, Ordering::Relaxed);
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        });
        Self { peak, stop, task }
    }

    async fn peak(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap();
        self.peak.load(Ordering::Relaxed)
    }
}

fn rss_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn config(b: &Backend) -> String {
    one_pool("round_robin", &[quoted(b)], "")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_upload_streams_with_bounded_memory() {
    within(async {
        let b = Backend::streaming("count", false, counting()).await;
        let f = Fulcrum::start(&config(&b));
        let watch = RssWatch::start(&f);
        let req = Request::post(format!("{}/up", f.url("public")))
            .body(TestBody::repeat(BIG))
            .unwrap();
        let res = body_client(false).request(req).await.unwrap();
        assert_eq!(res.status(), 200);
        let body = res.into_body().collect().await.unwrap().to_bytes();
        let peak = watch.peak().await;
        assert_eq!(
            std::str::from_utf8(&body).unwrap(),
            BIG.to_string(),
            "the backend counted a different size"
        );
        assert!(
            peak > 0 && peak < RSS_LIMIT_KIB,
            "fulcrum's RSS peaked at {peak} KiB during a {BIG}-byte upload"
        );
        let line = f.wait_status(200).await;
        assert_eq!(line["bytes_in"], BIG, "{line}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_download_streams_with_bounded_memory() {
    within(async {
        let b = Backend::streaming("dl", false, download(BIG, false)).await;
        let f = Fulcrum::start(&config(&b));
        let watch = RssWatch::start(&f);
        let res = body_client(false)
            .get(format!("{}/down", f.url("public")).parse().unwrap())
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(
            res.headers().get("content-length").map(|v| v.as_bytes()),
            Some(BIG.to_string().as_bytes())
        );
        let (n, _) = drain(res.into_body()).await;
        let peak = watch.peak().await;
        assert_eq!(n, BIG);
        assert!(
            peak > 0 && peak < RSS_LIMIT_KIB,
            "fulcrum's RSS peaked at {peak} KiB during a {BIG}-byte download"
        );
        let line = f.wait_status(200).await;
        assert_eq!(line["bytes_out"], BIG, "{line}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_h2c_bodies_stream_with_bounded_memory() {
    within(async {
        let up = Backend::streaming("count", false, counting()).await;
        let down = Backend::streaming("dl", false, download(BIG, false)).await;
        let cfg = format!(
            "workers = 1\n[listeners.public]\naddress = \"127.0.0.1:0\"\n[[routes]]\npath = \"/up\"\npool = \"up\"\n[[routes]]\npool = \"down\"\n\
             [pools.up]\nbackends = [{}]\n[pools.down]\nbackends = [{}]\n",
            quoted(&up),
            quoted(&down)
        );
        let f = Fulcrum::start(&cfg);
        let c = body_client(true);
        let watch = RssWatch::start(&f);
        let req = Request::post(format!("{}/up", f.url("public"))).body(TestBody::repeat(BIG)).unwrap();
        let res = c.request(req).await.unwrap();
        assert_eq!(res.version(), http::Version::HTTP_2);
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(std::str::from_utf8(&body).unwrap(), BIG.to_string(), "the backend counted a different size");
        let res = c.get(format!("{}/down", f.url("public")).parse().unwrap()).await.unwrap();
        let (n, _) = drain(res.into_body()).await;
        assert_eq!(n, BIG);
        let peak = watch.peak().await;
        assert!(peak > 0 && peak < RSS_LIMIT_KIB, "fulcrum's RSS peaked at {peak} KiB during {BIG}-byte HTTP/2 transfers");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_upload_is_not_held_to_one_connection_window_per_round_trip() {
    within(async {
        let b = Backend::streaming("count", false, counting()).await;
        let f = Fulcrum::start(&config(&b));
        // hyper's default connector leaves Nagle on, as many clients do.
        let c = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .http2_only(true)
            .build_http::<TestBody>();
        let started = std::time::Instant::now();
        let req = Request::post(format!("{}/up", f.url("public")))
            .body(TestBody::repeat(32 << 20))
            .unwrap();
        let res = c.request(req).await.unwrap();
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(
            std::str::from_utf8(&body).unwrap(),
            (32u64 << 20).to_string()
        );
        // Unthrottled this takes well under a second even in a debug build.
        let took = started.elapsed();
        assert!(
            took < std::time::Duration::from_secs(8),
            "32 MiB over h2c took {took:?}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_download_without_length_passes_through() {
    within(async {
        let len = (3 << 20) + 17;
        let b = Backend::streaming("dl", false, download(len, true)).await;
        let f = Fulcrum::start(&config(&b));
        let mut w = Wire::connect(f.addr("public")).await;
        w.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await;
        let r = w.response(false).await;
        assert_eq!(
            r.header("transfer-encoding").as_deref(),
            Some("chunked"),
            "{}",
            r.head
        );
        assert_eq!(r.body.len() as u64, len);
        // Still usable afterwards: the chunked framing ended where it should.
        w.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await;
        assert_eq!(w.response(false).await.body.len() as u64, len);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_upload_arrives_intact() {
    within(async {
        let b = Backend::start("a").await;
        let f = Fulcrum::start(&config(&b));
        // 1 MiB + 3 of varied bytes, sent without a length (chunked).
        let data: Bytes = (0..(1u32 << 20) + 3)
            .map(|i| (i.wrapping_mul(31) >> 3) as u8)
            .collect::<Vec<u8>>()
            .into();
        let req = Request::post(format!("{}/up", f.url("public")))
            .body(TestBody::full(data.clone()).without_length())
            .unwrap();
        let res = body_client(false).request(req).await.unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(
            b.last_header("transfer-encoding").as_deref(),
            Some("chunked")
        );
        assert_eq!(b.last_body().len(), data.len());
        assert!(b.last_body() == data, "the chunked body changed on the way");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expect_100_continue_gets_100_then_the_response() {
    within(async {
        let b = Backend::with(
            "echo",
            false,
            Arc::new(|_name: &str, req: Request<Bytes>| Response::new(Full::new(req.into_body()))),
        )
        .await;
        let f = Fulcrum::start(&config(&b));
        let mut w = Wire::connect(f.addr("public")).await;
        w.send(
            b"POST /e HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\nExpect: 100-continue\r\n\r\n",
        )
        .await;
        // Nothing of the body is sent until the 100 comes.
        let interim = w.response(false).await;
        assert_eq!(interim.status, 100, "{interim:?}");
        w.send(b"hello world").await;
        let r = w.response(false).await;
        assert_eq!((r.status, &r.body[..]), (200, &b"hello world"[..]), "{r:?}");
        assert_eq!(
            b.last_header("expect"),
            None,
            "Expect was forwarded after the proxy answered it"
        );
        // And with curl, which waits for the 100 (up to 1 s) before sending.
        let url = format!("{}/curl", f.url("public"));
        let out = tokio::task::spawn_blocking(move || {
            std::process::Command::new("curl")
                .args([
                    "-sS",
                    "-v",
                    "--max-time",
                    "20",
                    "--expect100-timeout",
                    "15",
                    "-H",
                    "Expect: 100-continue",
                    "--data-binary",
                    "curl body",
                    &url,
                ])
                .output()
        })
        .await
        .unwrap();
        let Ok(out) = out else {
            eprintln!("curl not found; skipped the curl half");
            return;
        };
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert!(stderr.contains("HTTP/1.1 100 Continue"), "{stderr}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "curl body");
    })
    .await;
}
