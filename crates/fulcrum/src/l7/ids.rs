//! A request's request ID and trace context, decided once for every client codec
//! before the request view is built: kept from the client or made up here, then
//! sent to the backend (in place of the client's fields), logged, and the request
//! ID returned to the client.

use fulcrum_core::config::TracingConfig;
use fulcrum_core::forward::{
    hex_into, same_name, sampled_by_ratio, valid_request_id, Identity, TraceParent, MAX_REQUEST_ID,
    TRACEPARENT_LEN,
};

use crate::access_log::Entry;
use crate::spans::{Record, SpanIds};
use crate::state::Listener;
use crate::worker::Worker;

/// A request's IDs, held by its codec for as long as the request view borrows them.
pub struct Ids {
    rid: [u8; MAX_REQUEST_ID],
    rid_len: usize,
    header: Option<Box<str>>,
    traceparent: [u8; TRACEPARENT_LEN],
    trace_hex: [u8; 32],
    /// The request's span, when there is trace context.
    pub span: Option<SpanIds>,
}

impl Default for Ids {
    fn default() -> Self {
        Self {
            rid: [0; MAX_REQUEST_ID],
            rid_len: 0,
            header: None,
            traceparent: [0; TRACEPARENT_LEN],
            trace_hex: [0; 32],
            span: None,
        }
    }
}

impl Ids {
    /// Decides the IDs of a request with `fields` on listener `l`, with `tracing`
    /// the config's `[tracing]`.
    pub fn new<'f, I>(w: &Worker, l: &Listener, tracing: Option<&TracingConfig>, fields: I) -> Self
    where
        I: Iterator<Item = (&'f [u8], &'f [u8])> + Clone,
    {
        let mut ids = Self::default();
        if let Some((header, trust)) = &l.request_id {
            let incoming = fields
                .clone()
                .find(|(n, _)| same_name(n, header.as_bytes()))
                .map(|(_, v)| v)
                .filter(|v| *trust && valid_request_id(v));
            match incoming {
                Some(v) => {
                    ids.rid[..v.len()].copy_from_slice(v);
                    ids.rid_len = v.len();
                }
                None => {
                    let random = [w.random_u64().to_be_bytes(), w.random_u64().to_be_bytes()];
                    hex_into(&mut ids.rid[..32], &random.concat());
                    ids.rid_len = 32;
                }
            }
            ids.header = Some(header.clone());
        }
        if let Some(t) = tracing {
            let parent = fields
                .clone()
                .find(|(n, _)| n.eq_ignore_ascii_case(b"traceparent"))
                .and_then(|(_, v)| TraceParent::parse(v));
            let span_id = nonzero(w.random_u64()).to_be_bytes();
            let tp = parent.unwrap_or_else(|| {
                let mut trace_id = [0u8; 16];
                trace_id[..8].copy_from_slice(&nonzero(w.random_u64()).to_be_bytes());
                trace_id[8..].copy_from_slice(&w.random_u64().to_be_bytes());
                TraceParent {
                    trace_id,
                    parent_id: span_id,
                    flags: 0,
                }
            });
            // The caller's decision stands; a new trace is sampled by its ID.
            let sampled = match parent {
                Some(p) => p.sampled(),
                None => sampled_by_ratio(&tp.trace_id, t.sample.0),
            };
            ids.traceparent = tp.child(span_id, sampled);
            hex_into(&mut ids.trace_hex, &tp.trace_id);
            ids.span = Some(SpanIds {
                trace_id: tp.trace_id,
                span_id,
                parent_id: parent.map(|p| p.parent_id),
                sampled: sampled && t.otlp.is_some(),
            });
        }
        ids
    }

    /// Marks `e` for a span when this request is sampled.
    pub fn begin(&self, e: &mut Entry<'_>) {
        e.span = self.span.filter(|s| s.sampled);
        if e.span.is_some() {
            e.tries = Some(Vec::new());
        }
    }

    /// The request ID (empty when the listener sets none).
    pub fn request_id(&self) -> &str {
        std::str::from_utf8(self.rid.get(..self.rid_len).unwrap_or_default()).unwrap_or_default()
    }

    /// The trace ID in hex (empty without trace context).
    pub fn trace_id(&self) -> &str {
        if self.span.is_none() {
            return "";
        }
        std::str::from_utf8(&self.trace_hex).unwrap_or_default()
    }

    /// The request ID field for the backend, replacing any the client sent.
    pub fn request_id_field(&self) -> Identity<'_> {
        let header = self.header.as_deref()?;
        Some((header.as_bytes(), Some(self.request_id().as_bytes())))
    }

    /// The `traceparent` for the backend, naming Fulcrum's span as the parent.
    pub fn traceparent_field(&self) -> Identity<'_> {
        self.span?;
        Some((b"traceparent", Some(&self.traceparent)))
    }
}

/// Hands the span of a finished sampled request over (nothing for others).
pub fn finish(w: &Worker, e: &mut Entry<'_>) {
    let Some(ids) = e.span.take() else { return };
    let end_ns = crate::clock::unix_ns();
    let duration = u64::try_from(e.duration.as_nanos()).unwrap_or(u64::MAX);
    w.spans.record(Record {
        trace_id: ids.trace_id,
        span_id: ids.span_id,
        parent_id: ids.parent_id,
        start_ns: end_ns.saturating_sub(duration),
        end_ns,
        method: e.method.into(),
        target: e.path.into(),
        host: e.host.into(),
        route: match (e.route_name, e.route) {
            (Some(n), _) => n.into(),
            (None, Some(i)) => i.to_string(),
            (None, None) => String::new(),
        },
        pool: e.pool.into(),
        backend: e.backend,
        status: e.status,
        attempts: e.attempts,
        upstream_ns: e
            .upstream
            .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
        error: e.error.clone(),
        tries: e.tries.take().unwrap_or_default(),
    });
}

/// A random ID must not be all zero (the specification's "invalid").
fn nonzero(x: u64) -> u64 {
    x.max(1)
}
