//! HTTP/2 from clients (h2c, prior knowledge) with the `h2` crate: each stream is
//! routed like an HTTP/1.1 request and forwarded to an HTTP/1.1 or h2c backend.

use std::cell::Cell;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::{Buf, Bytes, BytesMut};
use fulcrum_core::config::PoolProtocol;
use fulcrum_core::health::Outcome;
use fulcrum_core::http1::{self, Forwarded, Framing};
use fulcrum_core::jwt::RequestTokens;
use http::{Request, Response, StatusCode};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;

use super::body::{pump, H1Sink, H1Source, H2Sink, H2Source, Out, PumpError, Sink, Source};
use super::error::ProxyError;
use super::proxy::{self, Target};
use super::upstream_h1::{client_framing, read_response, HeadFailure};
use crate::access_log::Entry;
use crate::io;
use crate::state::{Listener, Pool, Snapshot};
use crate::upstream::Lease;
use crate::worker::Worker;

/// Serves an HTTP/2 connection (h2c, or TLS with ALPN h2) whose first bytes
/// (the preface) may already be in `prefix`. `local` is the address the client
/// reached, for a PROXY header toward a pool that sends one.
pub async fn serve<T>(
    w: Rc<Worker>,
    io: T,
    prefix: BytesMut,
    (peer, local): (SocketAddr, Option<SocketAddr>),
    listener: Rc<str>,
    subject: Option<Rc<str>>,
) where
    T: AsyncRead + AsyncWrite + Unpin + 'static,
{
    let snap = w.shared.load_full();
    let Some(l) = snap.listeners.get(&*listener) else {
        return;
    };
    let (keepalive, header_timeout) = (l.keepalive_timeout, l.header_timeout);
    let max_header = u32::try_from(l.max_header_bytes).unwrap_or(u32::MAX);
    drop(snap);
    let io = Rewind {
        prefix: prefix.freeze(),
        inner: io,
    };
    let handshake = h2::server::Builder::new()
        // RFC 8441: WebSocket over HTTP/2 by extended CONNECT.
        .enable_connect_protocol()
        .max_header_list_size(max_header)
        .max_concurrent_streams(256)
        .initial_window_size(1 << 20)
        .initial_connection_window_size(4 << 20)
        .handshake::<_, Bytes>(io);
    let Ok(Ok(mut conn)) = tokio::time::timeout(header_timeout, handshake).await else {
        return;
    };
    let active = Rc::new(Cell::new(0usize));
    let done = Rc::new(Notify::new());
    let mut closing = false;
    loop {
        if w.stopping.get() && !closing {
            conn.graceful_shutdown();
            closing = true;
        }
        let idle = active.get() == 0;
        tokio::select! {
            r = conn.accept() => match r {
                Some(Ok((req, respond))) => {
                    active.set(active.get() + 1);
                    let (w, listener, active, done) = (w.clone(), listener.clone(), active.clone(), done.clone());
                    let subject = subject.clone();
                    // Boxed: the stream's future is about 8 KB, and tokio moves a
                    // spawned future several times before its first poll (one copy
                    // into the box instead: +4% requests per CPU-second, h2load).
                    tokio::task::spawn_local(Box::pin(async move {
                        handle(&w, req, respond, (peer, local), (&listener, subject.as_deref())).await;
                        active.set(active.get() - 1);
                        done.notify_waiters();
                    }));
                }
                Some(Err(_)) | None => break,
            },
            () = done.notified() => {}
            () = w.stop.notified(), if !closing => {}
            () = tokio::time::sleep(keepalive), if idle && !closing => {
                conn.graceful_shutdown();
                closing = true;
            }
        }
    }
}

