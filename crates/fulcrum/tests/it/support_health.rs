//! Support for the health, outlier, retry, limit and drain tests: backends whose
//! behaviour switches at run time and that can be killed and restarted on the same
//! port, a load generator that counts every answer, and waits on the backend state
//! lines Fulcrum logs.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::{Request, Response};
use socket2::{Domain, Socket, Type};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};

use crate::support::*;

/// How a [`Switchable`] answers every request but `/healthz`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Mode {
    /// `200 <name>`.
    Healthy = 0,
    /// `500` for everything.
    Fail500 = 1,
    /// `503` for everything.
    Fail503 = 2,
    /// Never answers (until killed).
    Hang = 3,
}

impl Mode {
    fn from_u8(v: u8) -> Self {
        match v {
            1 => Mode::Fail500,
            2 => Mode::Fail503,
            3 => Mode::Hang,
            _ => Mode::Healthy,
        }
    }
}

/// What the server tasks of a [`Switchable`] share with the test.
struct Shared {
    name: String,
    mode: AtomicU8,
    /// Status of `/healthz`.
    health: AtomicU16,
    /// Requests other than `/healthz` whose head arrived.
    requests: AtomicUsize,
    /// `/healthz` requests.
    probes: AtomicUsize,
    /// Requests waiting at the gate right now.
    held: AtomicUsize,
    /// Connections open right now.
    open: AtomicUsize,
    /// `true` lets held requests go on.
    gate: watch::Sender<bool>,
    last_body: Mutex<Bytes>,
}

/// Counts one value up while alive.
struct Count(Arc<Shared>, fn(&Shared) -> &AtomicUsize);

impl Count {
    fn new(s: &Arc<Shared>, which: fn(&Shared) -> &AtomicUsize) -> Self {
        which(s).fetch_add(1, Ordering::SeqCst);
        Self(s.clone(), which)
    }
}

impl Drop for Count {
    fn drop(&mut self) {
        (self.1)(&self.0).fetch_sub(1, Ordering::SeqCst);
    }
}

impl Shared {
    /// Waits until the test opens the gate; counted in `held` meanwhile.
    async fn wait_gate(self: &Arc<Self>) {
        let _held = Count::new(self, |s| &s.held);
        let mut rx = self.gate.subscribe();
        let _ = rx.wait_for(|open| *open).await;
    }
}

/// A real HTTP/1.1 backend on a port of its own, switchable at run time, that can be
/// killed (stops listening, every open connection closed) and restarted on the same
/// port.
///
/// Paths: `/healthz` answers the health status (200 `ok` or 503 `sick`) whatever the
/// mode; `/hold...` waits until [`Switchable::release`] and then answers by the mode;
/// `/stream-hold...` sends `200` and `start\n` at once and `end\n` after release;
/// anything else answers by the [`Mode`]. Every answer carries `x-backend: <name>`.
pub struct Switchable {
    pub addr: SocketAddr,
    pub name: String,
    shared: Arc<Shared>,
    /// The listening socket. Killing shuts it down (Linux then refuses connects but
    /// keeps the port bound, because it was bound to an explicit port), so a restart
    /// listens on the same port again with no chance of another socket taking it.
    socket: Socket,
    accept: Option<JoinHandle<()>>,
}

impl Drop for Switchable {
    fn drop(&mut self) {
        // Dropping the accept task drops its JoinSet, which aborts every connection.
        if let Some(t) = self.accept.take() {
            t.abort();
        }
    }
}

