//! HTTP/3 from clients with the `h3` crate over `quinn`: each request stream
//! becomes a [`Request`] for the same forward step as HTTP/1.1 and HTTP/2, on a
//! task of its own; what comes back is encoded by `respond`.
//!
//! Malformed requests (RFC 9114 §4.2, §4.3) never reach a backend: `h3` refuses
//! bad pseudo-header sections with a stream error, and connection-specific fields
//! are refused here with 400.

mod respond;

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use fulcrum_core::forward::{FieldList, Target};
use http::{Request as HttpRequest, Response, StatusCode};

use super::forward::{client, describe, forward, Forwarded};
use super::ids::Ids;
use crate::access_log::Entry;
use crate::http::body::{H3Send, H3Source, Probed, Source};
use crate::http::error::{wants_json, ErrorBody};
use crate::http::fields::{host_and_path, is_grpc, map_fields, map_framing};
use crate::http::message::{Asked, Local};
use crate::http::{ProxyError, Request};
use crate::worker::{Busy, Worker};

/// Fields that belong to one HTTP/1.1 connection; an HTTP/3 request carrying one
/// is malformed (RFC 9114 §4.2), and passing it on could make a backend read the
/// request differently.
const CONNECTION_SPECIFIC: [&str; 5] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
];

/// Cancelled streams a connection may have before the share test applies.
const CANCELS_ALLOWED: u32 = 100;

/// A connection's streams and the ones its client cancelled before an answer
/// (reset with or right after their header section). A flood of such streams
/// (HTTP/2's Rapid Reset, carried to QUIC) costs Fulcrum a header decode each and
/// never a backend request; past [`CANCELS_ALLOWED`], and once cancels are over half
/// of its streams, the connection is closed with H3_EXCESSIVE_LOAD.
#[derive(Default)]
struct Cancels {
    streams: std::cell::Cell<u32>,
    cancelled: std::cell::Cell<u32>,
    excessive: tokio::sync::Notify,
}

impl Cancels {
    fn cancel(&self) {
        let n = self.cancelled.get() + 1;
        self.cancelled.set(n);
        if n >= CANCELS_ALLOWED && u64::from(n) * 2 > u64::from(self.streams.get()) {
            self.excessive.notify_one();
        }
    }
}

/// What a stopping connection waits after its last answer and its GOAWAY before
/// it closes, on top of four round trips.
const CLOSE_DRAIN_MIN: Duration = Duration::from_millis(100);
/// The most a stopping connection waits after its last answer and its GOAWAY.
const CLOSE_DRAIN_MAX: Duration = Duration::from_secs(2);

/// Whether a request read from `conn` now came in 0-RTT data. A server processes
/// no 1-RTT packet before its TLS handshake is complete (RFC 9001 §5.7), and
/// rustls exports keying material only once it is: so a request read while that
/// fails arrived in early data. One read after the handshake completed may have
/// too; such a connection is not a replay (a replayed handshake never completes).
/// `done` remembers a completed handshake.
fn in_early_data(conn: &quinn::Connection, done: &std::cell::Cell<bool>) -> bool {
    if done.get() {
        return false;
    }
    let complete = conn
        .export_keying_material(&mut [0u8; 1], b"fulcrum handshake probe", b"")
        .is_ok();
    done.set(complete);
    !complete
}

