//! HTTP/2 from clients (h2c with prior knowledge, or TLS with ALPN h2) with the
//! `h2` crate: each stream becomes a [`Request`] for the forward step, on a task of
//! its own; what comes back is encoded by `respond`. WebSocket over HTTP/2
//! (RFC 8441) is a request like any other, bridged by `ws` once switched.

mod respond;
mod rewind;

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use fulcrum_core::forward::{FieldList, Target};
use http::{Request as HttpRequest, Response, StatusCode};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Notify;

use super::forward::{client, describe, forward, Forwarded};
use super::ids::Ids;
use crate::access_log::Entry;
use crate::http::body::{H2Source, Source};
use crate::http::error::{wants_json, ErrorBody};
use crate::http::fields::{host_and_path, is_grpc, map_fields, map_framing};
use crate::http::message::{Asked, Local};
use crate::http::{ProxyError, Request};
use crate::worker::Worker;
use rewind::Rewind;

/// Serves an HTTP/2 connection (h2c, or TLS with ALPN h2) whose first bytes
/// (the preface) may already be in `prefix`. `local` is the address the client
/// reached, for a PROXY header toward a pool that sends one.
pub async fn serve<T>(
    w: Rc<Worker>,
    io: T,
    prefix: BytesMut,
    (peer, local): (SocketAddr, Option<SocketAddr>),
    listener: Rc<str>,
    session: Option<Rc<crate::tls::Session>>,
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
                    let session = session.clone();
                    // Boxed: the stream's future is about 8 KB, and tokio moves a
                    // spawned future several times before its first poll (one copy
                    // into the box instead: +4% requests per CPU-second, h2load).
                    tokio::task::spawn_local(Box::pin(async move {
                        handle(&w, req, respond, (peer, local), (&listener, session.as_deref())).await;
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

/// Whether `parts` is an extended CONNECT for a WebSocket.
fn is_websocket(parts: &http::request::Parts) -> bool {
    parts.method == http::Method::CONNECT
        && parts
            .extensions
            .get::<h2::ext::Protocol>()
            .is_some_and(|p| p.as_str().eq_ignore_ascii_case("websocket"))
}

async fn handle(
    w: &Rc<Worker>,
    req: HttpRequest<h2::RecvStream>,
    mut respond: h2::server::SendResponse<Bytes>,
    (peer, local): (SocketAddr, Option<SocketAddr>),
    (listener, session): (&str, Option<&crate::tls::Session>),
) {
    let started = Instant::now();
    let snap = w.shared.load_full();
    let Some(l) = snap.listeners.get(listener) else {
        return;
    };
    let (parts, recv) = req.into_parts();
    let (host, path) = host_and_path(&parts);
    let method = parts.method.as_str();
    let mut e = Entry {
        listener: &l.name,
        listener_traffic: Some(&l.traffic),
        client: Some(peer),
        proto: "HTTP/2",
        method,
        host,
        path,
        ..Entry::default()
    };
    let grpc = is_grpc(&parts.headers);
    let pairs = map_fields(&parts.headers);
    let websocket = is_websocket(&parts);
    let fields = FieldList::Pairs(&pairs);
    let ids = if l.request_id.is_some() || snap.config.tracing.is_some() {
        Ids::new(w, l, snap.config.tracing.as_ref(), fields.iter())
    } else {
        Ids::default()
    };
    let subject = session.and_then(|s| s.subject.as_deref());
    let (peer, via_proxy) = client(l, peer, fields);
    e.client = Some(peer);
    let req = Request {
        via_proxy,
        method,
        target: Target {
            host,
            path,
            absolute: false,
            secure: l.tls.is_some(),
        },
        fields,
        // The client-certificate header is Fulcrum's to set: a client's own never
        // reaches a route or a backend.
        identity: l
            .tls
            .as_ref()
            .and_then(|t| t.subject_header.as_deref())
            .map(|name| (name.as_bytes(), subject.map(str::as_bytes))),
        request_id: ids.request_id_field(),
        traceparent: ids.traceparent_field(),
        via: "2",
        peer,
        local: Local::Known(local),
        framing: map_framing(&parts.headers, recv.is_end_stream()),
        asked: if websocket {
            Asked::WebSocket
        } else {
            Asked::Nothing
        },
        grpc_timeout: parts
            .headers
            .get("grpc-timeout")
            .and_then(|v| fulcrum_core::grpc::parse_timeout(v.as_bytes())),
        original_host: None,
    };
    // Returned to the client as well as logged.
    e.request_id = ids.request_id();
    ids.begin(&mut e);
    if w.log.enabled() {
        describe(&mut e, &req, &ids);
        e.tls = session.map(Into::into);
    }
    let mut body = Source::H2(H2Source::new(recv, l.max_body_bytes));
    let result = if parts.method == http::Method::CONNECT && !websocket {
        Err(ProxyError::MethodNotAllowed.into())
    } else if grpc {
        // A gRPC call may wait long (a deadline, a quiet server stream): a client's
        // cancel drops the forward, which resets the backend stream. Other requests
        // do not pay for watching (a lock on the connection at every wake-up).
        let forwarded = forward(w, &snap, l, &req, &mut body, &mut e);
        let reset = std::future::poll_fn(|cx| respond.poll_reset(cx));
        tokio::select! {
            biased;
            r = forwarded => r,
            _ = reset => Err(ProxyError::Client("stream reset by the client".into()).into()),
        }
    } else {
        forward(w, &snap, l, &req, &mut body, &mut e).await
    };
    let body_done = body.is_done();
    let out = respond::Out {
        w,
        respond: &mut respond,
        request_id: l
            .request_id
            .as_ref()
            .map(|(h, _)| (&**h, e.request_id))
            .filter(|(_, id)| !id.is_empty()),
    };
    let result = match result {
        Ok(Forwarded::Answered(a)) => out.answer(a, &mut e),
        Ok(Forwarded::File(file)) => out.file(file, &mut e).await,
        Ok(Forwarded::Response(resp, held)) => {
            out.response(req.is_head(), resp, held, body_done, &mut e)
                .await
        }
        Ok(Forwarded::Switched(sw, held, upgrade)) => {
            out.switch(body, sw, held, upgrade, &mut e).await
        }
        Err(f) => Err(f.err),
    };
    if let Err(err) = result {
        if e.status == 0 {
            if grpc {
                // A gRPC client reads the status from grpc-status, not from HTTP.
                e.status = 200;
                send_grpc_error(&mut respond, &err);
            } else {
                e.status = err.status();
                let rid = l
                    .request_id
                    .as_ref()
                    .map(|(name, _)| (&**name, e.request_id))
                    .filter(|(_, id)| !id.is_empty());
                let status = err.status();
                let accept = parts
                    .headers
                    .get(http::header::ACCEPT)
                    .map(|v| v.as_bytes());
                let page = l.error_page(e.route, status);
                let id = (!e.request_id.is_empty()).then_some(e.request_id);
                let body = ErrorBody::new(status, page, wants_json(accept), id);
                send_error(&mut respond, status, err.retry_after(), rid, body);
            }
        }
        e.error = Some(err.to_string());
    }
    e.duration = started.elapsed();
    crate::access_log::record(&e);
    if w.log.enabled() {
        w.log.write(&e);
    }
    super::ids::finish(w, &mut e);
}

fn send_error(
    respond: &mut h2::server::SendResponse<Bytes>,
    status: u16,
    retry_after: Option<u32>,
    request_id: Option<(&str, &str)>,
    body: ErrorBody,
) {
    let mut builder = Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY))
        .header("content-type", body.content_type);
    if let Some(secs) = retry_after {
        builder = builder.header("retry-after", secs);
    }
    if let Some((name, id)) = request_id {
        builder = builder.header(name, id);
    }
    let response = builder.body(()).unwrap_or_default();
    if let Ok(mut stream) = respond.send_response(response, false) {
        let _ = stream.send_data(body.body, true);
    }
}

/// A trailers-only gRPC answer (HTTP 200, `grpc-status`, `grpc-message`) for an
/// error Fulcrum produced itself, as Envoy answers them.
fn send_grpc_error(respond: &mut h2::server::SendResponse<Bytes>, err: &ProxyError) {
    let (code, message) = crate::http::error::grpc_status(err);
    let mut builder = Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/grpc")
        .header("grpc-status", code);
    if let Ok(v) = http::HeaderValue::from_str(&message) {
        builder = builder.header("grpc-message", v);
    }
    if let Ok(response) = builder.body(()) {
        let _ = respond.send_response(response, true);
    }
}
