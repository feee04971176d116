//! Stage: admin. HTTP requests on the admin listener → Prometheus metrics at
//! `/metrics`, the JSON API under `/api/` and the live dashboard at `/`. Owns the
//! admin socket, the bearer token check and the routing of admin paths. Never runs
//! on a worker and is never on the data path: it runs on the main thread's runtime
//! beside the health task, reads the same atomics the workers write, and changes the
//! pool only through the registry and a new snapshot, as a reload does.
//!
//! Loopback by default (the config refuses a public address without
//! `allow_public = true`); with `token` set, every request but the dashboard page
//! (which holds no data) needs `Authorization: Bearer <token>`, compared in
//! constant time.

mod api;
mod dashboard;
pub mod metrics;
pub mod process;
mod view;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use fulcrum_core::config::AdminConfig;
use http::{header, Method, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;

pub use process::Process;

use crate::state::Registry;
use crate::state::Shared;

/// Why the admin listener could not start.
#[derive(Debug, thiserror::Error)]
#[error("admin.address: cannot bind {address}: {error}")]
pub struct BindError {
    /// The address as configured.
    pub address: String,
    /// Why.
    pub error: std::io::Error,
}

/// What the admin server reads and acts on.
pub struct Admin {
    /// The published snapshot.
    pub shared: Shared,
    /// Backend state, weight overrides, the health task's wake-up.
    pub registry: Arc<Registry>,
    /// Uptime, reload counters, config hash.
    pub process: Arc<Process>,
    /// The config file (`None`: the embedded config, which cannot be reloaded).
    pub path: Option<PathBuf>,
    /// Listener names and the addresses they bound.
    pub listeners: Vec<(String, SocketAddr)>,
    /// SHA-256 of the token: compared digest to digest, so neither the token's
    /// length nor its bytes show in the time a refusal takes.
    token: Option<[u8; 32]>,
    metrics: Arc<prometheus_client::registry::Registry>,
}

/// Every admin response.
type Reply = Response<BoxBody<Bytes, Infallible>>;

impl Admin {
    /// The admin state for `cfg`.
    pub fn new(
        cfg: &AdminConfig,
        shared: Shared,
        registry: Arc<Registry>,
        process: Arc<Process>,
        path: Option<PathBuf>,
        listeners: Vec<(String, SocketAddr)>,
    ) -> Self {
        Self {
            metrics: Arc::new(metrics::registry(
                shared.clone(),
                registry.clone(),
                process.clone(),
            )),
            token: cfg
                .token
                .as_ref()
                .map(|t| Sha256::digest(t.expose().as_bytes()).into()),
            shared,
            registry,
            process,
            path,
            listeners,
        }
    }

    fn authorized(&self, headers: &http::HeaderMap) -> bool {
        let Some(want) = &self.token else {
            return true;
        };
        let given = headers
            .get(header::AUTHORIZATION)
            .map(|v| v.as_bytes())
            .and_then(|v| {
                let (scheme, rest) = v.split_at(v.len().min(7));
                scheme.eq_ignore_ascii_case(b"bearer ").then_some(rest)
            });
        let Some(given) = given else {
            return false;
        };
        let got: [u8; 32] = Sha256::digest(given).into();
        let diff = got.iter().zip(want).fold(0u8, |acc, (a, b)| acc | (a ^ b));
        std::hint::black_box(diff) == 0
    }

    async fn handle(self: Arc<Self>, req: hyper::Request<Incoming>) -> Reply {
        // The dashboard page holds no data; the API calls it makes need the token.
        if req.uri().path() == "/" {
            return wrong_method(req.method(), &[Method::GET, Method::HEAD])
                .unwrap_or_else(dashboard::page);
        }
        if !self.authorized(req.headers()) {
            let mut r = error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static("Bearer"),
            );
            return r;
        }
        let (parts, body) = req.into_parts();
        let path = parts.uri.path().trim_end_matches('/');
        let segments: Option<Vec<String>> = path
            .split('/')
            .skip(1)
            .map(percent_decode)
            .collect::<Option<_>>();
        let Some(segments) = segments else {
            return error(StatusCode::BAD_REQUEST, "path: invalid percent-encoding");
        };
        let seg: Vec<&str> = segments.iter().map(String::as_str).collect();
        let query = parts.uri.query().unwrap_or("");
        let m = &parts.method;
        use Method as M;
        match seg.as_slice() {
            ["metrics"] => wrong_method(m, &[M::GET]).unwrap_or_else(|| self.metrics()),
            ["api", "status"] => wrong_method(m, &[M::GET]).unwrap_or_else(|| self.status()),
            ["api", "pools"] => wrong_method(m, &[M::GET]).unwrap_or_else(|| self.pools()),
            ["api", "pools", pool] => wrong_method(m, &[M::GET]).unwrap_or_else(|| self.pool(pool)),
            ["api", "pools", pool, "backends"] => match wrong_method(m, &[M::POST]) {
                Some(r) => r,
                None => self.add_backend(pool, body).await,
            },
            ["api", "pools", pool, "backends", backend] => {
                wrong_method(m, &[M::DELETE]).unwrap_or_else(|| self.remove_backend(pool, backend))
            }
            ["api", "pools", pool, "backends", backend, action] => match *action {
                "drain" => match wrong_method(m, &[M::POST]) {
                    Some(r) => r,
                    None => self.drain(pool, backend, query).await,
                },
                "undrain" => {
                    wrong_method(m, &[M::POST]).unwrap_or_else(|| self.undrain(pool, backend))
                }
                "weight" => match wrong_method(m, &[M::PUT, M::DELETE]) {
                    Some(r) => r,
                    None if m == M::PUT => self.set_weight(pool, backend, body).await,
                    None => self.clear_weight(pool, backend),
                },
                _ => not_found(),
            },
            ["api", "reload"] => wrong_method(m, &[M::POST]).unwrap_or_else(|| self.reload()),
            _ => not_found(),
        }
    }

    fn metrics(&self) -> Reply {
        let mut r = Response::new(metrics::stream(self.metrics.clone()).boxed());
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            http::HeaderValue::from_static(metrics::CONTENT_TYPE),
        );
        r
    }
}