/// Serves one QUIC connection of listener `listener` until it closes; `local` is
/// the address the client reached.
pub async fn serve(
    w: Rc<Worker>,
    conn: quinn::Connection,
    local: Option<SocketAddr>,
    listener: Rc<str>,
    traffic: &crate::stats::Traffic,
) {
    let peer = conn.remote_address();
    let (max_header, early_data) = {
        let snap = w.shared.load();
        let Some(l) = snap.listeners.get(&*listener) else {
            return;
        };
        (l.max_header_bytes as u64, l.early_data)
    };
    // Without early_data the handshake completed before the connection came here.
    let handshaken = Rc::new(std::cell::Cell::new(!early_data));
    let _busy = Busy::new(&w);
    let quic = conn.clone();
    let built = h3::server::builder()
        .max_field_section_size(max_header)
        // RFC 9220: WebSocket over extended CONNECT (SETTINGS_ENABLE_CONNECT_PROTOCOL).
        .enable_extended_connect(true)
        .build::<_, Bytes>(h3_quinn::Connection::new(conn))
        .await;
    let Ok(mut h3) = built else {
        return;
    };
    let mut closing = false;
    let cancels = Rc::new(Cancels::default());
    // Requests in flight on this connection, so a stop can close it once they end
    // instead of waiting out an idle client.
    let active = Rc::new(std::cell::Cell::new(0usize));
    let done = Rc::new(tokio::sync::Notify::new());
    // When the last request stream ended: its final bytes may still be in flight.
    let last_end: Rc<std::cell::Cell<Option<Instant>>> = Rc::default();
    // When the GOAWAY went out.
    let mut closed_at = Instant::now();
    loop {
        if w.stopping.get() && !closing {
            // GOAWAY: requests already open finish, new ones go elsewhere.
            let _ = h3.shutdown(0).await;
            closing = true;
            closed_at = Instant::now();
        }
        // Closing: once the last request ended, and a few round trips after it and
        // after the GOAWAY. A close discards stream data not yet acknowledged (an
        // answer's last bytes), and requests the client sent before it saw the
        // GOAWAY get H3_REQUEST_REJECTED meanwhile (h3 does that while accepting),
        // which tells the client to send them again elsewhere.
        let mut linger = None;
        if closing && active.get() == 0 {
            let drain = (quic.rtt() * 4 + CLOSE_DRAIN_MIN).min(CLOSE_DRAIN_MAX);
            let since = last_end.get().map_or(closed_at, |t| t.max(closed_at));
            match drain.checked_sub(since.elapsed()) {
                Some(left) if !left.is_zero() => linger = Some(left),
                _ => {
                    // H3_NO_ERROR: the client reconnects to whoever serves next.
                    quic.close(quinn::VarInt::from_u32(0x0100), b"shutting down");
                    break;
                }
            }
        }
        tokio::select! {
            r = h3.accept() => match r {
                Ok(Some(resolver)) => {
                    traffic.quic.streams.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    cancels.streams.set(cancels.streams.get().saturating_add(1));
                    let (w, listener, cancels) = (w.clone(), listener.clone(), cancels.clone());
                    active.set(active.get() + 1);
                    let (active, done, last_end) = (active.clone(), done.clone(), last_end.clone());
                    let (quic, handshaken) = (quic.clone(), handshaken.clone());
                    tokio::task::spawn_local(Box::pin(async move {
                        // A stream without a valid header section gets its stream
                        // error from h3 and never reaches the forward step.
                        match resolver.resolve_request().await {
                            Ok((req, stream)) => {
                                let (send, recv) = stream.split();
                                let conn = (peer, local, in_early_data(&quic, &handshaken));
                                if !handle(&w, req, send, recv, conn, &listener).await {
                                    cancels.cancel();
                                }
                            }
                            Err(_) => cancels.cancel(),
                        }
                        active.set(active.get() - 1);
                        last_end.set(Some(Instant::now()));
                        done.notify_waiters();
                    }));
                }
                Ok(None) | Err(_) => break,
            },
            () = cancels.excessive.notified() => {
                tracing::warn!(listener = %listener, client = %peer, cancelled = cancels.cancelled.get(), streams = cancels.streams.get(), "HTTP/3 connection closed: too many cancelled streams");
                // H3_EXCESSIVE_LOAD (RFC 9114 §8.1).
                quic.close(quinn::VarInt::from_u32(0x0107), b"too many cancelled streams");
                break;
            }
            () = done.notified(), if closing => {}
            // select! builds every branch's future each turn: no timer unless lingering.
            () = async {
                match linger {
                    Some(left) => tokio::time::sleep(left).await,
                    None => std::future::pending().await,
                }
            }, if linger.is_some() => {}
            () = w.stop.notified(), if !closing => {}
        }
    }
}

/// Methods whose requests may be replayed without harm (RFC 9110 §9.2.1).
fn is_safe(method: &http::Method) -> bool {
    matches!(
        *method,
        http::Method::GET | http::Method::HEAD | http::Method::OPTIONS | http::Method::TRACE
    )
}

