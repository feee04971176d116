//! Test support: a real Fulcrum process on port 0, real HTTP backends in the test
//! process, readiness by log line (never a sleep), and a timeout on everything.

#![allow(dead_code)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use tokio::net::TcpListener;

/// Generous: CI runs on two busy cores.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// Runs a test body with a deadline.
pub async fn within<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(TIMEOUT, f)
        .await
        .expect("test timed out")
}

/// Waits (polling, up to TIMEOUT) until `cond` holds.
pub async fn until(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A fresh temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "fulcrum-it-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Lines a process wrote to stderr, with a way to wait for one.
#[derive(Clone, Default)]
pub struct Lines(Arc<(Mutex<Vec<String>>, Condvar)>);

impl Lines {
    pub fn push(&self, line: String) {
        let (lock, cv) = &*self.0;
        lock.lock().unwrap().push(line);
        cv.notify_all();
    }
    /// Waits (blocking, up to TIMEOUT) for a line containing `needle`, after the first `skip` lines.
    pub fn wait_for(&self, needle: &str, skip: usize) -> String {
        let (lock, cv) = &*self.0;
        let deadline = Instant::now() + TIMEOUT;
        let mut lines = lock.lock().unwrap();
        loop {
            if let Some(l) = lines.iter().skip(skip).find(|l| l.contains(needle)) {
                return l.clone();
            }
            assert!(
                !lines.iter().any(|l| l == "<exited>"),
                "exited before a line containing {needle:?}:\n{}",
                lines.join("\n")
            );
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no line containing {needle:?}; got:\n{}",
                lines.join("\n")
            );
            lines = cv.wait_timeout(lines, left).unwrap().0;
        }
    }
    /// Waits (blocking, up to TIMEOUT) for a line that `pred` accepts, after the first
    /// `skip` lines; returns its index and text. `what` names it in the failure message.
    pub fn wait_match(
        &self,
        what: &str,
        skip: usize,
        pred: impl Fn(&str) -> bool,
    ) -> (usize, String) {
        let (lock, cv) = &*self.0;
        let deadline = Instant::now() + TIMEOUT;
        let mut lines = lock.lock().unwrap();
        loop {
            if let Some((i, l)) = lines.iter().enumerate().skip(skip).find(|(_, l)| pred(l)) {
                return (i, l.clone());
            }
            assert!(
                !lines.iter().any(|l| l == "<exited>"),
                "exited before {what}:\n{}",
                lines.join("\n")
            );
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "no {what}; got:\n{}", lines.join("\n"));
            lines = cv.wait_timeout(lines, left).unwrap().0;
        }
    }
    pub fn len(&self) -> usize {
        self.0 .0.lock().unwrap().len()
    }
    pub fn all(&self) -> String {
        self.0 .0.lock().unwrap().join("\n")
    }
}

/// A running Fulcrum; killed on drop.
pub struct Fulcrum {
    pub child: Child,
    pub dir: TempDir,
    pub config: PathBuf,
    pub log: Lines,
    pub listeners: HashMap<String, SocketAddr>,
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_fulcrum")
}

impl Fulcrum {
    /// Starts Fulcrum on `config` (TOML); waits until every listener is bound. The
    /// access log goes to `access.log` in the temp dir unless the config says otherwise.
    pub fn start(config: &str) -> Self {
        Self::start_env(config, &[])
    }

