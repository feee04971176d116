//! The access log: one line per request, written by a thread of its own so a slow
//! terminal or disk never stalls a worker.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fulcrum_core::config::{AccessLogConfig, AccessLogFormat};

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
    /// Why it failed, if it did.
    pub error: Option<String>,
}

/// A handle to the log thread; cloned into every worker.
#[derive(Clone, Debug)]
pub struct AccessLog {
    tx: Option<mpsc::Sender<String>>,
    format: AccessLogFormat,
}

impl AccessLog {
    /// Starts the log thread for `cfg` (none when disabled).
    pub fn start(cfg: &AccessLogConfig) -> std::io::Result<Self> {
        if !cfg.enabled {
            return Ok(Self {
                tx: None,
                format: cfg.format,
            });
        }
        let mut out: Box<dyn Write + Send> = match cfg.path.as_str() {
            "stdout" => Box::new(std::io::stdout()),
            "stderr" => Box::new(std::io::stderr()),
            path => Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            ),
        };
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || {
                let mut buf = Vec::with_capacity(64 * 1024);
                while let Ok(line) = rx.recv() {
                    buf.extend_from_slice(line.as_bytes());
                    while let Ok(more) = rx.try_recv() {
                        buf.extend_from_slice(more.as_bytes());
                        if buf.len() > 60 * 1024 {
                            break;
                        }
                    }
                    if out.write_all(&buf).and_then(|()| out.flush()).is_err() {
                        return;
                    }
                    buf.clear();
                }
            })?;
        Ok(Self {
            tx: Some(tx),
            format: cfg.format,
        })
    }

    /// Whether lines are written at all (callers skip building entries otherwise).
    pub fn enabled(&self) -> bool {
        self.tx.is_some()
    }

    /// Writes one entry.
    pub fn write(&self, e: &Entry<'_>) {
        let Some(tx) = &self.tx else { return };
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        let client = e.client.map(|c| c.to_string()).unwrap_or_default();
        let backend = e.backend.map(|b| b.to_string()).unwrap_or_default();
        let ms = e.duration.as_secs_f64() * 1000.0;
        let up_ms = e.upstream.map(|d| d.as_secs_f64() * 1000.0);
        let line = match self.format {
            AccessLogFormat::Json => {
                let v = serde_json::json!({
                    "ts": ts, "listener": e.listener, "client": client, "proto": e.proto,
                    "method": e.method, "host": e.host, "path": e.path, "status": e.status,
                    "route": e.route, "pool": e.pool, "backend": backend, "attempts": e.attempts,
                    "bytes_in": e.bytes_in, "bytes_out": e.bytes_out,
                    "duration_ms": ms, "upstream_ms": up_ms, "error": e.error,
                });
                format!("{v}\n")
            }
            AccessLogFormat::Text => format!(
                "{ts:.3} {} {client} \"{} {} {}\" {} {} route={} pool={} backend={} attempts={} in={} out={} {ms:.3}ms upstream={} error={}\n",
                e.listener,
                e.method,
                e.path,
                e.proto,
                e.host,
                e.status,
                e.route.map_or("-".to_owned(), |r| r.to_string()),
                if e.pool.is_empty() { "-" } else { e.pool },
                if backend.is_empty() { "-" } else { &backend },
                e.attempts,
                e.bytes_in,
                e.bytes_out,
                up_ms.map_or("-".to_owned(), |u| format!("{u:.3}ms")),
                e.error.as_deref().unwrap_or("-").replace(' ', "_"),
            ),
        };
        let _ = tx.send(line);
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
