//! The access log: one line per request, formatted by the worker that served it
//! into a buffer of its own and handed, 64 KiB or a second at a time, to a thread
//! that writes. A slow disk or a stuck pipe never stalls a worker: past a bounded
//! queue, lines are dropped and counted. SIGUSR1 reopens the file (logrotate).

mod format;
mod writer;

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fulcrum_core::config::AccessLogConfig;

pub use format::Format;
use writer::Writer;

/// A worker's buffer is handed to the writer when it holds this much.
pub const BUFFER_BYTES: usize = 64 * 1024;
/// ... or when its oldest line is this old.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Buffers waiting for the writer at most (4 MiB of lines); past it lines are dropped.
const QUEUE: usize = 64;

/// The TLS session of a request's connection.
#[derive(Clone, Copy, Debug, Default)]
pub struct TlsInfo<'a> {
    /// `TLSv1.3`, `TLSv1.2`.
    pub version: &'static str,
    /// The cipher suite, as rustls names it.
    pub cipher: &'static str,
    /// The server name the client asked for.
    pub sni: Option<&'a str>,
}

impl<'a> From<&'a crate::tls::Session> for TlsInfo<'a> {
    fn from(s: &'a crate::tls::Session) -> Self {
        Self {
            version: s.version,
            cipher: s.cipher,
            sni: s.sni.as_deref(),
        }
    }
}

/// What one request did; the routing decision and timings included.
#[derive(Debug, Default)]
pub struct Entry<'a> {
    /// Listener name.
    pub listener: &'a str,
    /// Client address.
    pub client: Option<SocketAddr>,
    /// Protocol spoken by the client: `HTTP/1.1`, `HTTP/2`.
    pub proto: &'a str,
    /// Request method.
    pub method: &'a str,
    /// Host the request named.
    pub host: &'a str,
    /// Request target.
    pub path: &'a str,
    /// Status sent to the client (0 when none could be sent).
    pub status: u16,
    /// Index of the matched route in the config.
    pub route: Option<usize>,
    /// Pool name.
    pub pool: &'a str,
    /// Backend address that answered (or was last tried).
    pub backend: Option<SocketAddr>,
    /// That backend's state, where the finished request is counted.
    pub member: Option<&'a crate::stats::Stats>,
    /// The listener's counters (not logged).
    pub listener_traffic: Option<&'a crate::stats::Traffic>,
    /// The route's counters (not logged).
    pub route_traffic: Option<&'a crate::stats::Traffic>,
    /// Backends tried.
    pub attempts: u32,
    /// Request body bytes received.
    pub bytes_in: u64,
    /// Response body bytes sent.
    pub bytes_out: u64,
    /// From request head to response end.
    pub duration: Duration,
    /// From request sent to response head received.
    pub upstream: Option<Duration>,
    /// Time taken to get a connection to that backend (about zero for a pooled one).
    pub connect: Option<Duration>,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// The matched route's `name`.
    pub route_name: Option<&'a str>,
    /// `User-Agent`.
    pub user_agent: Option<&'a [u8]>,
    /// `Referer`.
    pub referer: Option<&'a [u8]>,
    /// The request ID (empty when the listener sets none).
    pub request_id: &'a str,
    /// The W3C trace ID, 32 hex digits (empty when there is none).
    pub trace_id: &'a str,
    /// The client connection's TLS session.
    pub tls: Option<TlsInfo<'a>>,
    /// A sampled request's upstream attempts, for its span (`None` otherwise).
    pub tries: Option<Vec<crate::spans::Try>>,
    /// A sampled request's span.
    pub span: Option<crate::spans::SpanIds>,
}

/// The process's access log: its settings and its writer thread. Cloned into every
/// worker, which formats through a [`WorkerLog`] of its own.
#[derive(Clone, Debug)]
pub struct AccessLog {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Bumped when the settings change, so workers look again.
    generation: AtomicU64,
    spec: std::sync::Mutex<Arc<Spec>>,
    writer: Writer,
}

/// What a line looks like, and whether there are lines at all.
#[derive(Debug, PartialEq, Eq)]
struct Spec {
    enabled: bool,
    format: Format,
}

impl Spec {
    fn new(cfg: &AccessLogConfig) -> Self {
        Self {
            enabled: cfg.enabled,
            format: Format::new(cfg),
        }
    }
}

impl AccessLog {
    /// Opens the log `cfg` names (nothing when disabled) and starts its writer.
    pub fn start(cfg: &AccessLogConfig) -> std::io::Result<Self> {
        let writer = Writer::start(cfg.enabled.then_some(cfg.path.as_str()), QUEUE)?;
        Ok(Self {
            inner: Arc::new(Inner {
                generation: AtomicU64::new(0),
                spec: std::sync::Mutex::new(Arc::new(Spec::new(cfg))),
                writer,
            }),
        })
    }