/// Serves one request stream; `false` when the client cancelled it: before it was
/// forwarded (nothing was), or before its answer went out.
async fn handle(
    w: &Rc<Worker>,
    req: HttpRequest<()>,
    mut send: H3Send,
    recv: crate::http::body::H3Recv,
    (peer, local, early): (SocketAddr, Option<SocketAddr>, bool),
    listener: &str,
) -> bool {
    let started = Instant::now();
    let snap = w.shared.load_full();
    let Some(l) = snap.listeners.get(listener) else {
        return true;
    };
    let mut src = H3Source::new(recv, l.max_body_bytes);
    let probed = src.probe();
    if probed == Probed::Reset {
        return false;
    }
    let (mut parts, ()) = req.into_parts();
    // RFC 8470: a replayable request goes on only if its method is safe, marked so
    // the backend may still answer 425.
    let too_early = early && !is_safe(&parts.method);
    if early && !too_early {
        parts
            .headers
            .insert("early-data", http::HeaderValue::from_static("1"));
    }
    let (host, path) = host_and_path(&parts);
    let method = parts.method.as_str();
    let mut e = Entry {
        listener: &l.name,
        listener_traffic: Some(&l.traffic),
        client: Some(peer),
        proto: "HTTP/3",
        method,
        host,
        path,
        ..Entry::default()
    };
    let grpc = is_grpc(&parts.headers);
    let websocket = parts.method == http::Method::CONNECT
        && parts.extensions.get::<h3::ext::Protocol>() == Some(&h3::ext::Protocol::WEBSOCKET);
    let pairs = map_fields(&parts.headers);
    let fields = FieldList::Pairs(&pairs);
    let ids = if l.request_id.is_some() || snap.config.tracing.is_some() {
        Ids::new(w, l, snap.config.tracing.as_ref(), fields.iter())
    } else {
        Ids::default()
    };
    let (peer, via_proxy) = client(l, peer, fields);
    e.client = Some(peer);
    let ended = probed == Probed::Ended;
    let req = Request {
        via_proxy,
        method,
        target: Target {
            host,
            path,
            absolute: false,
            secure: true,
        },
        fields,
        identity: None,
        request_id: ids.request_id_field(),
        traceparent: ids.traceparent_field(),
        via: "3",
        peer,
        local: Local::Known(local),
        framing: map_framing(&parts.headers, ended),
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
    e.request_id = ids.request_id();
    ids.begin(&mut e);
    if w.log.enabled() {
        describe(&mut e, &req, &ids);
    }
    let te = parts
        .headers
        .get_all(http::header::TE)
        .iter()
        .any(|v| !v.as_bytes().eq_ignore_ascii_case(b"trailers"));
    let malformed = te
        || CONNECTION_SPECIFIC
            .iter()
            .any(|n| parts.headers.contains_key(*n));
    let mut body = Source::H3(src);
    let result = if malformed {
        Err(ProxyError::BadRequest("connection-specific header field in an HTTP/3 request").into())
    } else if too_early {
        Err(ProxyError::TooEarly(parts.method.to_string()).into())
    } else if parts.method == http::Method::CONNECT && !websocket {
        Err(ProxyError::MethodNotAllowed.into())
    } else {
        forward(w, &snap, l, &req, &mut body, &mut e).await
    };
    let body_done = body.is_done();
    let out = respond::Out {
        w,
        send: &mut send,
        request_id: l
            .request_id
            .as_ref()
            .map(|(h, _)| (&**h, e.request_id))
            .filter(|(_, id)| !id.is_empty()),
    };
    let result = match result {
        Ok(Forwarded::Answered(a)) => out.answer(a, &mut e).await,
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
    // The answer could not go out: the client reset the stream meanwhile.
    let delivered = !matches!(result, Err(ProxyError::Client(_)));
    if let Err(err) = result {
        if e.status == 0 && grpc {
            // A gRPC client reads the status from grpc-status, not from HTTP.
            e.status = 200;
            send_grpc_error(&mut send, &err).await;
        } else if e.status == 0 {
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
            send_error(&mut send, status, err.retry_after(), rid, body).await;
        }
        e.error = Some(err.to_string());
    }
    e.duration = started.elapsed();
    crate::access_log::record(&e);
    if w.log.enabled() {
        w.log.write(&e);
    }
    super::ids::finish(w, &mut e);
    delivered
}

/// A trailers-only gRPC answer (HTTP 200, `grpc-status`, `grpc-message`) for an
/// error Fulcrum produced itself, as over HTTP/2.
async fn send_grpc_error(send: &mut H3Send, err: &ProxyError) {
    let (code, message) = crate::http::error::grpc_status(err);
    let mut builder = Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/grpc")
        .header("grpc-status", code);
    if let Ok(v) = http::HeaderValue::from_str(&message) {
        builder = builder.header("grpc-message", v);
    }
    if let Ok(response) = builder.body(()) {
        if send.send_response(response).await.is_ok() {
            let _ = send.finish().await;
        }
    }
}

async fn send_error(
    send: &mut H3Send,
    status: u16,
    retry_after: Option<u32>,
    request_id: Option<(&str, &str)>,
    body: ErrorBody,
) {
    let mut builder = Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY))
        .header("content-type", body.content_type)
        .header("content-length", body.body.len());
    if let Some(secs) = retry_after {
        builder = builder.header("retry-after", secs);
    }
    if let Some((name, id)) = request_id {
        builder = builder.header(name, id);
    }
    let response = builder.body(()).unwrap_or_default();
    if send.send_response(response).await.is_ok() {
        let _ = send.send_data(body.body).await;
        let _ = send.finish().await;
    }
}