    /// [`Fulcrum::start`] with these environment variables set.
    pub fn start_env(config: &str, env: &[(&str, &std::ffi::OsStr)]) -> Self {
        let dir = TempDir::new();
        let path = dir.path("fulcrum.toml");
        let access = dir.path("access.log");
        let config = if config.contains("[access_log]") {
            config.to_owned()
        } else {
            format!(
                "{config}\n[access_log]\npath = {:?}\n",
                access.display().to_string()
            )
        };
        std::fs::write(&path, &config).unwrap();
        let expected = config.matches("[listeners.").count();
        let mut child = Command::new(bin())
            .args(["run", "--config"])
            .arg(&path)
            .env("RUST_LOG", std::env::var("IT_LOG").unwrap_or("info".into()))
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Lines::default();
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.push(line);
            }
            sink.push("<exited>".into());
        });
        let mut listeners = HashMap::new();
        let mut skip = 0;
        while listeners.len() < expected {
            let line = log.wait_for("listening", skip);
            skip = log.len();
            let name = field(&line, "listener").unwrap();
            let addr = field(&line, "address").unwrap().parse().unwrap();
            listeners.insert(name, addr);
            if log.all().matches("listening").count() >= expected {
                for l in log.all().lines().filter(|l| l.contains("listening")) {
                    let name = field(l, "listener").unwrap();
                    listeners.insert(name, field(l, "address").unwrap().parse().unwrap());
                }
            }
        }
        Self {
            child,
            dir,
            config: path,
            log,
            listeners,
        }
    }

    /// The address of listener `name`.
    pub fn addr(&self, name: &str) -> SocketAddr {
        self.listeners[name]
    }

    /// `http://ADDR` of listener `name`.
    pub fn url(&self, name: &str) -> String {
        format!("http://{}", self.addr(name))
    }

    /// Sends signal `sig` once the process has a handler for it (SIGHUP, SIGINT and
    /// SIGTERM; others go at once).
    pub fn signal(&self, sig: i32) {
        if matches!(sig, 1 | 2 | 15) {
            self.wait_handler(sig);
        }
        self.signal_now(sig);
    }

    /// Waits until the process catches `sig` (its bit in `SigCgt` of /proc/PID/status).
    /// Fulcrum installs its handlers before it logs "listening" (checked without this
    /// wait by `lifecycle::sighup_right_after_listening_reloads`); this keeps other
    /// tests from depending on that order.
    pub fn wait_handler(&self, sig: i32) {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
                .unwrap_or_default();
            let caught = status
                .lines()
                .find_map(|l| l.strip_prefix("SigCgt:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
                .unwrap_or(0);
            if caught & (1 << (sig - 1)) != 0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "fulcrum never installed a handler for signal {sig}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Sends signal `sig` now.
    pub fn signal_now(&self, sig: i32) {
        // kill(2) through the libc crate would need unsafe; use the kill command.
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Rewrites the config file and sends SIGHUP; returns the log line that answered.
    pub fn reload(&self, config: &str) -> String {
        let access = self.dir.path("access.log");
        let config = if config.contains("[access_log]") {
            config.to_owned()
        } else {
            format!(
                "{config}\n[access_log]\npath = {:?}\n",
                access.display().to_string()
            )
        };
        std::fs::write(&self.config, config).unwrap();
        let skip = self.log.len();
        self.signal(1);
        loop {
            let line = self.log.wait_for("reload", skip);
            if line.contains("config reloaded") || line.contains("reload failed") {
                return line;
            }
        }
    }

    /// The access log lines so far.
    pub fn access_log(&self) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(self.dir.path("access.log")).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Waits for at least `n` access log lines.
    pub fn wait_access_log(&self, n: usize) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let lines = self.access_log();
            if lines.len() >= n {
                return lines;
            }
            assert!(
                Instant::now() < deadline,
                "access log has {} lines, wanted {n}",
                lines.len()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits, without blocking the runtime, for a log line containing `needle` after
    /// the first `skip` lines.
    pub async fn wait_line(&self, needle: &str, skip: usize) -> String {
        let (log, needle) = (self.log.clone(), needle.to_owned());
        tokio::task::spawn_blocking(move || log.wait_for(&needle, skip))
            .await
            .unwrap()
    }

    /// Waits, without blocking the runtime, for an access log line with `status`.
    pub async fn wait_status(&self, status: u16) -> serde_json::Value {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(line) = self
                .access_log()
                .into_iter()
                .find(|l| l["status"] == status)
            {
                return line;
            }
            assert!(
                Instant::now() < deadline,
                "no access log line with status {status}: {:?}",
                self.access_log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Resident memory of the process, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap()
    }

    /// Waits for the process to exit; returns its status.
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "fulcrum did not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Fulcrum {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `content-length` of a lowercased HTTP/1.1 head.
pub fn content_length(head: &str) -> usize {
    head.lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// `key=value` or `key="value"` in a tracing line.
pub fn field(line: &str, key: &str) -> Option<String> {
    let start = line.find(&format!("{key}="))? + key.len() + 1;
    let rest = &line[start..];
    let value = rest.split_whitespace().next()?;
    Some(value.trim_matches('"').to_owned())
}

/// What a test backend saw.
#[derive(Default)]
pub struct Seen {
    /// TCP connections accepted.
    pub connections: AtomicUsize,
    /// Requests answered.
    pub requests: AtomicUsize,
    /// Body bytes received.
    pub body_bytes: AtomicU64,
    /// The last request's headers.
    pub last_headers: Mutex<Vec<(String, String)>>,
    /// Requests whose head arrived (counted before the body is read).
    pub arrived: AtomicUsize,
    /// Requests whose body could not be read to its end (not counted in `requests`).
    pub aborted: AtomicUsize,
    /// The last complete request's body.
    pub last_body: Mutex<Bytes>,
    /// The last complete request's method and target.
    pub last_target: Mutex<String>,
}

/// How a test backend answers.
pub type Handler = Arc<dyn Fn(&str, Request<Bytes>) -> Response<Full<Bytes>> + Send + Sync>;

/// Any response body a test backend sends.
pub type BoxedBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

/// A response on its way.
pub type ResponseFuture = Pin<Box<dyn Future<Output = Response<BoxedBody>> + Send>>;

/// How a streaming test backend answers: it gets the request with its body unread.
pub type StreamHandler = Arc<dyn Fn(Arc<Seen>, Request<Incoming>) -> ResponseFuture + Send + Sync>;

/// A real HTTP/1.1 (and, with `h2`, HTTP/2 prior-knowledge) server on port 0.
pub struct Backend {
    pub addr: SocketAddr,
    pub name: String,
    pub seen: Arc<Seen>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Backend {
    /// Answers `200 <name>` with an `x-backend` header.
    pub async fn start(name: &str) -> Self {
        Self::with(name, false, Arc::new(|name: &str, _req| named(name))).await
    }

    /// An h2c (prior knowledge) backend answering `200 <name>`.
    pub async fn start_h2(name: &str) -> Self {
        Self::with(name, true, Arc::new(|name: &str, _req| named(name))).await
    }

    /// A backend with a custom handler; bodies are read in full first. A request whose
    /// body fails midway is counted in `aborted`, not `requests`.
    pub async fn with(name: &str, h2: bool, handler: Handler) -> Self {
        let name_s = name.to_owned();
        Self::streaming(
            name,
            h2,
            Arc::new(move |seen: Arc<Seen>, req: Request<Incoming>| {
                let (handler, name) = (handler.clone(), name_s.clone());
                Box::pin(async move {
                    let (parts, body) = req.into_parts();
                    let body = match body.collect().await {
                        Ok(c) => c.to_bytes(),
                        Err(_) => {
                            // Framing broke midway: the backend never acts on it.
                            seen.aborted.fetch_add(1, Ordering::Relaxed);
                            return Response::builder()
                                .status(400)
                                .body(Full::new(Bytes::new()).boxed())
                                .unwrap();
                        }
                    };
                    seen.requests.fetch_add(1, Ordering::Relaxed);
                    seen.body_bytes
                        .fetch_add(body.len() as u64, Ordering::Relaxed);
                    *seen.last_headers.lock().unwrap() = parts
                        .headers
                        .iter()
                        .map(|(k, v)| {
                            (
                                k.to_string(),
                                String::from_utf8_lossy(v.as_bytes()).into_owned(),
                            )
                        })
                        .collect();
                    *seen.last_target.lock().unwrap() = format!("{} {}", parts.method, parts.uri);
                    *seen.last_body.lock().unwrap() = body.clone();
                    handler(&name, Request::from_parts(parts, body)).map(|b| b.boxed())
                })
            }),
        )
        .await
    }

    /// A backend whose handler reads the body itself (or not). Counts connections and
    /// `arrived`; the handler counts the rest.
    pub async fn streaming(name: &str, h2: bool, handler: StreamHandler) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::streaming_on(listener, name, h2, handler)
    }

    /// An HTTP/1.1 backend answering `200 <name>` on `listener` (an address of the
    /// test's choosing, such as 127.0.0.3 on a port shared with 127.0.0.2).
    pub fn named_on(listener: TcpListener, name: &str) -> Self {
        let own = name.to_owned();
        Self::streaming_on(
            listener,
            name,
            false,
            Arc::new(move |seen: Arc<Seen>, _req| {
                seen.requests.fetch_add(1, Ordering::Relaxed);
                let name = own.clone();
                Box::pin(async move { named(&name).map(|b| b.boxed()) })
            }),
        )
    }

    fn streaming_on(listener: TcpListener, name: &str, h2: bool, handler: StreamHandler) -> Self {
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Seen::default());
        let seen2 = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((io, _)) = listener.accept().await else {
                    return;
                };
                seen2.connections.fetch_add(1, Ordering::Relaxed);
                let (handler, seen) = (handler.clone(), seen2.clone());
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                        seen.arrived.fetch_add(1, Ordering::Relaxed);
                        let fut = handler(seen.clone(), req);
                        async move { Ok::<_, Infallible>(fut.await) }
                    });
                    serve_conn(io, h2, svc).await;
                });
            }
        });
        Self {
            addr,
            name: name.to_owned(),
            seen,
            task,
        }
    }

    /// Requests whose head arrived, complete or not.
    pub fn arrived(&self) -> usize {
        self.seen.arrived.load(Ordering::Relaxed)
    }

    /// The last complete request's body.
    pub fn last_body(&self) -> Bytes {
        self.seen.last_body.lock().unwrap().clone()
    }

    pub fn requests(&self) -> usize {
        self.seen.requests.load(Ordering::Relaxed)
    }

    pub fn connections(&self) -> usize {
        self.seen.connections.load(Ordering::Relaxed)
    }

    /// A header of the last request.
    pub fn last_header(&self, name: &str) -> Option<String> {
        self.seen
            .last_headers
            .lock()
            .unwrap()
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }
}

