//! The JSON API under `/api/`: status, pools and backends, drain and undrain,
//! weight overrides, reload. Bad input gets a 4xx with `{"error": "..."}` naming
//! what was wrong.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use fulcrum_core::health::State;
use http::StatusCode;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde_json::{json, Value};

use super::view::PoolView;
use super::{error, json, Admin, Reply};
use crate::clock;
use crate::reload::ReloadError;
use crate::state::{Member, Pool, Snapshot, Spec};
use fulcrum_core::balance::BackendKey;

/// Highest weight the API accepts.
const MAX_WEIGHT: u64 = 1_000_000;
/// Largest request body the API reads.
const MAX_BODY: usize = 64 * 1024;
/// How often `?wait=true` looks at a drain.
const DRAIN_POLL: Duration = Duration::from_millis(25);

/// A refusal: the status and the message sent as `{"error": ...}`.
#[derive(Debug)]
pub(super) struct Refusal(StatusCode, String);

impl From<Refusal> for Reply {
    fn from(r: Refusal) -> Self {
        error(r.0, &r.1)
    }
}

/// A backend found by pool name and address.
struct Found {
    snap: Arc<Snapshot>,
    pool: usize,
    index: usize,
}

impl Found {
    fn pool(&self) -> &Pool {
        &self.snap.pools[self.pool]
    }

    fn member(&self) -> &Arc<Member> {
        &self.pool().members[self.index]
    }
}

impl Admin {
    /// `GET /api/status`.
    pub(super) fn status(&self) -> Reply {
        let snap = self.shared.load();
        // As reloads left them, once the workers run; as bound at startup before.
        let now = self.process.live().map(|l| l.addresses());
        let listeners: Vec<Value> = now
            .as_ref()
            .unwrap_or(&self.listeners)
            .iter()
            .map(|(name, addr)| json!({ "name": name, "address": addr.to_string() }))
            .collect();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        let mut certificates = Vec::new();
        for (name, l) in &snap.listeners {
            let Some(t) = &l.tls else { continue };
            for c in &t.resolver.set.load().certs {
                certificates.push(json!({
                    "listener": name,
                    "names": c.names,
                    "file": c.cert_file,
                    "not_after": c.not_after,
                    "seconds_left": c.not_after.saturating_sub(now),
                }));
            }
        }
        // HTTP/3 apart from the rest, for the dashboard.
        let mut http3 = Vec::new();
        for (name, l) in &snap.listeners {
            if !snap.config.listeners.get(name).is_some_and(|c| c.http3) {
                continue;
            }
            let q = &l.traffic.quic;
            let n = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
            http3.push(json!({
                "listener": name,
                "open_connections": q.open(),
                "streams": n(&q.streams),
                "handshakes": { "ok": n(&q.handshakes_ok), "failed": n(&q.handshakes_failed) },
                "lost_packets": n(&q.lost_packets),
            }));
        }
        json(
            StatusCode::OK,
            &json!({
                "version": crate::VERSION,
                "commit": crate::COMMIT,
                "build_date": crate::BUILD_DATE,
                "uptime_seconds": self.process.uptime(),
                "generation": snap.generation,
                "config_sha256": self.process.config_sha256(),
                "config_file": self.path.as_ref().map(|p| p.display().to_string()),
                "listeners": listeners,
                "certificates": certificates,
                "http3": http3,
            }),
        )
    }

