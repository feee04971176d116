//! What `GET /api/pools` shows of a pool and its backends. Typed and serialized
//! straight to bytes: 10,000 backends make about 4 MB of JSON, and a tree of
//! `serde_json::Value`s for them would cost ten times that while it is built.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use fulcrum_core::balance::BackendKey;
use serde::Serialize;

use crate::state::Pool;

/// One pool.
#[derive(Serialize)]
pub struct PoolView<'a> {
    name: &'a str,
    in_flight: u32,
    max_requests: Option<u32>,
    busy_connections: u32,
    max_connections: Option<u32>,
    pending: u32,
    panic: bool,
    hash_key_missing: u64,
    backends: Vec<BackendView<'a>>,
}

/// One backend.
#[derive(Serialize)]
struct BackendView<'a> {
    /// The address as written in the config (its key).
    address: &'a str,
    /// What it resolved to.
    resolved: String,
    /// The name, SRV record, file or `admin-api` it came from; null for a
    /// literal address in the config.
    source: Option<&'a str>,
    /// Serves only while no other member is up (a higher SRV priority).
    backup: bool,
    state: &'static str,
    weight: WeightView,
    in_flight: u32,
    totals: Totals,
    last_minute: LastMinute,
}

#[derive(Serialize)]
struct WeightView {
    /// From its source: the config file, an SRV record, a backends file.
    configured: Option<u32>,
    /// Set through the API, if any.
    #[serde(rename = "override")]
    set: Option<u32>,
    /// The weight in use × the slow-start ramp.
    effective: u64,
}

#[derive(Serialize)]
struct Totals {
    requests: u64,
    by_class: ByClass,
    /// Failed attempts (a retried request may count more than one).
    errors: u64,
    errors_by_kind: ByKind,
    ejections: u64,
}

#[derive(Serialize)]
struct ByClass {
    #[serde(rename = "1xx")]
    c1: u64,
    #[serde(rename = "2xx")]
    c2: u64,
    #[serde(rename = "3xx")]
    c3: u64,
    #[serde(rename = "4xx")]
    c4: u64,
    #[serde(rename = "5xx")]
    c5: u64,
}

#[derive(Serialize)]
struct ByKind {
    connect: u64,
    reset: u64,
    timeout: u64,
    #[serde(rename = "5xx")]
    status_5xx: u64,
}

#[derive(Serialize)]
struct LastMinute {
    requests: u64,
    errors: u64,
    error_rate: f64,
    p50_ms: Option<f64>,
    p95_ms: Option<f64>,
}

impl<'a> PoolView<'a> {
    /// The view of `p` at `now`, with the API's weight overrides.
    pub fn new(p: &'a Pool, overrides: &HashMap<(String, BackendKey), u32>, now: Duration) -> Self {
        let limit = |v: u32| (v != u32::MAX).then_some(v);
        let ms = |s: Option<f64>| s.map(|s| (s * 1e6).round() / 1e3);
        let backends = p
            .backends
            .iter()
            .zip(&p.members)
            .enumerate()
            .map(|(i, (b, m))| {
                let (state, ejections) = {
                    let h = m.health();
                    (h.state(now), h.ejections_total())
                };
                let r = m.stats.requests();
                let e = m.stats.errors();
                let recent = m.stats.recent(now);
                let set = if overrides.is_empty() {
                    None
                } else {
                    overrides.get(&(p.name.clone(), m.key.clone())).copied()
                };
                BackendView {
                    address: &m.key.0,
                    resolved: b.addr.to_string(),
                    source: m.source.as_deref(),
                    backup: p.backups.get(i).copied().unwrap_or(false),
                    state: state.as_str(),
                    weight: WeightView {
                        configured: p.base_weights.get(i).copied(),
                        set,
                        effective: u64::from(b.weight.get()) * u64::from(b.state.ramp_permille())
                            / 1000,
                    },
                    in_flight: b.state.in_flight.load(Ordering::Relaxed),
                    totals: Totals {
                        requests: r.iter().sum(),
                        by_class: ByClass {
                            c1: r[0],
                            c2: r[1],
                            c3: r[2],
                            c4: r[3],
                            c5: r[4],
                        },
                        errors: e.iter().sum(),
                        errors_by_kind: ByKind {
                            connect: e[0],
                            reset: e[1],
                            timeout: e[2],
                            status_5xx: e[3],
                        },
                        ejections,
                    },
                    last_minute: LastMinute {
                        requests: recent.requests,
                        errors: recent.errors,
                        error_rate: recent.error_rate(),
                        p50_ms: ms(recent.p50),
                        p95_ms: ms(recent.p95),
                    },
                }
            })
            .collect();
        Self {
            name: &p.name,
            in_flight: p.state.requests.load(Ordering::Relaxed),
            max_requests: limit(p.limits.max_requests),
            busy_connections: p.state.connections.load(Ordering::Relaxed),
            max_connections: limit(p.limits.max_connections),
            pending: p.state.pending.load(Ordering::Relaxed),
            panic: p.state.panic.load(Ordering::Relaxed),
            hash_key_missing: p.state.hash_missing.load(Ordering::Relaxed),
            backends,
        }
    }
}