/// Serves one connection with hyper: HTTP/2 when `h2`, else HTTP/1.1.
pub async fn serve_conn<I, S, B>(io: I, h2: bool, svc: S)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let io = hyper_util::rt::TokioIo::new(io);
    if h2 {
        let _ = hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
            .serve_connection(io, svc)
            .await;
    } else {
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(io, svc)
            .await;
    }
}

pub fn named(name: &str) -> Response<Full<Bytes>> {
    Response::builder()
        .header("x-backend", name)
        .body(Full::new(Bytes::from(name.to_owned())))
        .unwrap()
}

/// A config with one listener `public` on port 0 and one pool `p` over `backends`.
pub fn one_pool(balance: &str, backends: &[String], extra_pool: &str) -> String {
    let list = backends.join(", ");
    format!(
        "workers = 1\n\n[listeners.public]\naddress = \"127.0.0.1:0\"\n\n[[routes]]\npool = \"p\"\n\n[pools.p]\nbalance = \"{balance}\"\nbackends = [{list}]\n{extra_pool}\n"
    )
}

/// `"ADDR"` for a backend list.
pub fn quoted(b: &Backend) -> String {
    format!("\"{}\"", b.addr)
}

/// An HTTP/1.1 keep-alive client.
pub fn client() -> hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Full<Bytes>,
> {
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http()
}

