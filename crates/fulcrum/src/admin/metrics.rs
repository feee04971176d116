//! `GET /metrics`: the Prometheus (OpenMetrics text) exposition, built at scrape time
//! from the atomics the data path updates. Nothing here is touched per request: the
//! families are encoded straight from each backend's [`Stats`](crate::stats::Stats)
//! and each pool's `PoolState`, so a scrape costs the scraper, not the proxy.

mod backends;
mod discovery;
mod edge;
mod quic;
mod tls;
mod traffic;
mod udp;

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::Frame;
use tokio::sync::mpsc;

use fulcrum_core::health::State;
use prometheus_client::collector::Collector as PromCollector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeLabelValue, EncodeMetric, LabelSetEncoder,
    LabelValueEncoder, MetricEncoder,
};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry as PromRegistry, Unit};

use super::process::{self, Process};
use crate::state::Shared;
use crate::state::{byte_state, Member, Pool, Registry, Snapshot};

/// The `Content-Type` of the exposition.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Encodes every family on each scrape.
#[derive(Debug)]
struct Collector {
    shared: Shared,
    registry: Arc<Registry>,
    process: Arc<Process>,
}

/// A prometheus-client registry holding Fulcrum's one collector.
pub fn registry(shared: Shared, registry: Arc<Registry>, process: Arc<Process>) -> PromRegistry {
    let mut r = PromRegistry::default();
    r.register_collector(Box::new(Collector {
        shared,
        registry,
        process,
    }));
    r
}

/// Bytes handed to the response at a time.
const CHUNK: usize = 64 * 1024;

/// The exposition as a response body, encoded on a blocking thread in chunks of
/// about 64 KiB: a scrape of 10,000 backends (tens of MB of text) neither holds the
/// whole text in memory nor stalls the health checks and signals on the main thread.
/// A client that goes away stops the encoding.
pub fn stream(r: Arc<PromRegistry>) -> ChannelBody {
    let (tx, rx) = mpsc::channel(2);
    tokio::task::spawn_blocking(move || {
        let mut w = Chunks {
            buf: String::with_capacity(CHUNK + 1024),
            tx,
        };
        if prometheus_client::encoding::text::encode(&mut w, &r).is_ok() {
            let _ = w.send();
        }
    });
    ChannelBody(rx)
}

/// Collects encoded text and sends it on in chunks.
struct Chunks {
    buf: String,
    tx: mpsc::Sender<Bytes>,
}

impl Chunks {
    fn send(&mut self) -> fmt::Result {
        let chunk = std::mem::replace(&mut self.buf, String::with_capacity(CHUNK + 1024));
        self.tx
            .blocking_send(Bytes::from(chunk))
            .map_err(|_| fmt::Error)
    }
}

impl fmt::Write for Chunks {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.buf.push_str(s);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(())
    }
}

/// A response body fed by a channel.
pub struct ChannelBody(mpsc::Receiver<Bytes>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.0.poll_recv(cx).map(|c| c.map(|b| Ok(Frame::data(b))))
    }
}

/// The labels of one series: pool, backend, and one more (class, kind, state,
/// result) where they apply. Borrowed, so a scrape of 10,000 backends copies no
/// names; the derive macro does not take lifetimes, hence the hand-written impl.
#[derive(Clone, Copy, Default)]
struct Labels<'a> {
    /// `listener` or `route` (by index), for the traffic families.
    front: Option<(&'static str, &'a str)>,
    pool: Option<&'a str>,
    backend: Option<&'a str>,
    extra: Option<(&'static str, &'a str)>,
}

impl<'a> Labels<'a> {
    fn pool(pool: &'a str) -> Self {
        Self {
            pool: Some(pool),
            ..Self::default()
        }
    }

    fn backend(pool: &'a str, backend: &'a str) -> Self {
        Self {
            pool: Some(pool),
            backend: Some(backend),
            ..Self::default()
        }
    }

    fn front(name: &'static str, value: &'a str) -> Self {
        Self {
            front: Some((name, value)),
            ..Self::default()
        }
    }

    fn with(self, name: &'static str, value: &'a str) -> Self {
        Self {
            extra: Some((name, value)),
            ..self
        }
    }
}

impl EncodeLabelSet for Labels<'_> {
    fn encode(&self, encoder: LabelSetEncoder<'_>) -> fmt::Result {
        let mut pairs: [(&str, Escaped<'_>); 4] = Default::default();
        let mut n = 0;
        for (k, v) in [
            self.front,
            self.pool.map(|p| ("pool", p)),
            self.backend.map(|b| ("backend", b)),
            self.extra,
        ]
        .into_iter()
        .flatten()
        {
            pairs[n] = (k, Escaped(v));
            n += 1;
        }
        let set: &[(&str, Escaped<'_>)] = pairs.get(..n).unwrap_or_default();
        set.encode(encoder)
    }
}

/// A label value with `\`, `"` and newlines escaped (pool names and backend
/// addresses come from the config file, which may quote anything).
#[derive(Clone, Copy, Default)]
struct Escaped<'a>(&'a str);

impl EncodeLabelValue for Escaped<'_> {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> fmt::Result {
        for c in self.0.chars() {
            match c {
                '\\' => encoder.write_str("\\\\")?,
                '"' => encoder.write_str("\\\"")?,
                '\n' => encoder.write_str("\\n")?,
                c => encoder.write_char(c)?,
            }
        }
        Ok(())
    }
}