async fn handle(
    w: &Rc<Worker>,
    req: Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<Bytes>,
    (peer, local): (SocketAddr, Option<SocketAddr>),
    (listener, subject): (&str, Option<&str>),
) {
    let started = Instant::now();
    let snap = w.shared.load_full();
    let Some(l) = snap.listeners.get(listener) else {
        return;
    };
    let (mut parts, body) = req.into_parts();
    // The client-certificate header is Fulcrum's to set: a client's own never
    // reaches a route or a backend.
    if let Some(name) = l.tls.as_ref().and_then(|t| t.subject_header.as_deref()) {
        let spoofed: Vec<_> = parts
            .headers
            .keys()
            .filter(|k| {
                fulcrum_core::forward::is_identity_field(k.as_str().as_bytes(), name.as_bytes())
            })
            .cloned()
            .collect();
        for k in spoofed {
            parts.headers.remove(k);
        }
        let value = subject.and_then(|s| http::HeaderValue::from_str(s).ok());
        if let (Ok(k), Some(v)) = (http::HeaderName::from_bytes(name.as_bytes()), value) {
            parts.headers.insert(k, v);
        }
    }
    let host = parts
        .uri
        .authority()
        .map(|a| a.as_str())
        .or_else(|| {
            parts
                .headers
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
        })
        .unwrap_or("")
        .to_owned();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let method = parts.method.as_str().to_owned();
    let mut e = Entry {
        listener: &l.name,
        listener_traffic: Some(&l.traffic),
        client: Some(peer),
        proto: "HTTP/2",
        method: &method,
        host: &host,
        path: &path,
        ..Entry::default()
    };
    let grpc = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|ct| fulcrum_core::grpc::is_grpc(ct.as_bytes()));
    let ends = (peer, local);
    let result = forward(w, &snap, l, &parts, body, &mut respond, ends, &mut e).await;
    if let Err(err) = result {
        if e.status == 0 {
            if grpc {
                // A gRPC client reads the status from grpc-status, not from HTTP.
                e.status = 200;
                send_grpc_error(&mut respond, &err);
            } else {
                e.status = err.status();
                send_error(&mut respond, err.status(), err.retry_after());
            }
        }
        e.error = Some(err.to_string());
    }
    e.duration = started.elapsed();
    crate::access_log::record(&e);
    if w.log.enabled() {
        w.log.write(&e);
    }
}

fn send_error(
    respond: &mut h2::server::SendResponse<Bytes>,
    status: u16,
    retry_after: Option<u32>,
) {
    let reason = http1::reason(status);
    let mut builder = Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY))
        .header("content-type", "text/plain");
    if let Some(secs) = retry_after {
        builder = builder.header("retry-after", secs);
    }
    let response = builder.body(()).unwrap_or_default();
    if let Ok(mut stream) = respond.send_response(response, false) {
        let _ = stream.send_data(Bytes::from(format!("{reason}\n")), true);
    }
}

/// A trailers-only gRPC answer (HTTP 200, `grpc-status`, `grpc-message`) for an
/// error Fulcrum produced itself, as Envoy answers them.
fn send_grpc_error(respond: &mut h2::server::SendResponse<Bytes>, err: &ProxyError) {
    let code = fulcrum_core::grpc::Code::for_http_status(err.status());
    // grpc-message is percent-encoded; keep it to plain printable ASCII.
    let message: String = err
        .to_string()
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect::<String>()
        .replace('%', "%25");
    let mut builder = Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/grpc")
        .header("grpc-status", code.as_str());
    if let Ok(v) = http::HeaderValue::from_str(&message) {
        builder = builder.header("grpc-message", v);
    }
    if let Ok(response) = builder.body(()) {
        let _ = respond.send_response(response, true);
    }
}