/// An HTTP/2 prior-knowledge client.
pub fn h2_client() -> hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Full<Bytes>,
> {
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http()
}

/// GET `url`; returns status, `x-backend` and body.
pub async fn get(
    c: &hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        Full<Bytes>,
    >,
    url: &str,
) -> (u16, String, Bytes) {
    let res = c.get(url.parse().unwrap()).await.unwrap();
    let status = res.status().as_u16();
    let backend = res
        .headers()
        .get("x-backend")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, backend, body)
}

/// One request with `headers` and an empty body: status, fields and the whole body.
pub async fn fetch(
    c: &hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        Full<Bytes>,
    >,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
) -> (u16, hyper::HeaderMap, Bytes) {
    let mut req = hyper::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let res = c
        .request(req.body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap();
    let status = res.status().as_u16();
    let (parts, body) = res.into_parts();
    (
        status,
        parts.headers,
        body.collect().await.unwrap().to_bytes(),
    )
}

/// Sends raw bytes on a fresh connection and reads until the peer closes or `limit`
/// passes; returns what came back.
pub fn raw(addr: SocketAddr, bytes: &[u8], limit: Duration) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(limit)).unwrap();
    s.write_all(bytes).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Runs `fulcrum check FILE`; returns exit code and stdout.
pub fn check(path: &Path) -> (i32, String) {
    check_with(&[], path)
}

/// Runs `fulcrum check FLAGS FILE`; returns exit code and stdout.
pub fn check_with(flags: &[&str], path: &Path) -> (i32, String) {
    let out = Command::new(bin())
        .arg("check")
        .args(flags)
        .arg(path)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// Sends one request; returns its status and the backend that answered.
pub async fn send_with(
    c: &hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        Full<Bytes>,
    >,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
) -> (u16, String) {
    let (status, fields, _) = fetch(c, method, url, headers).await;
    let backend = fields
        .get("x-backend")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, backend)
}

/// A TCP echo server on port 0: echoes until the client half-closes, then closes;
/// counts the connections it accepted.
pub struct TcpEcho {
    pub addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl TcpEcho {
    pub async fn start() -> Self {
        use tokio::io::AsyncWriteExt;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    if tokio::io::copy(&mut r, &mut w).await.is_ok() {
                        let _ = w.shutdown().await;
                    }
                });
            }
        });
        Self {
            addr,
            accepted,
            task,
        }
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// `"ADDR"` for a backend list.
    pub fn quoted(&self) -> String {
        format!("\"{}\"", self.addr)
    }
}

impl Drop for TcpEcho {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Fulcrum {
    /// The admin listener's address, from its `admin listening` line.
    pub async fn admin_addr(&self) -> SocketAddr {
        let line = self.wait_line("admin listening", 0).await;
        line.split_whitespace()
            .find_map(|t| t.strip_prefix("address="))
            .unwrap()
            .parse()
            .unwrap()
    }
}