    /// `GET /api/pools`.
    pub(super) fn pools(&self) -> Reply {
        let snap = self.shared.load_full();
        let now = clock::now();
        let overrides = self.registry.weights().clone();
        #[derive(serde::Serialize)]
        struct All<'a> {
            generation: u64,
            pools: Vec<PoolView<'a>>,
        }
        let all = All {
            generation: snap.generation,
            pools: snap
                .pools
                .iter()
                .map(|p| PoolView::new(p, &overrides, now))
                .collect(),
        };
        json(StatusCode::OK, &all)
    }

    /// `GET /api/pools/{pool}`.
    pub(super) fn pool(&self, name: &str) -> Reply {
        let snap = self.shared.load_full();
        let overrides = self.registry.weights().clone();
        match snap.pools.iter().find(|p| p.name == name) {
            Some(p) => json(StatusCode::OK, &PoolView::new(p, &overrides, clock::now())),
            None => unknown_pool(name),
        }
    }

    /// The backend `address` of `pool` in the serving snapshot: by its key (the
    /// address as written in the config), else by its resolved address.
    fn find(&self, pool: &str, address: &str) -> Result<Found, Refusal> {
        let snap = self.shared.load_full();
        let Some(pi) = snap.pools.iter().position(|p| p.name == pool) else {
            return Err(Refusal(
                StatusCode::NOT_FOUND,
                format!("unknown pool {pool:?}"),
            ));
        };
        let p = &snap.pools[pi];
        let index = p
            .members
            .iter()
            .position(|m| m.key.0 == address)
            .or_else(|| {
                p.backends
                    .iter()
                    .position(|b| b.addr.to_string() == address)
            });
        match index {
            Some(index) => Ok(Found {
                snap,
                pool: pi,
                index,
            }),
            None => Err(Refusal(
                StatusCode::NOT_FOUND,
                format!("pool {pool:?} has no backend {address:?}"),
            )),
        }
    }

    /// `POST /api/pools/{pool}/backends/{address}/drain[?wait=true]`.
    pub(super) async fn drain(&self, pool: &str, address: &str, query: &str) -> Reply {
        let wait = match parse_wait(query) {
            Ok(w) => w,
            Err(r) => return r.into(),
        };
        let found = match self.find(pool, address) {
            Ok(f) => f,
            Err(r) => return r.into(),
        };
        let m = found.member().clone();
        let started = clock::now();
        m.health().drain(started);
        m.released.store(false, Ordering::Relaxed);
        // At once for every worker; the health task confirms on its next pass.
        m.state.set_available(false);
        self.registry.changed.notify_one();
        tracing::info!(pool = %m.pool, backend = %m.key.0, "drain requested through the admin API");
        let mut body = json!({
            "pool": m.pool,
            "backend": m.key.0,
            "state": State::Draining.as_str(),
        });
        if wait {
            let limit = found.pool().health.drain_timeout + Duration::from_secs(1);
            drop(found);
            let outcome = wait_drained(&m, limit).await;
            body["outcome"] = json!(outcome);
            body["waited_ms"] = json!((clock::now() - started).as_millis() as u64);
        }
        body["in_flight"] = json!(m.state.in_flight.load(Ordering::Relaxed));
        json(StatusCode::OK, &body)
    }

    /// `POST /api/pools/{pool}/backends/{address}/undrain`.
    pub(super) fn undrain(&self, pool: &str, address: &str) -> Reply {
        let found = match self.find(pool, address) {
            Ok(f) => f,
            Err(r) => return r.into(),
        };
        let m = found.member();
        let now = clock::now();
        let state = {
            let mut h = m.health();
            h.undrain(now);
            h.state(now)
        };
        self.registry.changed.notify_one();
        tracing::info!(pool = %m.pool, backend = %m.key.0, "undrain requested through the admin API");
        json(
            StatusCode::OK,
            &json!({ "pool": m.pool, "backend": m.key.0, "state": state.as_str() }),
        )
    }

    /// `PUT /api/pools/{pool}/backends/{address}/weight` with `{"weight": N}`.
    pub(super) async fn set_weight(&self, pool: &str, address: &str, body: Incoming) -> Reply {
        let found = match self.find(pool, address) {
            Ok(f) => f,
            Err(r) => return r.into(),
        };
        let bytes = match read_body(body).await {
            Ok(b) => b,
            Err(r) => return r,
        };
        let weight = match parse_weight(&bytes) {
            Ok(w) => w,
            Err(why) => return error(StatusCode::BAD_REQUEST, &why),
        };
        let key = (found.pool().name.clone(), found.member().key.clone());
        let before = self.registry.weights().insert(key.clone(), weight);
        drop(found);
        match self.rebuild() {
            Ok(generation) => {
                tracing::info!(pool = %key.0, backend = %key.1 .0, weight, generation, "weight set through the admin API");
                json(
                    StatusCode::OK,
                    &json!({ "pool": key.0, "backend": key.1 .0, "weight": weight, "generation": generation }),
                )
            }
            Err(why) => {
                let mut weights = self.registry.weights();
                match before {
                    Some(w) => weights.insert(key, w),
                    None => weights.remove(&key),
                };
                error(StatusCode::INTERNAL_SERVER_ERROR, &why)
            }
        }
    }

    /// `DELETE /api/pools/{pool}/backends/{address}/weight`: back to the configured weight.
    pub(super) fn clear_weight(&self, pool: &str, address: &str) -> Reply {
        let found = match self.find(pool, address) {
            Ok(f) => f,
            Err(r) => return r.into(),
        };
        let key = (found.pool().name.clone(), found.member().key.clone());
        drop(found);
        if self.registry.weights().remove(&key).is_none() {
            return error(
                StatusCode::NOT_FOUND,
                &format!(
                    "backend {:?} of pool {:?} has no weight override",
                    key.1 .0, key.0
                ),
            );
        }
        match self.rebuild() {
            Ok(generation) => json(
                StatusCode::OK,
                &json!({ "pool": key.0, "backend": key.1 .0, "weight": null, "generation": generation }),
            ),
            Err(why) => error(StatusCode::INTERNAL_SERVER_ERROR, &why),
        }
    }

    /// `POST /api/pools/{pool}/backends` with `{"address": "ip:port", "weight": N}`:
    /// a member until the next reload, as HAProxy's `add server`.
    pub(super) async fn add_backend(&self, pool: &str, body: Incoming) -> Reply {
        let snap = self.shared.load_full();
        let Some(p) = snap.pools.iter().find(|p| p.name == pool) else {
            return unknown_pool(pool);
        };
        let bytes = match read_body(body).await {
            Ok(b) => b,
            Err(r) => return r,
        };
        let (addr, weight) = match parse_member(&bytes) {
            Ok(m) => m,
            Err(why) => return error(StatusCode::BAD_REQUEST, &why),
        };
        let key = BackendKey(addr.to_string());
        if let Some(b) = p.backends.iter().find(|b| b.addr == addr || b.key == key) {
            return error(
                StatusCode::CONFLICT,
                &format!(
                    "pool {pool:?} has a backend at {addr} already ({:?})",
                    b.key.0
                ),
            );
        }
        drop(snap);
        let spec = Spec {
            key: key.clone(),
            addr,
            weight,
            backup: false,
        };
        self.registry.discovered.add(pool, spec);
        match self.rebuild() {
            Ok(generation) => {
                tracing::info!(pool, backend = %key.0, weight, generation, "backend added through the admin API; it lasts until the next reload");
                json(
                    StatusCode::CREATED,
                    &json!({ "pool": pool, "backend": key.0, "weight": weight, "generation": generation }),
                )
            }
            Err(why) => {
                self.registry.discovered.remove(pool, &key);
                error(StatusCode::INTERNAL_SERVER_ERROR, &why)
            }
        }
    }

    /// `DELETE /api/pools/{pool}/backends/{address}`: drains the member and takes
    /// it out until the next reload, as HAProxy's `del server`.
    pub(super) fn remove_backend(&self, pool: &str, address: &str) -> Reply {
        let found = match self.find(pool, address) {
            Ok(f) => f,
            Err(r) => return r.into(),
        };
        let m = found.member().clone();
        drop(found);
        self.registry.discovered.remove(pool, &m.key);
        match self.rebuild() {
            Ok(generation) => {
                tracing::info!(pool, backend = %m.key.0, generation, "backend removed through the admin API; it drains, and lasts until the next reload");
                json(
                    StatusCode::OK,
                    &json!({
                        "pool": pool,
                        "backend": m.key.0,
                        "state": State::Draining.as_str(),
                        "in_flight": m.state.in_flight.load(Ordering::Relaxed),
                        "generation": generation,
                    }),
                )
            }
            Err(why) => error(StatusCode::INTERNAL_SERVER_ERROR, &why),
        }
    }

    /// Publishes a snapshot of the serving config with the registry's changes.
    fn rebuild(&self) -> Result<u64, String> {
        crate::reload::rebuild(&self.shared, &self.registry).map_err(|e| e.to_string())
    }

    /// `POST /api/reload`.
    pub(super) fn reload(&self) -> Reply {
        let Some(path) = &self.path else {
            return error(
                StatusCode::CONFLICT,
                "running the embedded config: there is no file to reload",
            );
        };
        match self.process.reload(path, &self.shared, &self.registry) {
            Ok(generation) => json(StatusCode::OK, &json!({ "generation": generation })),
            Err(ReloadError::Invalid(errors)) => {
                let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
                json(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    &json!({ "error": "invalid config; the previous one keeps serving", "errors": errors }),
                )
            }
            Err(e @ (ReloadError::Build(_) | ReloadError::Bind(_))) => json(
                StatusCode::UNPROCESSABLE_ENTITY,
                &json!({ "error": "config could not be built; the previous one keeps serving", "errors": [e.to_string()] }),
            ),
            Err(e @ ReloadError::Read { .. }) => {
                error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string())
            }
        }
    }
}

