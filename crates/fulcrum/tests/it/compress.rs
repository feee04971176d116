//! Compression through the real proxy, decoded by curl (its own zlib, brotli and
//! zstd libraries): each coding over HTTP/1.1 and HTTP/2, q-values, the responses
//! that must pass untouched (small, already encoded, a range, an image,
//! no-transform), and a compressed event stream whose events reach the client as
//! they are written.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use tokio::sync::mpsc;

use crate::support::*;
use crate::support_health::ChannelBody;

/// A 20 KB JSON document, as an API would answer.
fn json_doc() -> Vec<u8> {
    let items: Vec<String> = (0..200)
        .map(|i| {
            format!(
                "{{\"id\":{i},\"name\":\"item {i}\",\"tags\":[\"a\",\"b\"],\"price\":{}.99}}",
                i % 97
            )
        })
        .collect();
    format!("{{\"items\":[{}]}}", items.join(",")).into_bytes()
}

async fn app() -> Backend {
    Backend::with(
        "app",
        false,
        Arc::new(|_name: &str, req: hyper::Request<Bytes>| {
            let b = hyper::Response::builder();
            let (b, body): (_, Vec<u8>) = match req.uri().path() {
                "/json" => (
                    b.header("content-type", "application/json")
                        .header("etag", "\"v1\""),
                    json_doc(),
                ),
                "/small" => (
                    b.header("content-type", "application/json"),
                    b"{\"ok\":true}".to_vec(),
                ),
                "/png" => (b.header("content-type", "image/png"), vec![7u8; 20_000]),
                "/encoded" => (
                    b.header("content-type", "text/plain")
                        .header("content-encoding", "identity"),
                    vec![b'e'; 20_000],
                ),
                "/range" => (
                    b.status(206)
                        .header("content-type", "text/plain")
                        .header("content-range", "bytes 0-19999/40000"),
                    vec![b'r'; 20_000],
                ),
                "/nt" => (
                    b.header("content-type", "text/plain")
                        .header("cache-control", "public, no-transform"),
                    vec![b'n'; 20_000],
                ),
                _ => (b.status(404), Vec::new()),
            };
            b.body(Full::new(Bytes::from(body))).unwrap()
        }),
    )
    .await
}

fn config(app: &Backend) -> String {
    format!(
        r#"workers = 1

[listeners.public]
address = "127.0.0.1:0"

[[routes]]
compress = ["zstd", "br", "gzip"]
pool = "app"

[pools.app]
backends = [{}]
"#,
        quoted(app)
    )
}

/// What curl got: status, response fields (lowercase names), decoded body, and
/// the bytes that crossed the wire.
struct Got {
    status: u16,
    fields: Vec<(String, String)>,
    body: Vec<u8>,
    wire: u64,
}