impl Switchable {
    /// A healthy backend (`/healthz` 200), serving.
    pub async fn start(name: &str) -> Self {
        let (gate, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            name: name.to_owned(),
            mode: AtomicU8::new(Mode::Healthy as u8),
            health: AtomicU16::new(200),
            requests: AtomicUsize::new(0),
            probes: AtomicUsize::new(0),
            held: AtomicUsize::new(0),
            open: AtomicUsize::new(0),
            gate,
            last_body: Mutex::new(Bytes::new()),
        });
        let (socket, addr) = bind_explicit_port();
        let mut b = Self {
            addr,
            name: name.to_owned(),
            shared,
            socket,
            accept: None,
        };
        b.serve();
        b
    }

    /// Starts `n` backends named `a`, `b`, `c`...
    pub async fn start_n(n: usize) -> Vec<Self> {
        let mut v = Vec::new();
        for i in 0..n {
            let name = char::from(b'a' + i as u8).to_string();
            v.push(Self::start(&name).await);
        }
        v
    }

    fn serve(&mut self) {
        // A fresh registration with the runtime each time: the old one saw the
        // shutdown (a final "closed" readiness) and would spin after a restart.
        let std = std::net::TcpListener::from(self.socket.try_clone().unwrap());
        std.set_nonblocking(true).unwrap();
        let listener = TcpListener::from_std(std).unwrap();
        let shared = self.shared.clone();
        self.accept = Some(tokio::spawn(async move {
            // Connections live in this set, so aborting this task closes them all.
            let mut conns = JoinSet::new();
            loop {
                let Ok((io, _)) = listener.accept().await else {
                    return;
                };
                while conns.try_join_next().is_some() {}
                conns.spawn(serve_connection(shared.clone(), io));
            }
        }));
    }

    /// Stops accepting and closes every open connection (requests in flight get no
    /// answer); returns once all are closed. New connections are refused until
    /// [`Switchable::restart`].
    pub async fn kill(&mut self) {
        let task = self.accept.take().expect("killed twice");
        task.abort();
        let _ = task.await;
        self.socket.shutdown(std::net::Shutdown::Both).unwrap();
        let shared = self.shared.clone();
        until(&format!("{}'s connections are closed", self.name), || {
            shared.open.load(Ordering::SeqCst) == 0
        })
        .await;
    }

    /// Listens again on the same port with the same behaviour.
    pub fn restart(&mut self) {
        assert!(self.accept.is_none(), "restarted while running");
        self.socket.listen(1024).unwrap();
        let now = self.socket.local_addr().unwrap().as_socket().unwrap();
        assert_eq!(
            now, self.addr,
            "the restarted backend moved to another port"
        );
        self.serve();
    }

    pub fn set_mode(&self, mode: Mode) {
        self.shared.mode.store(mode as u8, Ordering::SeqCst);
    }

    /// Status `/healthz` answers from now on.
    pub fn set_health(&self, status: u16) {
        self.shared.health.store(status, Ordering::SeqCst);
    }

    /// Lets every held request go on (and any later one pass at once).
    pub fn release(&self) {
        self.shared.gate.send_replace(true);
    }

    /// Holds `/hold` requests again.
    pub fn close_gate(&self) {
        self.shared.gate.send_replace(false);
    }

    /// Requests other than `/healthz` whose head arrived.
    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }

    pub fn probes(&self) -> usize {
        self.shared.probes.load(Ordering::SeqCst)
    }

    /// Requests waiting for release right now.
    pub fn held(&self) -> usize {
        self.shared.held.load(Ordering::SeqCst)
    }

    pub fn open_connections(&self) -> usize {
        self.shared.open.load(Ordering::SeqCst)
    }

    pub fn last_body(&self) -> Bytes {
        self.shared.last_body.lock().unwrap().clone()
    }

    /// `"ADDR"`, for a backend list.
    pub fn quoted(&self) -> String {
        format!("\"{}\"", self.addr)
    }
}

/// A listening socket on a free port bound by number, not as port 0: only then does
/// Linux keep the port bound when a kill shuts the socket down.
fn bind_explicit_port() -> (Socket, SocketAddr) {
    for _ in 0..100 {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = probe.local_addr().unwrap();
        drop(probe);
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        socket.set_reuse_address(true).unwrap();
        // Another socket may have taken the port in between: pick again.
        if socket.bind(&addr.into()).is_ok() && socket.listen(1024).is_ok() {
            return (socket, addr);
        }
    }
    panic!("no free port to bind by number");
}