/// One family: its descriptor, then one sample per label set `each` yields.
fn family(
    enc: &mut DescriptorEncoder<'_>,
    (name, help, unit, kind): (&str, &str, Option<Unit>, MetricType),
    each: impl FnOnce(MetricEncoder<'_>) -> fmt::Result,
) -> fmt::Result {
    each(enc.encode_descriptor(name, help, unit.as_ref(), kind)?)
}

fn counter(m: &mut MetricEncoder<'_>, labels: &Labels<'_>, v: u64) -> fmt::Result {
    ConstCounter::new(v).encode(m.encode_family(labels)?)
}

fn gauge(m: &mut MetricEncoder<'_>, labels: &Labels<'_>, v: i64) -> fmt::Result {
    ConstGauge::new(v).encode(m.encode_family(labels)?)
}

/// Every backend of every pool, with its member.
fn backends(snap: &Snapshot) -> impl Iterator<Item = (&Pool, usize, &Member)> {
    snap.pools
        .iter()
        .flat_map(|p| p.members.iter().enumerate().map(move |(i, m)| (p, i, &**m)))
}

fn as_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl PromCollector for Collector {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> fmt::Result {
        let snap = self.shared.load_full();
        backends::encode(&mut enc, &snap)?;
        encode_pools(&mut enc, &snap, &self.registry)?;
        discovery::encode(&mut enc, &self.registry)?;
        traffic::encode_traffic(&mut enc, &snap)?;
        udp::encode(&mut enc, &snap)?;
        edge::encode(&mut enc, &snap)?;
        tls::encode(&mut enc, &snap)?;
        quic::encode(&mut enc, &snap)?;
        encode_process(&mut enc, &snap, &self.process)
    }
}

fn encode_pools(enc: &mut DescriptorEncoder<'_>, snap: &Snapshot, reg: &Registry) -> fmt::Result {
    use MetricType::{Counter, Gauge};
    type Read = fn(&Pool) -> Option<u64>;
    let gauges: [(&str, &str, Read); 8] = [
        (
            "fulcrum_pool_members",
            "Members of the pool: its literal backends, and what names, SRV records, a backends file and the admin API add.",
            |p| Some(p.members.len() as u64),
        ),
        (
            "fulcrum_pool_in_flight_requests",
            "Requests in flight to the pool (counted against max_requests).",
            |p| Some(u64::from(p.state.requests.load(Ordering::Relaxed))),
        ),
        (
            "fulcrum_pool_max_requests",
            "The pool's max_requests (absent when unlimited).",
            |p| (p.limits.max_requests != u32::MAX).then_some(u64::from(p.limits.max_requests)),
        ),
        (
            "fulcrum_pool_busy_connections",
            "Requests holding an upstream connection (counted against max_connections).",
            |p| Some(u64::from(p.state.connections.load(Ordering::Relaxed))),
        ),
        (
            "fulcrum_pool_max_connections",
            "The pool's max_connections (absent when unlimited).",
            |p| {
                (p.limits.max_connections != u32::MAX)
                    .then_some(u64::from(p.limits.max_connections))
            },
        ),
        (
            "fulcrum_pool_pending_requests",
            "Requests waiting for a connection slot.",
            |p| Some(u64::from(p.state.pending.load(Ordering::Relaxed))),
        ),
        (
            "fulcrum_pool_max_pending",
            "The pool's max_pending (absent when unlimited).",
            |p| (p.limits.max_connections != u32::MAX).then_some(u64::from(p.limits.max_pending)),
        ),
        (
            "fulcrum_pool_panic",
            "1 while the pool is in panic mode.",
            |p| Some(u64::from(p.state.panic.load(Ordering::Relaxed))),
        ),
    ];
    for (name, help, read) in gauges {
        family(enc, (name, help, None, Gauge), |mut m| {
            for p in &snap.pools {
                if let Some(v) = read(p) {
                    gauge(&mut m, &Labels::pool(&p.name), as_i64(v))?;
                }
            }
            Ok(())
        })?;
    }
    // Draining members' in-flight requests, including backends a reload removed
    // (out of the snapshot, still finishing their work).
    let mut depth: BTreeMap<&str, u64> = snap.pools.iter().map(|p| (&*p.name, 0)).collect();
    for (p, _, b) in backends(snap) {
        if byte_state(b.shown.load(Ordering::Relaxed)) == State::Draining {
            *depth.entry(&p.name).or_default() +=
                u64::from(b.state.in_flight.load(Ordering::Relaxed));
        }
    }
    let removed: Vec<Arc<Member>> = reg
        .members()
        .into_iter()
        .filter(|m| m.removed.load(Ordering::Relaxed))
        .collect();
    for m in &removed {
        *depth.entry(&m.pool).or_default() += u64::from(m.state.in_flight.load(Ordering::Relaxed));
    }
    family(
        enc,
        (
            "fulcrum_pool_drain_depth_requests",
            "Requests still in flight on draining backends.",
            None,
            Gauge,
        ),
        |mut m| {
            for (pool, n) in &depth {
                gauge(&mut m, &Labels::pool(pool), as_i64(*n))?;
            }
            Ok(())
        },
    )?;
    let counters: [(&str, &str, Read); 5] = [
        ("fulcrum_pool_retries", "Retries made.", |p| {
            Some(p.state.retries.load(Ordering::Relaxed))
        }),
        (
            "fulcrum_pool_retry_budget_refusals",
            "Retries the retry budget refused.",
            |p| Some(p.state.budget_refused.load(Ordering::Relaxed)),
        ),
        (
            "fulcrum_pool_circuit_refusals",
            "Requests refused by a circuit limit (503 with Retry-After).",
            |p| Some(p.state.overloaded.load(Ordering::Relaxed)),
        ),
        (
            "fulcrum_pool_panics",
            "Times the pool entered panic mode.",
            |p| Some(p.state.panics.load(Ordering::Relaxed)),
        ),
        (
            "fulcrum_pool_hash_key_missing",
            "Requests to a consistent-hashing pool without the hash key (picked at random).",
            |p| Some(p.state.hash_missing.load(Ordering::Relaxed)),
        ),
    ];
    for (name, help, read) in counters {
        family(enc, (name, help, None, Counter), |mut m| {
            for p in &snap.pools {
                if let Some(v) = read(p) {
                    counter(&mut m, &Labels::pool(&p.name), v)?;
                }
            }
            Ok(())
        })?;
    }
    Ok(())
}

fn encode_process(enc: &mut DescriptorEncoder<'_>, snap: &Snapshot, pr: &Process) -> fmt::Result {
    use MetricType::{Counter, Gauge, Info};
    let none = Labels::default();
    let (ok, failed) = pr.reloads();
    family(
        enc,
        (
            "fulcrum_config_reloads",
            "Config reloads (SIGHUP, POST /api/reload), by result: ok or failed.",
            None,
            Counter,
        ),
        |mut m| {
            counter(&mut m, &none.with("result", "ok"), ok)?;
            counter(&mut m, &none.with("result", "failed"), failed)
        },
    )?;
    family(
        enc,
        (
            "fulcrum_config_generation",
            "Generation of the config serving now (1 at start, +1 per reload or weight change).",
            None,
            Gauge,
        ),
        |m| ConstGauge::new(as_i64(snap.generation)).encode(m),
    )?;
    let dropped = [
        (
            "fulcrum_access_log_dropped_lines",
            "Access log lines dropped because the writer could not keep up (or a write failed).",
            pr.log().map_or(0, |l| l.dropped()),
        ),
        (
            "fulcrum_spans_dropped",
            "Spans dropped: the export queue was full, or the collector did not take them.",
            pr.spans().map_or(0, |s| s.dropped()),
        ),
    ];
    for (name, help, n) in dropped {
        family(enc, (name, help, None, Counter), |m| {
            ConstCounter::new(n).encode(m)
        })?;
    }
    family(
        enc,
        (
            "fulcrum_build",
            "This binary: its version, git commit and build date.",
            None,
            Info,
        ),
        |mut m| {
            m.encode_info(&[
                ("version", crate::VERSION),
                ("commit", crate::COMMIT),
                ("date", crate::BUILD_DATE),
            ])
        },
    )?;
    let sha = pr.config_sha256();
    family(
        enc,
        (
            "fulcrum_config",
            "The loaded config file: sha256 of its text (empty for the embedded config).",
            None,
            Info,
        ),
        |mut m| m.encode_info(&none.with("sha256", &sha)),
    )?;
    let facts = [
        (
            "fulcrum_process_resident_memory",
            "Resident memory (VmRSS).",
            Some(Unit::Bytes),
            process::resident_bytes(),
        ),
        (
            "fulcrum_process_open_fds",
            "Open file descriptors.",
            None,
            process::open_fds(),
        ),
        (
            "fulcrum_process_max_fds",
            "Limit on open file descriptors.",
            None,
            process::max_fds(),
        ),
    ];
    for (name, help, unit, v) in facts {
        if let Some(v) = v {
            family(enc, (name, help, unit, Gauge), |m| {
                ConstGauge::new(as_i64(v)).encode(m)
            })?;
        }
    }
    family(
        enc,
        (
            "fulcrum_process_uptime",
            "Time since the process started.",
            Some(Unit::Seconds),
            Gauge,
        ),
        |m| ConstGauge::new(pr.uptime()).encode(m),
    )
}