    /// Takes a reloaded `[access_log]`: a new format from the next line on, a new
    /// path opened (what was buffered goes there).
    pub fn reconfigure(&self, cfg: &AccessLogConfig) {
        let spec = Spec::new(cfg);
        let mut current = self.inner.spec.lock().unwrap_or_else(|e| e.into_inner());
        if **current != spec {
            *current = Arc::new(spec);
            self.inner.generation.fetch_add(1, Ordering::Release);
        }
        self.inner
            .writer
            .set_path(cfg.enabled.then_some(cfg.path.as_str()));
    }

    /// Reopens the file at its path (SIGUSR1, after logrotate moved it).
    pub fn reopen(&self) {
        self.inner.writer.reopen();
    }

    /// Lines dropped so far because the writer could not keep up.
    pub fn dropped(&self) -> u64 {
        self.inner.writer.dropped()
    }

    /// Logs, once a second, how many lines were dropped in it (runs forever).
    pub async fn report_drops(self) {
        let mut seen = self.dropped();
        let mut tick = tokio::time::interval(FLUSH_EVERY);
        loop {
            tick.tick().await;
            let now = self.dropped();
            if now > seen {
                tracing::warn!(
                    lines = now - seen,
                    total = now,
                    "access log: the writer cannot keep up; lines dropped"
                );
                seen = now;
            }
        }
    }

    /// Writes what was handed over and stops the writer, waiting at most `limit`
    /// (a stuck pipe does not hold the exit).
    pub fn close(&self, limit: Duration) {
        self.inner.writer.close(limit);
    }

    fn spec(&self) -> (u64, Arc<Spec>) {
        let generation = self.inner.generation.load(Ordering::Acquire);
        let spec = self.inner.spec.lock().unwrap_or_else(|e| e.into_inner());
        (generation, spec.clone())
    }
}

/// A worker's side of the log: its buffer, and the settings it last saw.
#[derive(Debug)]
pub struct WorkerLog {
    log: AccessLog,
    buf: RefCell<Vec<u8>>,
    lines: Cell<u64>,
    seen: Cell<u64>,
    spec: RefCell<Arc<Spec>>,
    clock: RefCell<format::Clock>,
}

impl WorkerLog {
    /// A worker's buffer for `log`.
    pub fn new(log: AccessLog) -> Self {
        let (seen, spec) = log.spec();
        Self {
            log,
            buf: RefCell::new(Vec::new()),
            lines: Cell::new(0),
            seen: Cell::new(seen),
            spec: RefCell::new(spec),
            clock: RefCell::default(),
        }
    }

    /// The process's log.
    pub fn shared(&self) -> &AccessLog {
        &self.log
    }

    /// The settings, looked at again after a reload changed them (what was
    /// buffered in the old format is handed over first).
    fn refresh(&self) {
        if self.log.inner.generation.load(Ordering::Acquire) != self.seen.get() {
            self.flush();
            let (seen, spec) = self.log.spec();
            self.seen.set(seen);
            *self.spec.borrow_mut() = spec;
        }
    }

    /// Whether lines are written at all (callers skip building entries otherwise).
    pub fn enabled(&self) -> bool {
        self.refresh();
        self.spec.borrow().enabled
    }

    /// Formats one entry into the buffer; hands the buffer over when it is full.
    pub fn write(&self, e: &Entry<'_>) {
        self.refresh();
        let spec = self.spec.borrow();
        if !spec.enabled {
            return;
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let full = {
            let mut buf = self.buf.borrow_mut();
            if buf.capacity() == 0 {
                buf.reserve(BUFFER_BYTES + 4096);
            }
            format::write(&mut buf, &spec.format, e, now, &mut self.clock.borrow_mut());
            buf.len() >= BUFFER_BYTES
        };
        self.lines.set(self.lines.get() + 1);
        if full {
            self.flush();
        }
    }

    /// Hands what is buffered to the writer (dropped and counted if its queue is
    /// full): when full, every second, and when the worker stops.
    pub fn flush(&self) {
        let buf = std::mem::take(&mut *self.buf.borrow_mut());
        if buf.is_empty() {
            return;
        }
        self.log.inner.writer.send(buf, self.lines.replace(0));
    }
}

/// Records a finished request against the backend that answered it (or was last
/// tried), if any, and against its listener and route. Called where the access
/// log line is written.
pub fn record(e: &Entry<'_>) {
    if let Some(t) = e.listener_traffic {
        t.count(e.status);
    }
    if let Some(t) = e.route_traffic {
        t.count(e.status);
    }
    if let Some(m) = e.member {
        m.finished(
            e.status,
            e.duration,
            (e.bytes_in, e.bytes_out),
            crate::clock::now(),
        );
    }
}
