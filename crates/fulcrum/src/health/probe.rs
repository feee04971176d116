//! One active probe: a TCP connect, an HTTP request, a TLS handshake or a gRPC
//! health check, each within the check's `timeout`. A probe opens its own connection and closes it,
//! so it tests what a new request would meet, never a pooled socket. To a pool that
//! sends the PROXY protocol, it first sends a header naming no client (v1 `UNKNOWN`,
//! v2 `LOCAL`): such backends refuse a connection without one.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::BytesMut;
use fulcrum_core::config::{CheckKind, HealthCheckConfig};
use fulcrum_core::proxy_protocol::Version;
use tokio::net::TcpStream;

use crate::io;
use crate::upstream;
use crate::upstream::h1::read_response;

/// Most body bytes read while looking for the expected `body` substring.
const MAX_BODY: usize = 64 * 1024;

/// Why a probe failed (logged at debug level; the state machine only sees pass/fail).
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// Connecting failed or timed out.
    #[error("connect: {0}")]
    Connect(std::io::Error),
    /// The whole probe took longer than `timeout`.
    #[error("timed out")]
    Timeout,
    /// No valid response.
    #[error("response: {0}")]
    Response(String),
    /// A status outside `expect`.
    #[error("status {0} not expected")]
    Status(u16),
    /// The body lacked the expected text.
    #[error("body does not contain the expected text")]
    Body,
    /// The TLS handshake failed.
    #[error("tls: {0}")]
    Tls(std::io::Error),
}

/// Runs one probe of `check` against `addr`, after a PROXY header of `send_proxy`
/// when the pool sends one, and over the pool's TLS when it has `tls` (http and
/// grpc probes); `Ok` when it passes.
pub async fn probe(
    addr: SocketAddr,
    check: &HealthCheckConfig,
    send_proxy: Option<Version>,
    tls: Option<&crate::tls::Upstream>,
) -> Result<(), ProbeError> {
    let limit = check.timeout.get();
    match tokio::time::timeout(limit, run(addr, check, (send_proxy, tls), limit)).await {
        Ok(result) => result,
        Err(_) => Err(ProbeError::Timeout),
    }
}

async fn run(
    addr: SocketAddr,
    check: &HealthCheckConfig,
    (send_proxy, pool_tls): (Option<Version>, Option<&crate::tls::Upstream>),
    limit: Duration,
) -> Result<(), ProbeError> {
    let header = send_proxy.map(|v| upstream::proxy_header(v, None));
    let stream = upstream::connect_with(addr, limit, header.as_deref().unwrap_or_default())
        .await
        .map_err(ProbeError::Connect)?;
    let kind = check.effective_kind();
    let grpc_service = check.grpc.as_deref().unwrap_or("");
    match (kind, pool_tls) {
        (CheckKind::Tcp, _) => Ok(()),
        (CheckKind::Tls, _) => tls(stream, addr).await,
        (CheckKind::Http, None) => http(&stream, addr, check, limit).await,
        (CheckKind::Grpc, None) => grpc(stream, grpc_service).await,
        (CheckKind::Http | CheckKind::Grpc, Some(t)) => {
            let h2 = kind == CheckKind::Grpc;
            let conn = t
                .connect(stream, addr, limit, h2)
                .await
                .map_err(|e| ProbeError::Tls(std::io::Error::other(e)))?;
            if h2 {
                grpc(conn, grpc_service).await
            } else {
                http(&crate::io::Conn::Tls(Box::new(conn)), addr, check, limit).await
            }
        }
    }
}

async fn http<S: io::Socket>(
    stream: &S,
    addr: SocketAddr,
    check: &HealthCheckConfig,
    limit: Duration,
) -> Result<(), ProbeError> {
    let host = check.host.clone().unwrap_or_else(|| addr.to_string());
    let request = format!(
        "{} {} HTTP/1.1\r\nhost: {host}\r\nuser-agent: fulcrum-health\r\nconnection: close\r\n\r\n",
        check.method, check.path
    );
    io::write_all(stream, request.as_bytes(), limit)
        .await
        .map_err(|e| ProbeError::Response(e.to_string()))?;
    let mut buf = BytesMut::with_capacity(4096);
    let is_head = check.method == "HEAD";
    let head = read_response(stream, &mut buf, is_head, limit)
        .await
        .map_err(|f| ProbeError::Response(format!("{f:?}")))?;
    if !check.expect.iter().any(|r| r.contains(head.status)) {
        return Err(ProbeError::Status(head.status));
    }
    let Some(want) = check.body.as_deref() else {
        return Ok(());
    };
    let _ = buf.split_to(head.len);
    // `connection: close`: the body ends at EOF; chunk-size lines are rare enough
    // inside a short health body to ignore.
    loop {
        if memfind(&buf, want.as_bytes()) {
            return Ok(());
        }
        if buf.len() >= MAX_BODY {
            return Err(ProbeError::Body);
        }
        match io::read_some(stream, &mut buf, limit).await {
            Ok(0) | Err(_) => return Err(ProbeError::Body),
            Ok(_) => {}
        }
    }
}