/// The admin listener's name among the sockets an upgrade hands over.
pub const HANDOVER_NAME: &str = "@admin";

/// Binds the admin listener (at startup, so a bad address stops the start), or
/// takes the one `inherited` from an upgrading process when it has the same
/// address; returns the server to spawn on the main runtime and a copy of the
/// socket to hand to a successor.
pub fn start(
    cfg: &AdminConfig,
    admin: Admin,
    inherited: Option<&mut crate::handover::Inherited>,
) -> Result<
    (
        impl Future<Output = ()> + Send + 'static,
        crate::handover::Listening,
    ),
    BindError,
> {
    let bind_err = |error| BindError {
        address: cfg.address.clone(),
        error,
    };
    let addr: SocketAddr = cfg
        .address
        .parse()
        .map_err(|_| bind_err(std::io::ErrorKind::InvalidInput.into()))?;
    let taken = inherited
        .and_then(|i| i.take(HANDOVER_NAME, addr))
        .and_then(|(_, mut sockets)| match sockets.pop() {
            Some(crate::listen::socket::Socket::Tcp(socket)) => Some(socket),
            _ => None,
        });
    let socket = match taken {
        Some(socket) => socket,
        None => std::net::TcpListener::bind(addr).map_err(bind_err)?,
    };
    socket.set_nonblocking(true).map_err(bind_err)?;
    let actual = socket.local_addr().map_err(bind_err)?;
    if !actual.ip().is_loopback() && admin.token.is_none() {
        tracing::warn!(address = %actual, "admin API on a public address without a token: anyone who reaches it can drain backends and reload");
    }
    // `listener` lets the integration tests' log reader take it for a listener line.
    tracing::info!(listener = "admin", address = %actual, "admin listening");
    let copy = crate::handover::Listening {
        name: HANDOVER_NAME.to_owned(),
        addr: actual,
        sockets: vec![crate::listen::socket::Socket::Tcp(
            socket.try_clone().map_err(bind_err)?,
        )],
    };
    Ok((serve(socket, Arc::new(admin)), copy))
}

async fn serve(socket: std::net::TcpListener, admin: Arc<Admin>) {
    let listener = match TcpListener::from_std(socket) {
        Ok(l) => l,
        Err(error) => {
            tracing::error!(%error, "admin listener setup failed");
            return;
        }
    };
    loop {
        let (io, _) = match listener.accept().await {
            Ok(c) => c,
            Err(error) => {
                tracing::warn!(%error, "admin accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let admin = admin.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let admin = admin.clone();
                async move { Ok::<_, Infallible>(admin.handle(req).await) }
            });
            let io = hyper_util::rt::TokioIo::new(io);
            // A slow or silent client must not hold an admin connection (and its
            // descriptor) for ever: a head within 10 s, a whole exchange within 5 min
            // (`?wait=true` drains are bounded by drain_timeout).
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(10))
                .serve_connection(io, svc);
            let _ = tokio::time::timeout(std::time::Duration::from_secs(300), conn).await;
        });
    }
}

/// A 405 naming the allowed methods, unless `m` is one of them.
fn wrong_method(m: &Method, allowed: &[Method]) -> Option<Reply> {
    if allowed.contains(m) {
        return None;
    }
    let list = allowed
        .iter()
        .map(Method::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    let mut r = error(
        StatusCode::METHOD_NOT_ALLOWED,
        &format!("method {m} not allowed here; use {list}"),
    );
    if let Ok(v) = http::HeaderValue::from_str(&list) {
        r.headers_mut().insert(header::ALLOW, v);
    }
    Some(r)
}

fn not_found() -> Reply {
    error(StatusCode::NOT_FOUND, "no such admin path")
}

/// A response with a body.
fn reply(status: StatusCode, content_type: &'static str, body: Bytes) -> Reply {
    let mut r = Response::new(Full::new(body).boxed());
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    r
}

/// A JSON response.
fn json(status: StatusCode, value: &impl serde::Serialize) -> Reply {
    match serde_json::to_vec(value) {
        Ok(mut body) => {
            body.push(b'\n');
            reply(status, "application/json", body.into())
        }
        Err(e) => reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain",
            e.to_string().into(),
        ),
    }
}

/// `{"error": why}` with `status`.
fn error(status: StatusCode, why: &str) -> Reply {
    json(status, &serde_json::json!({ "error": why }))
}

/// Decodes `%XX` escapes in one path segment; `None` if malformed or not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hi = (bytes.next()? as char).to_digit(16)?;
            let lo = (bytes.next()? as char).to_digit(16)?;
            out.push(u8::try_from(hi * 16 + lo).ok()?);
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_segments() {
        assert_eq!(percent_decode("127.0.0.1:80").unwrap(), "127.0.0.1:80");
        assert_eq!(percent_decode("%5B%3A%3A1%5D%3A80").unwrap(), "[::1]:80");
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%4"), None);
        assert_eq!(percent_decode("%ff"), None);
    }
}