async fn serve_connection(shared: Arc<Shared>, io: TcpStream) {
    let _open = Count::new(&shared, |s| &s.open);
    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
        let shared = shared.clone();
        async move { Ok::<_, Infallible>(answer(shared, req).await) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(hyper_util::rt::TokioIo::new(io), svc)
        .await;
}

async fn answer(s: Arc<Shared>, req: Request<Incoming>) -> Response<BoxedBody> {
    let path = req.uri().path().to_owned();
    if path == "/healthz" {
        s.probes.fetch_add(1, Ordering::SeqCst);
        let _ = req.into_body().collect().await;
        let status = s.health.load(Ordering::SeqCst);
        return respond(&s, status, if status == 200 { "ok" } else { "sick" });
    }
    s.requests.fetch_add(1, Ordering::SeqCst);
    let body = match req.into_body().collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => return respond(&s, 400, "body failed"),
    };
    *s.last_body.lock().unwrap() = body;
    if path.starts_with("/stream-hold") {
        let (tx, rx) = mpsc::channel(2);
        let _ = tx.try_send(Bytes::from_static(b"start\n"));
        let s2 = s.clone();
        tokio::spawn(async move {
            s2.wait_gate().await;
            let _ = tx.send(Bytes::from_static(b"end\n")).await;
        });
        return Response::builder()
            .header("x-backend", &s.name)
            .body(ChannelBody(rx).boxed())
            .unwrap();
    }
    if path.starts_with("/hold") {
        s.wait_gate().await;
    }
    match Mode::from_u8(s.mode.load(Ordering::SeqCst)) {
        Mode::Healthy => respond(&s, 200, &s.name.clone()),
        Mode::Fail500 => respond(&s, 500, "fail"),
        Mode::Fail503 => respond(&s, 503, "unavailable"),
        Mode::Hang => std::future::pending().await,
    }
}

fn respond(s: &Shared, status: u16, body: &str) -> Response<BoxedBody> {
    Response::builder()
        .status(status)
        .header("x-backend", &s.name)
        .body(Full::new(Bytes::from(body.to_owned())).boxed())
        .unwrap()
}

/// A response body fed through a channel: it ends when the sender is dropped.
pub struct ChannelBody(pub mpsc::Receiver<Bytes>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b))))
    }
}

/// The value of `key` in a tracing line, as a whole `key=value` token (quotes trimmed).
pub fn token(line: &str, key: &str) -> Option<String> {
    let prefix = format!("{key}=");
    line.split_whitespace()
        .find_map(|t| t.strip_prefix(prefix.as_str()))
        .map(|v| v.trim_matches('"').to_owned())
}

/// Whether `line` is the event `message` (e.g. `backend ejected`) about `backend`.
pub fn is_event(line: &str, message: &str, backend: SocketAddr) -> bool {
    line.contains(message) && token(line, "backend").as_deref() == Some(&backend.to_string())
}

/// Whether `line` says `backend` changed to state `to`.
pub fn is_state(line: &str, backend: SocketAddr, to: &str) -> bool {
    is_event(line, "backend state changed", backend) && token(line, "to").as_deref() == Some(to)
}

impl Fulcrum {
    /// Waits for `backend state changed ... backend=<backend> ... to=<to>` after the
    /// first `skip` lines; returns the index of the line after it (to skip from).
    pub async fn wait_state(&self, backend: SocketAddr, to: &str, skip: usize) -> usize {
        let log = self.log.clone();
        let what = format!("state change of {backend} to {to}");
        let to = to.to_owned();
        tokio::task::spawn_blocking(move || {
            log.wait_match(&what, skip, |l| is_state(l, backend, &to)).0 + 1
        })
        .await
        .unwrap()
    }

    /// Waits for a `message` line (`backend ejected`, `backend released`) about
    /// `backend` after the first `skip` lines; returns the index of the line after it.
    pub async fn wait_event(&self, message: &str, backend: SocketAddr, skip: usize) -> usize {
        let log = self.log.clone();
        let what = format!("{message:?} for {backend}");
        let message = message.to_owned();
        tokio::task::spawn_blocking(move || {
            log.wait_match(&what, skip, |l| is_event(l, &message, backend))
                .0
                + 1
        })
        .await
        .unwrap()
    }

    /// Lines so far that are the event `message` about `backend`.
    pub fn count_events(&self, message: &str, backend: SocketAddr) -> usize {
        self.log
            .all()
            .lines()
            .filter(|l| is_event(l, message, backend))
            .count()
    }

    /// Reloads `config` (blocking the thread, not the runtime); asserts it took.
    pub fn reload_ok(&self, config: &str) {
        let line = tokio::task::block_in_place(|| self.reload(config));
        assert!(
            line.contains("config reloaded"),
            "{line}\n{}",
            self.log.all()
        );
    }
}

/// `health = { ... }` probing `/healthz` every `interval` (also its timeout, the
/// most allowed), rising after 2 passes and falling after `fall` failures.
pub fn health_check(interval: &str, fall: u32) -> String {
    format!(
        "health = {{ path = \"/healthz\", interval = \"{interval}\", timeout = \"{interval}\", rise = 2, fall = {fall} }}"
    )
}