/// The standard gRPC health check over h2c: passes on `grpc-status: 0` with a
/// `SERVING` answer for `service`.
async fn grpc<T>(stream: T, service: &str) -> Result<(), ProbeError>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use fulcrum_core::grpc;
    let fail = |what: &str, e: &dyn std::fmt::Display| ProbeError::Response(format!("{what}: {e}"));
    let (send, conn) = h2::client::handshake(stream)
        .await
        .map_err(|e| fail("h2 handshake", &e))?;
    // Dropped (and the connection closed) when the probe ends.
    let conn = tokio::spawn(async move {
        let _ = conn.await;
    });
    let _abort = AbortOnDrop(conn);
    let mut send = send.ready().await.map_err(|e| fail("h2", &e))?;
    let request = http::Request::builder()
        .method("POST")
        .uri(format!("http://health{}", grpc::HEALTH_CHECK_PATH))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("user-agent", "fulcrum-health")
        .body(())
        .map_err(|e| fail("request", &e))?;
    let (response, mut body) = send
        .send_request(request, false)
        .map_err(|e| fail("send", &e))?;
    body.send_data(grpc::health_request(service).into(), true)
        .map_err(|e| fail("send", &e))?;
    let response = response.await.map_err(|e| fail("response", &e))?;
    if response.status() != http::StatusCode::OK {
        return Err(ProbeError::Status(response.status().as_u16()));
    }
    let status = |h: &http::HeaderMap| h.get("grpc-status").map(|v| v.as_bytes().to_vec());
    // A trailers-only answer carries grpc-status in its headers: an error.
    if let Some(code) = status(response.headers()) {
        return Err(ProbeError::Response(format!(
            "grpc-status {}",
            String::from_utf8_lossy(&code)
        )));
    }
    let mut recv = response.into_body();
    let mut msg = Vec::new();
    while let Some(data) = recv.data().await {
        let data = data.map_err(|e| fail("body", &e))?;
        let _ = recv.flow_control().release_capacity(data.len());
        msg.extend_from_slice(&data);
        if msg.len() > MAX_BODY {
            return Err(ProbeError::Body);
        }
    }
    let trailers = recv.trailers().await.map_err(|e| fail("trailers", &e))?;
    match trailers.as_ref().and_then(status).as_deref() {
        Some(b"0") => {}
        other => {
            return Err(ProbeError::Response(format!(
                "grpc-status {}",
                other.map_or("missing".into(), |c| String::from_utf8_lossy(c)
                    .into_owned())
            )))
        }
    }
    match grpc::health_serving(&msg) {
        Some(true) => Ok(()),
        Some(false) => Err(ProbeError::Response("not SERVING".into())),
        None => Err(ProbeError::Response("not a health answer".into())),
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn memfind(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

/// A TLS handshake: the backend's TLS stack answers. The certificate is not
/// verified (HAProxy's `check-ssl verify none`): this probes liveness, and the
/// data path's own TLS settings decide trust.
async fn tls(stream: TcpStream, addr: SocketAddr) -> Result<(), ProbeError> {
    let config = tls_config().map_err(|e| ProbeError::Tls(std::io::Error::other(e)))?;
    let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
    tokio_rustls::TlsConnector::from(config)
        .connect(name, stream)
        .await
        .map(drop)
        .map_err(ProbeError::Tls)
}

/// The probes' TLS client settings, built once.
fn tls_config() -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, rustls::Error>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()?
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(crate::tls::AnyCert(provider)))
                .with_no_client_auth();
            Ok(Arc::new(config))
        })
        .clone()
}