/// Waits until a drained backend is released, its deadline passes, or someone
/// undrains it; says which.
async fn wait_drained(m: &Member, limit: Duration) -> &'static str {
    let give_up = tokio::time::Instant::now() + limit;
    loop {
        let now = clock::now();
        let in_flight = u64::from(m.state.in_flight.load(Ordering::Relaxed));
        let (state, released) = {
            let h = m.health();
            (h.state(now), h.is_released(in_flight, now))
        };
        if state != State::Draining {
            return "undrained";
        }
        if released {
            return if in_flight == 0 {
                "released"
            } else {
                "deadline"
            };
        }
        if tokio::time::Instant::now() >= give_up {
            return "deadline";
        }
        tokio::time::sleep(DRAIN_POLL).await;
    }
}

/// A request body of at most 64 KiB; else the 413 to answer.
async fn read_body(body: Incoming) -> Result<bytes::Bytes, Reply> {
    match Limited::new(body, MAX_BODY).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(_) => Err(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body: unreadable or over 64 KiB",
        )),
    }
}

fn unknown_pool(name: &str) -> Reply {
    error(StatusCode::NOT_FOUND, &format!("unknown pool {name:?}"))
}

/// `wait=true|false` from a query string; any other parameter is an error.
fn parse_wait(query: &str) -> Result<bool, Refusal> {
    let mut wait = false;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, "true"));
        match (k, v) {
            ("wait", "true" | "1") => wait = true,
            ("wait", "false" | "0") => wait = false,
            ("wait", other) => {
                return Err(Refusal(
                    StatusCode::BAD_REQUEST,
                    format!("wait: expected true or false, got {other:?}"),
                ))
            }
            (other, _) => {
                return Err(Refusal(
                    StatusCode::BAD_REQUEST,
                    format!("unknown query parameter {other:?}"),
                ))
            }
        }
    }
    Ok(wait)
}