#[allow(clippy::too_many_arguments)]
async fn forward<'s>(
    w: &Rc<Worker>,
    snap: &'s Snapshot,
    l: &'s Listener,
    parts: &http::request::Parts,
    body: h2::RecvStream,
    respond: &mut h2::server::SendResponse<Bytes>,
    ends: (SocketAddr, Option<SocketAddr>),
    e: &mut Entry<'s>,
) -> Result<(), ProxyError> {
    let peer = ends.0;
    let method = parts.method.as_str();
    let websocket = super::h2_ws::is_websocket(parts);
    if parts.method == http::Method::CONNECT && !websocket {
        return Err(ProxyError::MethodNotAllowed);
    }
    let host = e.host;
    let t = Target {
        host,
        path: e.path,
        absolute: false,
        secure: l.tls.is_some(),
    };
    let headers = proxy::H2Headers(&parts.headers);
    // The bearer token is decoded only if a `jwt_claim` route or `jwt:` key asks.
    let tokens = RequestTokens::new(proxy::now_unix);
    let (route, pool) = proxy::route(snap, l, method, &t, &headers, &tokens)?;
    e.route = Some(route.index);
    e.route_traffic = snap.routes.get(route.index).map(|t| &**t);
    e.pool = &pool.name;
    let ended = body.is_end_stream();
    let framing = proxy::h2_body_framing(&parts.headers, ended, true);
    if matches!(framing, Framing::Length(n) if n > l.max_body_bytes) {
        return Err(ProxyError::BodyTooLarge);
    }
    // HTTP/2 may split `cookie` over several fields (RFC 9113 §8.2.3): the first is read.
    let hash = pool.hash_key.as_ref().and_then(|key| {
        key.hash_with_claims(
            peer.ip(),
            t.path,
            |name| parts.headers.get(name).map(|v| v.as_bytes()),
            || tokens.claims(&headers, pool.jwt_key.as_ref()),
        )
    });
    if hash.is_none() && pool.hash_key.is_some() {
        pool.state.hash_missing.fetch_add(1, Ordering::Relaxed);
    }
    // The sticky cookie may be in any of them.
    let pinned = proxy::Pinned::read(
        pool,
        parts
            .headers
            .get_all(http::header::COOKIE)
            .iter()
            .map(|v| v.as_bytes()),
    );
    let _admitted = proxy::admit(pool)?;
    if websocket {
        return super::h2_ws::bridge(
            w, snap, route, pool, parts, &t, body, respond, ends, pinned, hash, e,
        )
        .await;
    }
    let src = H2Source::new(body, l.max_body_bytes);
    match pool.protocol {
        PoolProtocol::Http1 => {
            to_h1(
                w,
                proxy::stream_idle(snap, route),
                pool,
                parts,
                &t,
                framing,
                src,
                respond,
                ends,
                (hash, pinned),
                e,
            )
            .await
        }
        PoolProtocol::H2c | PoolProtocol::H2 => {
            to_h2(w, pool, parts, &t, src, respond, peer, (hash, pinned), e).await
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn to_h1<'s>(
    w: &Rc<Worker>,
    stream_idle: std::time::Duration,
    pool: &'s Pool,
    parts: &http::request::Parts,
    t: &Target<'_>,
    framing: Framing,
    src: H2Source,
    respond: &mut h2::server::SendResponse<Bytes>,
    (peer, local): (SocketAddr, Option<SocketAddr>),
    (hash, pinned): (Option<u64>, proxy::Pinned),
    e: &mut Entry<'s>,
) -> Result<(), ProxyError> {
    let method = parts.method.as_str();
    let client_ip = peer.ip().to_string();
    let fwd = Forwarded {
        client_ip: &client_ip,
        proto: t.proto(),
        via_version: "2",
    };
    let up_framing = match framing {
        Framing::Empty if proxy::expects_body(method) => Framing::Length(0),
        other => other,
    };
    let mut out = Vec::with_capacity(512);
    http1::write_request_head(
        &mut out,
        method.as_bytes(),
        t.path.as_bytes(),
        t.host.as_bytes(),
        proxy::map_fields(&parts.headers).iter().copied(),
        up_framing,
        &fwd,
    );
    let is_head = parts.method == http::Method::HEAD;
    // Connect failures are retried; a request streamed from an HTTP/2 client is
    // not replayed once sent.
    let mut attempts = proxy::Attempts::new(pool, hash, pinned, false);
    let mut src = Some(src);
    while let Some(backend) = attempts.next(w, e).await {
        // Queued for a connection slot before counting as in flight on the backend:
        // a waiting request must not skew least-connections or hold up a drain.
        let _slot = proxy::conn_slot(pool).await?;
        let _lease = Lease::new(&backend.state);
        loop {
            let ends = local.map(|local| (peer, local));
            let (upc, reused) = match proxy::h1_conn(w, pool, backend, ends).await {
                Ok(c) => c,
                Err(err) => {
                    attempts.failed(w, err);
                    break;
                }
            };
            match io::write_all(&upc, &out, pool.upstream_timeout).await {
                Ok(()) => {}
                Err(_) if reused => continue,
                Err(err) => return Err(ProxyError::BadResponse(err.to_string())),
            }
            let Some(body) = src.take() else {
                return Err(ProxyError::BadResponse("request body already sent".into()));
            };
            let sent_at = Instant::now();
            let mut resp_buf = io::ReadBuf::default();
            let mut body_ok = framing == Framing::Empty;
            let mut body = Source::H2(body);
            let resp = {
                let head_fut = read_response(&upc, &mut resp_buf, is_head, pool.upstream_timeout);
                tokio::pin!(head_fut);
                if body_ok {
                    head_fut.await
                } else {
                    let mode = if up_framing == Framing::Chunked {
                        Out::Chunked
                    } else {
                        Out::Raw
                    };
                    let mut sink =
                        Sink::H1(H1Sink::new(&upc, Vec::new(), mode, pool.upstream_timeout));
                    let pumping = pump(&mut body, &mut sink);
                    tokio::pin!(pumping);
                    tokio::select! {
                        biased;
                        r = &mut pumping => match r {
                            Ok(()) => { body_ok = true; head_fut.as_mut().await }
                            Err(PumpError::Source(err)) => return Err(super::h1::client_body_error(err)),
                            Err(PumpError::Sink(_)) => head_fut.as_mut().await,
                        },
                        r = &mut head_fut => r,
                    }
                }
            };
            e.bytes_in = body.received();
            let rh = match resp {
                Ok(rh) => rh,
                Err(HeadFailure::Closed { nothing: true, .. })
                    if reused && framing == Framing::Empty =>
                {
                    if let Source::H2(b) = body {
                        src = Some(b);
                    }
                    continue;
                }
                Err(f) => {
                    let err = f.into_error();
                    if let Some(m) = attempts.member() {
                        proxy::outcome(w, pool, m, Outcome::gateway_failure());
                    }
                    return Err(err);
                }
            };
            if rh.status == 101 {
                return Err(ProxyError::BadResponse(
                    "101 without an upgrade request".into(),
                ));
            }
            proxy::observed(
                w,
                pool,
                backend,
                attempts.member(),
                rh.status,
                sent_at.elapsed(),
                e,
            );
            e.status = rh.status;
            let rhb = resp_buf.split_to(rh.len).freeze();
            let mut headers = proxy::h2_response_headers(rh.fields(&rhb));
            if is_head {
                if let Framing::Length(n) = client_framing(&rh, &rhb, true, true) {
                    headers.insert(http::header::CONTENT_LENGTH, n.into());
                }
            }
            let body_framing = if is_head { Framing::Empty } else { rh.body };
            let mut response = Response::new(());
            *response.status_mut() = StatusCode::from_u16(rh.status)
                .map_err(|_| ProxyError::BadResponse("invalid status".into()))?;
            proxy::add_set_cookie(&mut headers, attempts.set_cookie());
            *response.headers_mut() = headers;
            let stream = respond
                .send_response(response, body_framing == Framing::Empty)
                .map_err(|err| ProxyError::Client(err.to_string()))?;
            let reusable;
            if body_framing == Framing::Empty {
                reusable = rh.keep_alive && resp_buf.is_empty();
            } else {
                let idle = proxy::body_idle(pool, stream_idle, rh.fields(&rhb));
                let mut rsrc = Source::H1(H1Source::new(
                    &upc,
                    &mut resp_buf,
                    body_framing,
                    idle,
                    u64::MAX,
                ));
                let mut sink = Sink::H2(H2Sink::new(stream));
                let result = pump(&mut rsrc, &mut sink).await;
                e.bytes_out = sink.sent();
                let done = matches!(&rsrc, Source::H1(s) if s.is_done());
                drop(rsrc);
                if let Err(err) = result {
                    e.error = Some(err.to_string());
                    return Ok(());
                }
                reusable = rh.keep_alive && done && resp_buf.is_empty();
            }
            if reusable && body_ok && pool.send_proxy.is_none() {
                w.h1_pool
                    .put(pool.conn_key(backend.addr), upc, pool.max_idle);
            }
            return Ok(());
        }
    }
    Err(attempts.exhausted())
}

#[allow(clippy::too_many_arguments)]
async fn to_h2<'s>(
    w: &Rc<Worker>,
    pool: &'s Pool,
    parts: &http::request::Parts,
    t: &Target<'_>,
    src: H2Source,
    respond: &mut h2::server::SendResponse<Bytes>,
    peer: SocketAddr,
    (hash, pinned): (Option<u64>, proxy::Pinned),
    e: &mut Entry<'s>,
) -> Result<(), ProxyError> {
    let mut attempts = proxy::Attempts::new(pool, hash, pinned, false);
    let (mut send, backend) = loop {
        let Some(backend) = attempts.next(w, e).await else {
            return Err(attempts.exhausted());
        };
        match proxy::h2_conn(w, pool, backend).await {
            Ok(send) => break (send, backend),
            Err(err) => attempts.failed(w, err),
        }
    };
    let _lease = Lease::new(&backend.state);
    let headers = proxy::h2_request_headers(
        proxy::map_fields(&parts.headers).iter().copied(),
        t.host,
        peer,
        t.proto(),
        "2",
    );
    let mut builder = Request::builder().method(parts.method.clone()).uri(format!(
        "{}://{}{}",
        if pool.tls.is_some() { "https" } else { "http" },
        t.host,
        t.path
    ));
    if let Some(h) = builder.headers_mut() {
        *h = headers;
    }
    let request = builder
        .body(())
        .map_err(|_| ProxyError::BadRequest("invalid request"))?;
    let ended = src.is_end();
    let (response, stream) = send.send_request(request, ended).map_err(|err| {
        w.h2_pool.remove(pool.conn_key(backend.addr));
        ProxyError::BadResponse(err.to_string())
    })?;
    let sent_at = Instant::now();
    if !ended {
        // The request body streams on its own task, so a response that comes first
        // (or a bidirectional stream) is never blocked behind it.
        tokio::task::spawn_local(async move {
            let mut src = Source::H2(src);
            let mut sink = Sink::H2(H2Sink::new(stream));
            let _ = pump(&mut src, &mut sink).await;
        });
    }
    // A gRPC call's own deadline caps the wait, and past it the call is over for
    // the client whatever the backend does.
    let deadline = parts
        .headers
        .get("grpc-timeout")
        .and_then(|v| fulcrum_core::grpc::parse_timeout(v.as_bytes()))
        .filter(|d| *d < pool.upstream_timeout);
    let limit = deadline.unwrap_or(pool.upstream_timeout);
    let reset = std::future::poll_fn(|cx| respond.poll_reset(cx));
    let response = tokio::select! {
        r = tokio::time::timeout(limit, response) => r,
        // The client cancelled: returning drops the backend stream, which h2 resets.
        _ = reset => return Err(ProxyError::Client("stream reset by the client".into())),
    };
    let response = match response {
        Ok(Ok(r)) => r,
        Ok(Err(err)) => {
            attempts.failed(w, ProxyError::BadResponse(err.to_string()));
            return Err(attempts.exhausted());
        }
        // The client's deadline, not the backend's fault: no outlier record.
        Err(_) if deadline.is_some() => return Err(ProxyError::BackendTimeout),
        Err(_) => {
            attempts.failed(w, ProxyError::BackendTimeout);
            return Err(attempts.exhausted());
        }
    };
    proxy::observed(
        w,
        pool,
        backend,
        attempts.member(),
        response.status().as_u16(),
        sent_at.elapsed(),
        e,
    );
    let (rparts, recv) = response.into_parts();
    e.status = rparts.status.as_u16();
    let mut out = Response::new(());
    *out.status_mut() = rparts.status;
    *out.headers_mut() =
        proxy::h2_response_headers(proxy::map_fields(&rparts.headers).iter().copied());
    proxy::add_set_cookie(out.headers_mut(), attempts.set_cookie());
    let end = recv.is_end_stream();
    let stream = respond
        .send_response(out, end)
        .map_err(|err| ProxyError::Client(err.to_string()))?;
    if !end {
        let mut src = Source::H2(H2Source::new(recv, u64::MAX));
        let mut sink = Sink::H2(H2Sink::new(stream));
        let left = deadline.map(|d| d.saturating_sub(sent_at.elapsed()));
        let result = match left {
            Some(left) => tokio::time::timeout(left, pump(&mut src, &mut sink))
                .await
                .unwrap_or_else(|_| Err(PumpError::Sink("grpc-timeout passed".into()))),
            None => pump(&mut src, &mut sink).await,
        };
        e.bytes_out = sink.sent();
        if let Err(err) = result {
            // Both streams are reset: the client sees the call end, not a clean end.
            sink.abort();
            e.error = Some(err.to_string());
        }
    }
    Ok(())
}

/// A socket whose first bytes were already read: they are replayed before the rest.
struct Rewind<T> {
    prefix: Bytes,
    inner: T,
}

impl<T: AsyncRead + Unpin> AsyncRead for Rewind<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(self.prefix.get(..n).unwrap_or_default());
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Rewind<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
