//! The HTTP/2 backend leg, on the `h2` crate: one multiplexed connection per
//! backend and worker (h2c, or TLS with ALPN h2), a stream per request. A body the
//! client streams over HTTP/2 is sent on a task of its own, so a response that comes
//! first (or a bidirectional gRPC call) is never blocked behind it; a body read from
//! an HTTP/1.1 client is sent while the response head is awaited.

use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use fulcrum_core::balance::Backend;

use super::attempts::{Attempts, Step};
use super::h1::Exchanged;
use super::passive::observed;
use crate::access_log::Entry;
use crate::http::body::{pump, H2Sink, PumpError, Sink, Source};
use crate::http::error::client_body_error;
use crate::http::fields::{map_framing, request_map};
use crate::http::message::{Head, Request, Response, ResponseBody};
use crate::http::ProxyError;
use crate::io::Conn;
use crate::state::{ConnKey, Pool};
use crate::worker::Worker;

/// An HTTP/2 connection to `backend`, pooled per worker, ready for a new stream,
/// with the time a new one took to open (zero for a pooled one).
pub async fn conn(
    w: &Rc<Worker>,
    pool: &Pool,
    backend: &Backend,
) -> Result<(h2::client::SendRequest<Bytes>, Duration), ProxyError> {
    let addr = backend.addr;
    let key = pool.conn_key(addr);
    if let Some(send) = w.h2_pool.get(key) {
        match send.ready().await {
            Ok(send) => return Ok((send, Duration::ZERO)),
            Err(_) => w.h2_pool.remove(key),
        }
    }
    let started = Instant::now();
    // Boxed: a new connection (TCP, TLS, the HTTP/2 handshake) is the rare case,
    // and its future would otherwise size every request's.
    let send = Box::pin(connect(w, pool, backend)).await?;
    let send = send.ready().await.map_err(|e| ProxyError::Connect {
        addr,
        reason: e.to_string(),
    })?;
    Ok((send, started.elapsed()))
}

/// The response to a request whose body is still arriving: the body is sent on the
/// stream while the response is awaited (it may come first). Boxed by its caller:
/// the pump's state would otherwise size every request's future.
async fn upload(
    stream: h2::SendStream<Bytes>,
    body: &mut Source<'_>,
    mut timed: std::pin::Pin<&mut tokio::time::Timeout<h2::client::ResponseFuture>>,
) -> Result<
    Result<Result<http::Response<h2::RecvStream>, h2::Error>, tokio::time::error::Elapsed>,
    crate::http::body::BodyError,
> {
    let mut sink = Sink::H2(H2Sink::new(stream));
    let pumping = pump(body, &mut sink);
    tokio::pin!(pumping);
    Ok(tokio::select! {
        biased;
        r = &mut pumping => match r {
            Ok(()) => timed.await,
            Err(PumpError::Source(err)) => return Err(err),
            Err(PumpError::Sink(_)) => timed.await,
        },
        r = &mut timed => r,
    })
}

/// Opens a new HTTP/2 connection to `backend` and keeps it in the worker's pool.
async fn connect(
    w: &Rc<Worker>,
    pool: &Pool,
    backend: &Backend,
) -> Result<h2::client::SendRequest<Bytes>, ProxyError> {
    let addr = backend.addr;
    let key = pool.conn_key(addr);
    let fail = |reason: String| ProxyError::Connect { addr, reason };
    let started = Instant::now();
    let io = super::open(addr, pool.connect_timeout, &[], pool.tls.as_deref())
        .await
        .map_err(|e| fail(e.to_string()))?;
    pool.state.connect.observe(started.elapsed());
    let mut builder = h2::client::Builder::new();
    builder
        .initial_window_size(1 << 20)
        .initial_connection_window_size(4 << 20);
    let send = match io {
        Conn::Tcp(tcp) => spawn(w, key, &builder, tcp, pool.connect_timeout).await,
        Conn::Tls(tls) => spawn(w, key, &builder, *tls, pool.connect_timeout).await,
    }
    .map_err(fail)?;
    w.h2_pool.put(key, send.clone());
    Ok(send)
}

