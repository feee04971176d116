//! Span export: one span per sampled request, with a child per upstream attempt,
//! sent over OTLP/HTTP (protobuf) by a thread of its own. Workers hand finished
//! spans over a bounded queue and never wait: past it spans are dropped and
//! counted. Batches leave every second or at 512 spans.

mod export;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use fulcrum_core::config::TracingConfig;
use fulcrum_core::forward::HttpUrl;

/// Spans waiting for the exporter at most.
const QUEUE: usize = 8192;

/// A request's place in its trace: Fulcrum's span for it.
#[derive(Clone, Copy, Debug)]
pub struct SpanIds {
    /// The trace.
    pub trace_id: [u8; 16],
    /// This span.
    pub span_id: [u8; 8],
    /// The caller's span, when the request brought a `traceparent`.
    pub parent_id: Option<[u8; 8]>,
    /// Exported (and `sampled` in the `traceparent` sent on).
    pub sampled: bool,
}

/// One upstream attempt of a sampled request.
#[derive(Clone, Debug)]
pub struct Try {
    /// The backend tried.
    pub backend: SocketAddr,
    /// Its span ID.
    pub span_id: [u8; 8],
    /// Start and end, Unix nanoseconds.
    pub start_ns: u64,
    /// End, Unix nanoseconds.
    pub end_ns: u64,
    /// Why it failed, if it did.
    pub error: Option<String>,
}

/// A finished request's span, as a worker hands it over.
#[derive(Clone, Debug, Default)]
pub struct Record {
    /// The trace.
    pub trace_id: [u8; 16],
    /// This span.
    pub span_id: [u8; 8],
    /// The caller's span.
    pub parent_id: Option<[u8; 8]>,
    /// Start, Unix nanoseconds.
    pub start_ns: u64,
    /// End, Unix nanoseconds.
    pub end_ns: u64,
    /// Request method.
    pub method: String,
    /// Request target.
    pub target: String,
    /// Host.
    pub host: String,
    /// The route's name or index.
    pub route: String,
    /// Pool.
    pub pool: String,
    /// The backend that answered (or was last tried).
    pub backend: Option<SocketAddr>,
    /// Status sent to the client.
    pub status: u16,
    /// Backends tried.
    pub attempts: u32,
    /// Response head time.
    pub upstream_ns: Option<u64>,
    /// Why it failed.
    pub error: Option<String>,
    /// The upstream attempts.
    pub tries: Vec<Try>,
}

/// The process's span exporter; cloned into every worker.
#[derive(Clone, Debug)]
pub struct Spans {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    tx: SyncSender<Record>,
    target: Arc<Mutex<Option<Target>>>,
    /// Spans dropped: the queue was full, or their export failed.
    dropped: Arc<AtomicU64>,
}

/// Where spans go, and as which service.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Target {
    url: HttpUrl,
    service: String,
}

fn target(cfg: Option<&TracingConfig>) -> Option<Target> {
    let cfg = cfg?;
    let mut url = fulcrum_core::forward::parse_http_url(cfg.otlp.as_deref()?).ok()?;
    if url.path == "/" {
        "/v1/traces".clone_into(&mut url.path);
    }
    Some(Target {
        url,
        service: cfg.service_name.clone(),
    })
}

impl Spans {
    /// Starts the exporter thread for `cfg` (idle while it names no endpoint).
    pub fn start(cfg: Option<&TracingConfig>) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        let target = Arc::new(Mutex::new(target(cfg)));
        let dropped = Arc::new(AtomicU64::new(0));
        let (t, d) = (target.clone(), dropped.clone());
        std::thread::Builder::new()
            .name("span-export".into())
            .spawn(move || export::run(&rx, &t, &d))?;
        Ok(Self {
            inner: Arc::new(Inner {
                tx,
                target,
                dropped,
            }),
        })
    }

    /// Takes a reloaded `[tracing]`.
    pub fn reconfigure(&self, cfg: Option<&TracingConfig>) {
        *self.inner.target.lock().unwrap_or_else(|e| e.into_inner()) = target(cfg);
    }

    /// Hands a finished span over; dropped (and counted) when the queue is full.
    pub fn record(&self, r: Record) {
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
            self.inner.tx.try_send(r)
        {
            self.inner.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Spans dropped so far.
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }
}
