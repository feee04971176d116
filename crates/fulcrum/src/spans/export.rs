//! The exporter thread: batches spans, encodes them as an OTLP
//! `ExportTraceServiceRequest` and POSTs it to `/v1/traces` over plain HTTP/1.1,
//! with short timeouts so a dead collector costs dropped spans, never memory.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    span, status, ResourceSpans, ScopeSpans, Span, Status,
};
use prost::Message as _;

use super::{Record, Target};

/// Most spans in one request to the collector.
const BATCH: usize = 512;
/// A batch leaves at least this often.
const EVERY: Duration = Duration::from_secs(1);
/// Connect, write and read limit for one export.
const TIMEOUT: Duration = Duration::from_secs(5);

pub(super) fn run(rx: &Receiver<Record>, target: &Arc<Mutex<Option<Target>>>, dropped: &AtomicU64) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut since = Instant::now();
    let mut failing = false;
    loop {
        match rx.recv_timeout(EVERY.saturating_sub(since.elapsed())) {
            Ok(r) => batch.push(r),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        if batch.len() < BATCH && since.elapsed() < EVERY {
            continue;
        }
        since = Instant::now();
        if batch.is_empty() {
            continue;
        }
        let t = target.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let Some(t) = t else {
            batch.clear();
            continue;
        };
        let body = encode(&t.service, &batch).encode_to_vec();
        let n = batch.len();
        batch.clear();
        match post(&t, &body) {
            Ok(()) => failing = false,
            Err(error) => {
                dropped.fetch_add(n as u64, Ordering::Relaxed);
                if !failing {
                    tracing::warn!(spans = n, endpoint = %format!("{}:{}{}", t.url.host, t.url.port, t.url.path), %error, "span export failed; spans dropped");
                }
                failing = true;
            }
        }
    }
}

/// One POST; `Ok` on a 2xx.
fn post(t: &Target, body: &[u8]) -> std::io::Result<()> {
    let addr = (t.url.host.as_str(), t.url.port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other("no address"))?;
    let mut s = TcpStream::connect_timeout(&addr, TIMEOUT)?;
    s.set_write_timeout(Some(TIMEOUT))?;
    s.set_read_timeout(Some(TIMEOUT))?;
    let host = if t.url.host.contains(':') {
        format!("[{}]:{}", t.url.host, t.url.port)
    } else {
        format!("{}:{}", t.url.host, t.url.port)
    };
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-protobuf\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        t.url.path,
        body.len()
    );
    s.write_all(head.as_bytes())?;
    s.write_all(body)?;
    // The status line is enough; the rest is read so the collector sees a clean close.
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    while !reply.windows(4).any(|w| w == b"\r\n\r\n") && reply.len() < 64 * 1024 {
        match s.read(&mut buf)? {
            0 => break,
            n => reply.extend_from_slice(buf.get(..n).unwrap_or_default()),
        }
    }
    let status = reply.get(9..12).unwrap_or_default();
    if status.first() == Some(&b'2') {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "collector answered {}",
            String::from_utf8_lossy(reply.split(|b| *b == b'\r').next().unwrap_or_default())
        )))
    }
}

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn text(key: &str, value: &str) -> KeyValue {
    kv(key, any_value::Value::StringValue(value.into()))
}

fn int(key: &str, value: u64) -> KeyValue {
    kv(
        key,
        any_value::Value::IntValue(i64::try_from(value).unwrap_or(i64::MAX)),
    )
}

/// The OTLP request for `spans`: a server span per request (HTTP semantic
/// conventions' names) and a client span per upstream attempt.
pub(super) fn encode(service: &str, spans: &[Record]) -> ExportTraceServiceRequest {
    let mut out = Vec::with_capacity(spans.len() * 2);
    for r in spans {
        let mut attributes = vec![
            text("http.request.method", &r.method),
            text("url.path", &r.target),
            text("server.address", &r.host),
            int("http.response.status_code", u64::from(r.status)),
            text("http.route", &r.route),
            text("fulcrum.pool", &r.pool),
            int("fulcrum.attempts", u64::from(r.attempts)),
        ];
        if let Some(b) = r.backend {
            attributes.push(text("fulcrum.backend", &b.to_string()));
        }
        if let Some(ns) = r.upstream_ns {
            attributes.push(int("fulcrum.upstream_ns", ns));
        }
        let failed = r.status >= 500 || r.error.is_some() && r.status == 0;
        out.push(Span {
            trace_id: r.trace_id.to_vec(),
            span_id: r.span_id.to_vec(),
            parent_span_id: r.parent_id.map(|p| p.to_vec()).unwrap_or_default(),
            name: if r.route.is_empty() {
                r.method.clone()
            } else {
                format!("{} {}", r.method, r.route)
            },
            kind: span::SpanKind::Server as i32,
            start_time_unix_nano: r.start_ns,
            end_time_unix_nano: r.end_ns,
            attributes,
            status: Some(Status {
                code: if failed {
                    status::StatusCode::Error as i32
                } else {
                    status::StatusCode::Unset as i32
                },
                message: r.error.clone().unwrap_or_default(),
            }),
            ..Default::default()
        });
        for (i, t) in r.tries.iter().enumerate() {
            out.push(Span {
                trace_id: r.trace_id.to_vec(),
                span_id: t.span_id.to_vec(),
                parent_span_id: r.span_id.to_vec(),
                name: format!("{} attempt {}", r.method, i + 1),
                kind: span::SpanKind::Client as i32,
                start_time_unix_nano: t.start_ns,
                end_time_unix_nano: t.end_ns,
                attributes: vec![
                    text("server.address", &t.backend.ip().to_string()),
                    int("server.port", u64::from(t.backend.port())),
                    int("fulcrum.attempt", i as u64 + 1),
                ],
                status: Some(Status {
                    code: if t.error.is_some() {
                        status::StatusCode::Error as i32
                    } else {
                        status::StatusCode::Unset as i32
                    },
                    message: t.error.clone().unwrap_or_default(),
                }),
                ..Default::default()
            });
        }
    }
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![text("service.name", service)],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "fulcrum".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    ..Default::default()
                }),
                spans: out,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}