/// Runs an HTTP/2 client handshake over `io` and spawns its connection task.
async fn spawn<T>(
    w: &Rc<Worker>,
    key: ConnKey,
    builder: &h2::client::Builder,
    io: T,
    limit: std::time::Duration,
) -> Result<h2::client::SendRequest<Bytes>, String>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + 'static,
{
    let (send, conn) = tokio::time::timeout(limit, builder.handshake(io))
        .await
        .map_err(|_| "h2 handshake timed out".to_owned())?
        .map_err(|e| e.to_string())?;
    let worker = w.clone();
    tokio::task::spawn_local(async move {
        let _ = conn.await;
        worker.h2_pool.remove(key);
    });
    Ok(send)
}

/// One try of `req` on `backend`; `body` is the client's body.
pub async fn exchange(
    w: &Rc<Worker>,
    pool: &Pool,
    backend: &Backend,
    attempts: &Attempts<'_>,
    req: &Request<'_>,
    body: &mut Source<'_>,
    e: &mut Entry<'_>,
) -> Step<Exchanged> {
    let mut send = match conn(w, pool, backend).await {
        Ok((send, took)) => {
            e.connect = Some(took);
            send
        }
        Err(err) => return Step::Failed(err),
    };
    let client_ip = req.forwarded_ip().to_string();
    let headers = request_map(req.fields(), req.target.host, &req.forwarded(&client_ip));
    let scheme = if pool.tls.is_some() { "https" } else { "http" };
    let uri = format!("{scheme}://{}{}", req.target.host, req.target.path);
    let mut builder = http::Request::builder().method(req.method).uri(uri);
    if let Some(h) = builder.headers_mut() {
        *h = headers;
    }
    let Ok(request) = builder.body(()) else {
        return Step::Fatal(ProxyError::BadRequest("request not representable in HTTP/2").into());
    };
    let ended = body.is_done();
    let (response, stream) = match send.send_request(request, ended) {
        Ok(sent) => sent,
        Err(err) => {
            w.h2_pool.remove(pool.conn_key(backend.addr));
            return Step::Failed(ProxyError::BadResponse(err.to_string()));
        }
    };
    let sent_at = Instant::now();
    // A gRPC call's own deadline caps the wait, and past it the call is over for
    // the client whatever the backend does.
    let deadline = req
        .grpc_timeout
        .filter(|d| *d < attempts.upstream_timeout());
    let limit = deadline.unwrap_or(if ended {
        attempts.head_timeout()
    } else {
        attempts.upstream_timeout()
    });
    let timed = tokio::time::timeout(limit, response);
    tokio::pin!(timed);
    let response = if ended {
        drop(stream);
        timed.await
    } else if let Some(mut owned) = body.take_owned() {
        // Streamed on its own task: the response may come first, or both may flow
        // at once (gRPC bidirectional streams).
        tokio::task::spawn_local(async move {
            let mut sink = Sink::H2(H2Sink::new(stream));
            let _ = pump(&mut owned, &mut sink).await;
        });
        timed.await
    } else {
        match Box::pin(upload(stream, body, timed)).await {
            Ok(r) => r,
            Err(err) => return Step::Fatal(client_body_error(err).into()),
        }
    };
    let response = match response {
        Ok(Ok(r)) => r,
        Ok(Err(err)) => return Step::Failed(ProxyError::BadResponse(err.to_string())),
        // The client's deadline, not the backend's fault: no outlier record.
        Err(_) if deadline.is_some() => return Step::Fatal(ProxyError::BackendTimeout.into()),
        Err(_) => return Step::Failed(ProxyError::BackendTimeout),
    };
    let status = response.status().as_u16();
    observed(
        w,
        pool,
        backend,
        attempts.member(),
        status,
        sent_at.elapsed(),
        e,
    );
    if attempts.retry_status(status) {
        return Step::Failed(ProxyError::Retried(status));
    }
    let (parts, recv) = response.into_parts();
    let ended = recv.is_end_stream() || req.is_head();
    Step::Done(Exchanged::Response(Response {
        status,
        framing: map_framing(&parts.headers, ended),
        head: Head::Map(parts.headers),
        body: ResponseBody::H2(Some(recv)),
        set_cookie: attempts.set_cookie(),
        edits: None,
        encode: None,
        deadline: deadline.map(|d| tokio::time::Instant::from_std(sent_at) + d),
        bodyless: false,
    }))
}