/// The address and weight of a `{"address": "ip:port", "weight": N}` body.
fn parse_member(body: &[u8]) -> Result<(std::net::SocketAddr, u32), String> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        address: String,
        #[serde(default)]
        weight: Option<serde_json::Number>,
    }
    let b: Body = serde_json::from_slice(body)
        .map_err(|e| format!("body: expected {{\"address\": \"ip:port\", \"weight\": N}}: {e}"))?;
    let addr = b
        .address
        .parse::<std::net::SocketAddr>()
        .ok()
        .filter(|a| a.port() != 0)
        .ok_or_else(|| {
            format!(
                "address: expected ip:port such as 10.0.0.5:8080, got {:?} (a name belongs in the config, where it is re-resolved)",
                b.address
            )
        })?;
    let weight = match b.weight {
        None => 1,
        Some(w) => parse_weight(format!("{{\"weight\": {w}}}").as_bytes())?,
    };
    Ok((addr, weight))
}

/// The weight in a `{"weight": N}` body, 1 to 1,000,000.
fn parse_weight(body: &[u8]) -> Result<u32, String> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        weight: serde_json::Number,
    }
    let b: Body = serde_json::from_slice(body)
        .map_err(|e| format!("body: expected {{\"weight\": N}}: {e}"))?;
    b.weight
        .as_u64()
        .filter(|w| (1..=MAX_WEIGHT).contains(w))
        .and_then(|w| u32::try_from(w).ok())
        .ok_or_else(|| {
            format!(
                "weight: must be an integer from 1 to {MAX_WEIGHT}, got {}",
                b.weight
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weight_bodies() {
        assert_eq!(parse_weight(br#"{"weight": 5}"#), Ok(5));
        assert_eq!(parse_weight(br#"{"weight": 1000000}"#), Ok(1_000_000));
        let e = parse_weight(br#"{"weight": 0}"#).unwrap_err();
        assert!(
            e.starts_with("weight: must be an integer from 1 to 1000000"),
            "{e}"
        );
        assert!(parse_weight(br#"{"weight": 1.5}"#)
            .unwrap_err()
            .starts_with("weight:"));
        assert!(parse_weight(br#"{"weight": -1}"#)
            .unwrap_err()
            .starts_with("weight:"));
        assert!(parse_weight(br#"{"weight": 1000001}"#)
            .unwrap_err()
            .starts_with("weight:"));
        assert!(parse_weight(br#"{"w": 1}"#)
            .unwrap_err()
            .starts_with("body:"));
        assert!(parse_weight(b"nope").unwrap_err().starts_with("body:"));
    }

    #[test]
    fn member_bodies() {
        let addr = |s: &str| s.parse::<std::net::SocketAddr>().unwrap();
        assert_eq!(
            parse_member(br#"{"address": "10.0.0.5:8080"}"#),
            Ok((addr("10.0.0.5:8080"), 1))
        );
        assert_eq!(
            parse_member(br#"{"address": "[::1]:80", "weight": 3}"#),
            Ok((addr("[::1]:80"), 3))
        );
        for bad in [
            &br#"{"address": "api.internal:80"}"#[..],
            br#"{"address": "10.0.0.5:0"}"#,
            br#"{"address": "10.0.0.5"}"#,
        ] {
            assert!(parse_member(bad).unwrap_err().starts_with("address:"));
        }
        assert!(parse_member(br#"{"address": "10.0.0.5:80", "weight": 0}"#)
            .unwrap_err()
            .starts_with("weight:"));
        assert!(parse_member(br#"{"addr": "10.0.0.5:80"}"#)
            .unwrap_err()
            .starts_with("body:"));
    }

    #[test]
    fn wait_parameter() {
        assert!(!parse_wait("").unwrap());
        assert!(parse_wait("wait=true").unwrap());
        assert!(parse_wait("wait").unwrap());
        assert!(!parse_wait("wait=0").unwrap());
        assert!(parse_wait("wait=maybe").is_err());
        assert!(parse_wait("hurry=1").is_err());
    }
}