/// A config with one listener `public` and one round-robin pool `p` over `backends`.
pub fn pool_of(backends: &[&Switchable], extra_pool: &str) -> String {
    let list: Vec<String> = backends.iter().map(|b| b.quoted()).collect();
    one_pool("round_robin", &list, extra_pool)
}

/// One answer, with the headers these tests look at.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub backend: String,
    pub retry_after: Option<String>,
    pub body: Bytes,
}

/// Sends `method url` with `body` (none when empty) and reads the whole answer.
pub async fn send(
    c: &hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        Full<Bytes>,
    >,
    method: &str,
    url: &str,
    body: &'static str,
) -> Answer {
    let req = Request::builder()
        .method(method)
        .uri(url)
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap();
    let res = c.request(req).await.unwrap();
    let header = |name: &str| {
        res.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let (backend, retry_after) = (
        header("x-backend").unwrap_or_default(),
        header("retry-after"),
    );
    let status = res.status().as_u16();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        backend,
        retry_after,
        body,
    }
}

/// Everything a [`Load`] saw.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    pub total: usize,
    pub by_status: BTreeMap<u16, usize>,
    pub by_backend: BTreeMap<String, usize>,
    /// Requests that got no whole answer.
    pub errors: usize,
    /// The first few failures, for the report.
    pub samples: Vec<String>,
}

impl Tally {
    /// Requests that did not end in a whole `200`.
    pub fn failed(&self) -> usize {
        self.total - self.by_status.get(&200).copied().unwrap_or(0)
    }

    /// `200`s from `backend`.
    pub fn served_by(&self, backend: &str) -> usize {
        self.by_backend.get(backend).copied().unwrap_or(0)
    }

    fn record(&mut self, outcome: Result<(u16, String), String>) {
        self.total += 1;
        match outcome {
            Ok((status, backend)) => {
                *self.by_status.entry(status).or_default() += 1;
                if status == 200 {
                    *self.by_backend.entry(backend).or_default() += 1;
                } else if self.samples.len() < 20 {
                    self.samples
                        .push(format!("status {status} from {backend:?}"));
                }
            }
            Err(e) => {
                self.errors += 1;
                if self.samples.len() < 20 {
                    self.samples.push(e);
                }
            }
        }
    }
}

/// `clients` keep-alive clients sending `GET url` in a loop until stopped, counting
/// every answer.
pub struct Load {
    stop: Arc<AtomicBool>,
    tally: Arc<Mutex<Tally>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Load {
    pub fn start(url: String, clients: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let tally = Arc::new(Mutex::new(Tally::default()));
        let tasks = (0..clients)
            .map(|_| {
                let (stop, tally, url) = (stop.clone(), tally.clone(), url.clone());
                tokio::spawn(async move {
                    let c = client();
                    while !stop.load(Ordering::Relaxed) {
                        let outcome = one_get(&c, &url).await;
                        tally.lock().unwrap().record(outcome);
                    }
                })
            })
            .collect();
        Self { stop, tally, tasks }
    }

    /// What was seen so far.
    pub fn tally(&self) -> Tally {
        self.tally.lock().unwrap().clone()
    }

    /// Waits until `n` requests in all were answered (or failed).
    pub async fn wait_total(&self, n: usize) {
        until(&format!("{n} requests"), || {
            self.tally.lock().unwrap().total >= n
        })
        .await;
    }

    /// Waits until `backend` served `n` requests in all.
    pub async fn wait_served(&self, backend: &str, n: usize) {
        until(&format!("{n} answers from {backend}"), || {
            self.tally.lock().unwrap().served_by(backend) >= n
        })
        .await;
    }

    /// Stops every client after its request in flight; returns the tally.
    pub async fn stop(self) -> Tally {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.await.unwrap();
        }
        let tally = self.tally.lock().unwrap().clone();
        tally
    }
}

async fn one_get(
    c: &hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        Full<Bytes>,
    >,
    url: &str,
) -> Result<(u16, String), String> {
    let res = c
        .get(url.parse().unwrap())
        .await
        .map_err(|e| format!("request: {e:?}"))?;
    let status = res.status().as_u16();
    let backend = res
        .headers()
        .get("x-backend")
        .map(|v| v.to_str().unwrap_or_default().to_owned())
        .unwrap_or_default();
    res.into_body()
        .collect()
        .await
        .map_err(|e| format!("body from {backend:?}: {e}"))?;
    Ok((status, backend))
}
