//! The access log as operators run it: rotation by SIGUSR1 (every request in
//! exactly one file), the combined format read by real parsers' rules, request IDs
//! and trace context through a real backend, and a stuck pipe that never stalls a
//! worker.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::support::*;
use crate::support_wire::Wire;

fn config(listener_extra: &str, backend: &Backend, extra: &str) -> String {
    format!(
        "workers = 2\n{extra}\n[listeners.public]\naddress = \"127.0.0.1:0\"\n{listener_extra}\n\n[[routes]]\nname = \"all\"\npool = \"p\"\n\n[pools.p]\nbackends = [{}]\n",
        quoted(backend)
    )
}

/// Sends `GET path` on `w` and expects 200.
async fn ok(w: &mut Wire, path: &str) -> crate::support_wire::Reply {
    w.send(format!("GET {path} HTTP/1.1\r\nHost: a\r\nUser-Agent: it/1 \"q\"\r\n\r\n").as_bytes())
        .await;
    let r = w.response(false).await;
    assert_eq!(r.status, 200, "{r:?}");
    r
}

fn lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usr1_reopens_and_every_request_is_in_exactly_one_file() {
    within(async {
        let b = Backend::start("a").await;
        let f = Fulcrum::start(&config("", &b, ""));
        let log = f.dir.path("access.log");
        let moved = f.dir.path("access.log.1");
        let mut w = Wire::connect(f.addr("public")).await;
        for i in 0..100 {
            ok(&mut w, &format!("/before/{i}")).await;
        }
        std::fs::rename(&log, &moved).unwrap();
        let skip = f.log.len();
        f.signal_now(10);
        f.wait_line("access log reopened", skip).await;
        for i in 0..100 {
            ok(&mut w, &format!("/after/{i}")).await;
        }
        // Lines buffered when the file moved may land in either file; none twice,
        // none lost.
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut seen: HashMap<String, usize>;
        loop {
            seen = HashMap::new();
            for line in lines(&log).into_iter().chain(lines(&moved)) {
                let v: serde_json::Value = serde_json::from_str(&line).expect(&line);
                *seen
                    .entry(v["path"].as_str().unwrap().to_owned())
                    .or_default() += 1;
            }
            if seen.len() >= 200 || Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(seen.len(), 200, "{seen:?}");
        assert!(seen.values().all(|n| *n == 1), "{seen:?}");
        let after_in_new = lines(&log).iter().filter(|l| l.contains("/after/")).count();
        assert!(after_in_new > 0, "the reopened file got nothing");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn combined_format_for_log_parsers() {
    within(async {
        let b = Backend::start("a").await;
        let log = TempDir::new();
        let path = log.path("combined.log");
        let extra = format!(
            "[access_log]\nformat = \"combined\"\npath = {:?}\n",
            path.display().to_string()
        );
        let f = Fulcrum::start(&config("", &b, &extra));
        let mut w = Wire::connect(f.addr("public")).await;
        w.send(b"GET /x?q=1 HTTP/1.1\r\nHost: a\r\nReferer: http://r.test/\r\nUser-Agent: it/1 \"q\"\r\n\r\n")
            .await;
        assert_eq!(w.response(false).await.status, 200);
        let line = loop {
            if let Some(l) = lines(&path).pop() {
                break l;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        // host ident user [date] "request" status bytes "referer" "agent"
        let (client, rest) = line.split_once(" - - [").expect(&line);
        assert_eq!(client, "127.0.0.1");
        let (date, rest) = rest.split_once("] ").expect(&line);
        assert_eq!(date.len(), 26, "{date}");
        assert!(date.ends_with(" +0000"), "{date}");
        assert_eq!(
            rest,
            "\"GET /x?q=1 HTTP/1.1\" 200 1 \"http://r.test/\" \"it/1 \\x22q\\x22\"",
            "{line}"
        );
        drop(f);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_ids_and_trace_context_reach_backend_client_and_log() {
    within(async {
        let b = Backend::start("a").await;
        let cfg = config(
            "request_id = { header = \"X-Request-ID\" }",
            &b,
            "[tracing]\n",
        );
        let f = Fulcrum::start(&cfg);
        let mut w = Wire::connect(f.addr("public")).await;
        // A client's own ID is replaced when incoming ones are not trusted.
        w.send(b"GET /one HTTP/1.1\r\nHost: a\r\nX-Request-ID: spoofed\r\nx_request_id: also\r\n\r\n")
            .await;
        let r = w.response(false).await;
        assert_eq!(r.status, 200);
        let sent = b.last_header("x-request-id").expect("the backend got an ID");
        assert_eq!(sent.len(), 32, "{sent}");
        assert!(sent.bytes().all(|c| c.is_ascii_hexdigit()), "{sent}");
        assert_eq!(r.header("x-request-id").as_deref(), Some(sent.as_str()));
        // A trace was started: the backend's parent is Fulcrum's span.
        let tp = b.last_header("traceparent").expect("a traceparent");
        let parts: Vec<&str> = tp.split('-').collect();
        assert_eq!((parts.len(), parts[0]), (4, "00"), "{tp}");
        // One that comes in is continued: same trace, Fulcrum's span as parent.
        let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        w.send(format!("GET /two HTTP/1.1\r\nHost: a\r\ntraceparent: {incoming}\r\ntracestate: k=v\r\n\r\n").as_bytes())
            .await;
        assert_eq!(w.response(false).await.status, 200);
        let tp = b.last_header("traceparent").unwrap();
        assert!(tp.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"), "{tp}");
        assert!(!tp.contains("00f067aa0ba902b7"), "the parent is Fulcrum's span: {tp}");
        assert!(tp.ends_with("-01"), "the caller's sampling stands: {tp}");
        assert_eq!(b.last_header("tracestate").as_deref(), Some("k=v"));
        let log = f.wait_access_log(2);
        let two = log.iter().find(|l| l["path"] == "/two").unwrap();
        assert_eq!(two["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(two["route"], "all");
        let one = log.iter().find(|l| l["path"] == "/one").unwrap();
        assert_eq!(one["request_id"], sent.as_str());
        assert!(one["upstream_connect_ms"].is_number(), "{one}");
        assert_eq!(one["retries"], 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trusted_request_ids_are_kept_over_http2() {
    within(async {
        let b = Backend::start("a").await;
        let cfg = config(
            "request_id = { header = \"x-correlation-id\", trust_incoming = true }",
            &b,
            "",
        );
        let f = Fulcrum::start(&cfg);
        let c = h2_client();
        let req = hyper::Request::get(format!("{}/h2", f.url("public")))
            .header("x-correlation-id", "abc-123")
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap();
        let res = c.request(req).await.unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["x-correlation-id"], "abc-123");
        assert_eq!(
            b.last_header("x-correlation-id").as_deref(),
            Some("abc-123")
        );
        // One that is not worth keeping (a space) is replaced.
        let req = hyper::Request::get(format!("{}/h2", f.url("public")))
            .header("x-correlation-id", "a b")
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap();
        let res = c.request(req).await.unwrap();
        let id = res.headers()["x-correlation-id"]
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(id.len(), 32);
        let line = f.wait_access_log(2);
        assert!(
            line.iter().any(|l| l["request_id"] == id.as_str()),
            "{line:?}"
        );
        assert!(line.iter().all(|l| l["proto"] == "HTTP/2"), "{line:?}");
    })
    .await;
}

/// An OTLP/HTTP collector in the test process: decodes each export with
/// `opentelemetry-proto` and keeps the spans.
struct Collector {
    addr: std::net::SocketAddr,
    spans: std::sync::Arc<std::sync::Mutex<Vec<opentelemetry_proto::tonic::trace::v1::Span>>>,
    service: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Collector {
    fn start() -> Self {
        use prost::Message as _;
        use std::io::{Read, Write};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let spans = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let service = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let (s, sv) = (spans.clone(), service.clone());
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(mut c) = conn else { return };
                let mut buf = Vec::new();
                let mut chunk = [0u8; 65536];
                let head_end = loop {
                    let n = c.read(&mut chunk).unwrap();
                    assert!(n > 0, "closed inside the head");
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
                assert!(head.starts_with("post /v1/traces http/1.1"), "{head}");
                assert!(
                    head.contains("content-type: application/x-protobuf"),
                    "{head}"
                );
                let len = content_length(&head);
                while buf.len() < head_end + len {
                    let n = c.read(&mut chunk).unwrap();
                    assert!(n > 0, "closed inside the body");
                    buf.extend_from_slice(&chunk[..n]);
                }
                let req = opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest::decode(
                    &buf[head_end..head_end + len],
                )
                .unwrap();
                c.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n")
                    .unwrap();
                for rs in req.resource_spans {
                    if let Some(r) = rs.resource {
                        for kv in r.attributes {
                            if kv.key == "service.name" {
                                *sv.lock().unwrap() = format!("{:?}", kv.value);
                            }
                        }
                    }
                    for ss in rs.scope_spans {
                        s.lock().unwrap().extend(ss.spans);
                    }
                }
            }
        });
        Self {
            addr,
            spans,
            service,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampled_requests_are_exported_as_otlp_spans() {
    use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
    within(async {
        let collector = Collector::start();
        let live = Backend::start("live").await;
        let dead = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let cfg = format!(
            "workers = 1\n[tracing]\notlp = \"http://{}\"\nsample = \"100%\"\nservice_name = \"edge\"\n\n[listeners.public]\naddress = \"127.0.0.1:0\"\n\n[[routes]]\nname = \"api\"\npool = \"p\"\n\n[pools.p]\nbackends = [\"{dead}\", {}]\n",
            collector.addr,
            quoted(&live)
        );
        let f = Fulcrum::start(&cfg);
        let mut w = Wire::connect(f.addr("public")).await;
        let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        for i in 0..2 {
            w.send(format!("GET /t/{i} HTTP/1.1\r\nHost: a\r\ntraceparent: {incoming}\r\n\r\n").as_bytes())
                .await;
            assert_eq!(w.response(false).await.status, 200);
        }
        until("both requests' spans are exported", || {
            collector
                .spans
                .lock()
                .unwrap()
                .iter()
                .filter(|s| s.kind() == SpanKind::Server)
                .count()
                >= 2
        })
        .await;
        let spans = collector.spans.lock().unwrap().clone();
        assert!(collector.service.lock().unwrap().contains("edge"));
        let servers: Vec<_> = spans.iter().filter(|s| s.kind() == SpanKind::Server).collect();
        for s in &servers {
            assert_eq!(hex(&s.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
            assert_eq!(hex(&s.parent_span_id), "00f067aa0ba902b7");
            assert_eq!(s.name, "GET api");
            assert!(s.end_time_unix_nano > s.start_time_unix_nano);
            let status = s
                .attributes
                .iter()
                .find(|kv| kv.key == "http.response.status_code")
                .and_then(|kv| kv.value.clone());
            assert!(format!("{status:?}").contains("IntValue(200)"), "{status:?}");
        }
        // Round robin puts the dead backend first: such a request has two
        // attempts, the first failed, both children of its server span.
        let children = |s: &&opentelemetry_proto::tonic::trace::v1::Span| {
            spans
                .iter()
                .filter(|c| c.parent_span_id == s.span_id && c.kind() == SpanKind::Client)
                .count()
        };
        let counts: Vec<usize> = servers.iter().map(children).collect();
        assert!(counts.iter().all(|n| (1..=2).contains(n)), "{spans:#?}");
        assert!(counts.contains(&2), "{spans:#?}");
        assert!(spans.iter().any(|s| s.kind() == SpanKind::Client
            && s.status.as_ref().is_some_and(|st| !st.message.is_empty())));
        // The backend's parent is Fulcrum's server span.
        let tp = live.last_header("traceparent").unwrap();
        assert!(servers.iter().any(|s| tp.contains(&hex(&s.span_id))), "{tp}");
    })
    .await;
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_pipe_drops_and_counts_lines_and_never_stalls_a_worker() {
    use std::io::BufRead as _;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    within(async {
        let b = Backend::start("a").await;
        let dir = TempDir::new();
        let fifo = dir.path("access.fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        // The reader opens the pipe and reads nothing until told to.
        let read = Arc::new(AtomicUsize::new(0));
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let (r, path) = (read.clone(), fifo.clone());
        std::thread::spawn(move || {
            let file = std::fs::File::open(path).unwrap();
            let _ = go_rx.recv();
            for line in std::io::BufReader::new(file).lines() {
                if line.is_err() {
                    break;
                }
                r.fetch_add(1, Ordering::Relaxed);
            }
        });
        let extra = format!("[access_log]\npath = {:?}\n", fifo.display().to_string());
        let f = Fulcrum::start(&config("", &b, &extra).replace("workers = 2", "workers = 1"));
        // 2,000-byte targets: 3,000 lines are about 6.5 MB, past the pipe's 64 KiB
        // and the writer's 4 MiB queue.
        const N: usize = 3000;
        let long = "x".repeat(2000);
        let mut w = Wire::connect(f.addr("public")).await;
        let started = Instant::now();
        for i in 0..N {
            w.send(format!("GET /{long}/{i} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes())
                .await;
            assert_eq!(w.response(false).await.status, 200, "request {i}");
        }
        let served = started.elapsed();
        let warned = f.wait_line("lines dropped", 0).await;
        assert!(warned.contains("access log"), "{warned}");
        // Let the reader go: what was queued arrives; read + dropped is every line.
        go_tx.send(()).unwrap();
        let total_dropped = |log: &str| {
            log.lines()
                .filter(|l| l.contains("lines dropped"))
                .filter_map(|l| field(l, "total"))
                .filter_map(|t| t.parse::<usize>().ok())
                .max()
                .unwrap_or(0)
        };
        until("every line is read or counted as dropped", || {
            read.load(Ordering::Relaxed) + total_dropped(&f.log.all()) == N
        })
        .await;
        let dropped = total_dropped(&f.log.all());
        assert!(dropped > 0 && dropped < N, "{dropped} of {N} dropped");
        eprintln!("served {N} requests in {served:?} with the log stuck; {dropped} lines dropped");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_writes_every_buffered_line() {
    within(async {
        let b = Backend::start("a").await;
        let mut f = Fulcrum::start(&config("", &b, ""));
        let mut w = Wire::connect(f.addr("public")).await;
        for i in 0..50 {
            ok(&mut w, &format!("/{i}")).await;
        }
        // Well within the one-second flush: the lines are still in the worker's
        // buffer when the stop begins.
        f.signal(15);
        assert!(f.wait_exit().success());
        let paths: std::collections::HashSet<String> = f
            .access_log()
            .iter()
            .map(|l| l["path"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(paths.len(), 50, "{paths:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_changes_the_log_format() {
    within(async {
        let b = Backend::start("a").await;
        let f = Fulcrum::start(&config("", &b, ""));
        let mut w = Wire::connect(f.addr("public")).await;
        ok(&mut w, "/json").await;
        f.wait_access_log(1);
        let path = f.dir.path("access.log");
        let cfg = config(
            "",
            &b,
            &format!(
                "[access_log]\nformat = \"combined\"\npath = {:?}\n",
                path.display().to_string()
            ),
        );
        assert!(f.reload(&cfg).contains("config reloaded"));
        ok(&mut w, "/combined").await;
        until("the combined line", || {
            lines(&path)
                .iter()
                .any(|l| l.contains("\"GET /combined HTTP/1.1\" 200"))
        })
        .await;
        assert!(lines(&path)[0].starts_with('{'));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_fulcrum_answers_carry_the_request_id() {
    within(async {
        let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let cfg = format!(
            "workers = 1\n[listeners.public]\naddress = \"127.0.0.1:0\"\nrequest_id = {{}}\n\n[[routes]]\npool = \"p\"\n\n[pools.p]\nbackends = [\"{dead}\"]\n"
        );
        let f = Fulcrum::start(&cfg);
        let mut w = Wire::connect(f.addr("public")).await;
        w.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await;
        let r = w.response(false).await;
        assert_eq!(r.status, 502, "{r:?}");
        let id = r.header("x-request-id").expect("the 502 names the request");
        let line = f.wait_status(502).await;
        assert_eq!(line["request_id"], id.as_str());
        // And over HTTP/2.
        let res = h2_client()
            .request(
                hyper::Request::get(format!("{}/", f.url("public")))
                    .body(http_body_util::Full::new(bytes::Bytes::new()))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(res.status(), 502);
        assert_eq!(res.headers()["x-request-id"].len(), 32);
    })
    .await;
}