impl Got {
    fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// GETs `url` with curl, `accept` as Accept-Encoding, decoding what it knows.
async fn curl(url: String, accept: &'static str, h2: bool) -> Got {
    tokio::task::spawn_blocking(move || {
        let dir = TempDir::new();
        let (head, body) = (dir.path("head"), dir.path("body"));
        let mut cmd = Command::new("curl");
        cmd.args([
            "-sS",
            "--compressed",
            "--max-time",
            "30",
            "-w",
            "%{size_download}",
        ])
        .args(["-H", &format!("Accept-Encoding: {accept}")])
        .arg("-D")
        .arg(&head)
        .arg("-o")
        .arg(&body);
        if h2 {
            cmd.arg("--http2-prior-knowledge");
        }
        let out = cmd.arg(&url).output().expect("curl");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let head = std::fs::read_to_string(&head).unwrap();
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let fields = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        Got {
            status,
            fields,
            body: std::fs::read(&body).unwrap(),
            wire: String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse()
                .unwrap_or(0),
        }
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_coding_is_negotiated_and_decodes_to_the_original() {
    within(async {
        let app = app().await;
        let f = Fulcrum::start(&config(&app));
        let url = format!("{}/json", f.url("public"));
        let doc = json_doc();
        for h2 in [false, true] {
            for (accept, coding) in [
                ("gzip, deflate, br, zstd", "zstd"),
                ("gzip, br", "br"),
                ("gzip", "gzip"),
                ("br;q=0.5, gzip;q=1", "gzip"),
                ("zstd;q=0, br;q=0.1", "br"),
            ] {
                let got = curl(url.clone(), accept, h2).await;
                let what = format!("h2={h2} {accept}");
                assert_eq!(got.status, 200, "{what}");
                assert_eq!(got.field("content-encoding"), Some(coding), "{what}");
                assert_eq!(got.body, doc, "{what}: decoded body differs");
                assert!(
                    got.wire < doc.len() as u64 / 3,
                    "{what}: {} bytes on the wire",
                    got.wire
                );
                assert_eq!(got.field("vary"), Some("Accept-Encoding"), "{what}");
                assert_eq!(got.field("etag"), Some("W/\"v1\""), "{what}");
                assert_eq!(got.field("content-length"), None, "{what}");
            }
            // No coding the route offers: the body as the backend sent it.
            let got = curl(url.clone(), "identity", h2).await;
            assert_eq!(got.field("content-encoding"), None);
            assert_eq!((got.body.len(), got.wire), (doc.len(), doc.len() as u64));
            assert_eq!(got.field("etag"), Some("\"v1\""));
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_that_must_not_be_compressed_pass_untouched() {
    within(async {
        let app = app().await;
        let f = Fulcrum::start(&config(&app));
        for h2 in [false, true] {
            for (path, status) in [
                ("/small", 200),
                ("/png", 200),
                ("/encoded", 200),
                ("/range", 206),
                ("/nt", 200),
            ] {
                let got = curl(format!("{}{path}", f.url("public")), "gzip, br, zstd", h2).await;
                let what = format!("h2={h2} {path}");
                assert_eq!(got.status, status, "{what}");
                let ce = got.field("content-encoding");
                assert!(ce.is_none() || ce == Some("identity"), "{what}: {ce:?}");
                assert_eq!(got.wire, got.body.len() as u64, "{what}");
            }
        }
    })
    .await;
}

/// An event stream fed by hand: each event, compressed, must be decodable by the
/// client before the next is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compressed_event_stream_is_flushed_per_event() {
    within(async {
        let (give, mut streams) = mpsc::unbounded_channel::<mpsc::Sender<Bytes>>();
        let give = Arc::new(give);
        let events = Backend::streaming(
            "events",
            false,
            Arc::new(move |_seen, _req| {
                let (tx, rx) = mpsc::channel(16);
                let _ = give.send(tx);
                Box::pin(async move {
                    hyper::Response::builder()
                        .header("content-type", "text/event-stream")
                        .body(ChannelBody(rx).boxed())
                        .unwrap()
                })
            }),
        )
        .await;
        let f = Fulcrum::start(&config(&events).replace(
            "compress = [\"zstd\", \"br\", \"gzip\"]",
            "compress = [\"gzip\"]",
        ));
        for (proto, c) in [("h1", client()), ("h2", h2_client())] {
            let req = hyper::Request::get(format!("{}/stream", f.url("public")))
                .header("accept-encoding", "gzip")
                .body(Full::new(Bytes::new()))
                .unwrap();
            let res = c.request(req).await.unwrap();
            assert_eq!(res.headers()["content-encoding"], "gzip", "{proto}");
            let tx = streams.recv().await.unwrap();
            let mut body = res.into_body();
            let mut decoder = flate2::write::GzDecoder::new(Vec::new());
            for i in 0..3 {
                let event = format!("data: event {i}\n\n");
                tx.send(Bytes::from(event.clone())).await.unwrap();
                let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
                loop {
                    let seen = String::from_utf8_lossy(decoder.get_ref()).into_owned();
                    if seen.contains(&event) {
                        break;
                    }
                    let frame = tokio::time::timeout_at(deadline, body.frame())
                        .await
                        .unwrap_or_else(|_| {
                            panic!("{proto}: event {i} held back; client has {seen:?}")
                        })
                        .unwrap()
                        .unwrap();
                    if let Ok(data) = frame.into_data() {
                        std::io::Write::write_all(&mut decoder, &data).unwrap();
                        std::io::Write::flush(&mut decoder).unwrap();
                    }
                }
            }
            drop(tx);
            while let Some(frame) = body.frame().await {
                if let Ok(data) = frame.unwrap().into_data() {
                    std::io::Write::write_all(&mut decoder, &data).unwrap();
                }
            }
            let all = decoder.finish().unwrap();
            assert_eq!(
                String::from_utf8(all).unwrap(),
                "data: event 0\n\ndata: event 1\n\ndata: event 2\n\n",
                "{proto}"
            );
        }
    })
    .await;
}
