//! The HTTP/1.1 backend leg, on our codec (`fulcrum_core::http1`): one try of a
//! request on one backend. The rewritten head leaves in one write with the body
//! bytes already read; the rest of the body streams while the response head is
//! awaited; a pooled connection found closed before anything was consumed is
//! replaced at once (a stale connection is not the backend's fault). Health probes
//! read responses with the same reader.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::{Buf, BytesMut};
use fulcrum_core::balance::Backend;
use fulcrum_core::forward::FieldList;
use fulcrum_core::http1::{self, Framing, HeadError, ResponseHead};
use sha1::{Digest, Sha1};

use super::attempts::{Attempts, Step};
use super::passive::observed;
use crate::access_log::Entry;
use crate::http::body::{pump, H1Sink, Out, PumpError, Sink, Source};
use crate::http::error::client_body_error;
use crate::http::fields::{expects_body, is_event_stream};
use crate::http::message::{Head, Plan, Request, Response, ResponseBody, Switch, Upgrade};
use crate::http::ProxyError;
use crate::io::{self, Conn, IoError};
use crate::state::Pool;
use crate::worker::Worker;

/// Largest response head accepted from a backend.
pub const MAX_RESPONSE_HEAD: usize = 64 * 1024;

/// RFC 6455 §1.3: appended to the key before hashing.
const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// What a try on a backend produced.
pub enum Exchanged {
    /// A response to send to the client.
    Response(Response),
    /// The backend switched protocols as asked.
    Switched(Switch),
}

/// Why no response head arrived.
#[derive(Debug)]
pub enum HeadFailure {
    /// Closed or reset; `nothing` when no byte of a response came.
    Closed {
        /// No response byte was seen.
        nothing: bool,
        /// What happened.
        reason: String,
    },
    /// Too slow.
    Timeout,
    /// Not a valid response head.
    Malformed(HeadError),
}

impl HeadFailure {
    /// The client-facing error.
    pub fn into_error(self) -> ProxyError {
        match self {
            Self::Timeout => ProxyError::BackendTimeout,
            Self::Closed { reason, .. } => ProxyError::BadResponse(reason),
            Self::Malformed(e) => ProxyError::BadResponse(e.to_string()),
        }
    }
}

/// Reads a final response head (interim 1xx other than 101 are skipped).
pub async fn read_response<S: crate::io::Socket>(
    up: &S,
    buf: &mut BytesMut,
    is_head: bool,
    limit: Duration,
) -> Result<ResponseHead, HeadFailure> {
    let mut seen = false;
    loop {
        if !buf.is_empty() {
            match http1::parse_response(buf, MAX_RESPONSE_HEAD, is_head) {
                Ok(Some(h)) if (100..200).contains(&h.status) && h.status != 101 => {
                    buf.advance(h.len);
                    continue;
                }
                Ok(Some(h)) => return Ok(h),
                Ok(None) => {}
                Err(e) => return Err(HeadFailure::Malformed(e)),
            }
        }
        match io::read_some(up, buf, limit).await {
            Ok(0) => {
                return Err(HeadFailure::Closed {
                    nothing: !seen && buf.is_empty(),
                    reason: "backend closed before a response".into(),
                });
            }
            Ok(_) => seen = true,
            Err(IoError::Timeout) => return Err(HeadFailure::Timeout),
            Err(IoError::Io(e)) => {
                return Err(HeadFailure::Closed {
                    nothing: !seen && buf.is_empty(),
                    reason: e.to_string(),
                })
            }
        }
    }
}

/// An HTTP/1.1 connection to `backend`: an idle pooled one (`None`) or a new one
/// (with the time its connect took).
///
/// A pool that sends a PROXY header always gets a new connection, its header naming
/// `ends` (the client and the local address it reached): the header is once per
/// connection, so a connection that carried one client's header never carries
/// another client's requests, and it is never pooled.
pub async fn conn(
    w: &Worker,
    pool: &Pool,
    backend: &Backend,
    ends: Option<(SocketAddr, SocketAddr)>,
) -> Result<(Conn, Option<Duration>), ProxyError> {
    let header = pool.send_proxy.map(|v| super::proxy_header(v, ends));
    if header.is_none() {
        if let Some(s) = w
            .h1_pool
            .take(pool.conn_key(backend.addr), pool.idle_timeout)
        {
            return Ok((s, None));
        }
    }
    let started = Instant::now();
    let header = header.as_deref().unwrap_or_default();
    let tls = pool.tls.as_deref();
    // Boxed: a new connection (with its TLS handshake) is the rare case, and its
    // future would otherwise size every request's.
    match Box::pin(super::open(backend.addr, pool.connect_timeout, header, tls)).await {
        Ok(s) => {
            let took = started.elapsed();
            pool.state.connect.observe(took);
            Ok((s, Some(took)))
        }
        Err(err) => {
            tracing::warn!(backend = %backend.addr, pool = %pool.name, error = %err, "connect failed");
            Err(ProxyError::Connect {
                addr: backend.addr,
                reason: err.to_string(),
            })
        }
    }
}

/// Sends the rest of a request body that is still arriving while the response head
/// is awaited (a backend may answer before the body ends); the client's body error,
/// if it failed. Boxed by its caller: the pump's state would otherwise size every
/// request's future, and most requests have no body.
async fn upload(
    up: &Conn,
    buf: &mut BytesMut,
    body: &mut Source<'_>,
    is_head: bool,
    framing: Framing,
    limit: Duration,
) -> Result<Result<ResponseHead, HeadFailure>, crate::http::body::BodyError> {
    let head = read_response(up, buf, is_head, limit);
    tokio::pin!(head);
    let mode = if framing == Framing::Chunked {
        Out::Chunked
    } else {
        Out::Raw
    };
    let mut sink = Sink::H1(H1Sink::new(up, Vec::new(), mode, limit));
    let pumping = pump(body, &mut sink);
    tokio::pin!(pumping);
    Ok(tokio::select! {
        biased;
        r = &mut pumping => match r {
            Ok(()) => head.as_mut().await,
            Err(PumpError::Source(err)) => return Err(err),
            // The backend stopped reading; it may still have answered.
            Err(PumpError::Sink(_)) => head.as_mut().await,
        },
        r = &mut head => r,
    })
}

/// The `Sec-WebSocket-Accept` value a backend must answer `key` with.
pub fn accept_for(key: &[u8]) -> String {
    let mut h = Sha1::new();
    h.update(key);
    h.update(GUID);
    base64::engine::general_purpose::STANDARD.encode(h.finalize())
}

/// Writes the request head for the backend into `out`.
fn write_head(
    out: &mut Vec<u8>,
    req: &Request<'_>,
    plan: &Plan<'_>,
    framing: Framing,
    client_ip: &str,
) {
    let fwd = req.forwarded(client_ip);
    let (path, host) = (req.target.path.as_bytes(), req.target.host.as_bytes());
    match plan.upgrade {
        // RFC 8441: the client's CONNECT becomes a GET with a key of Fulcrum's.
        Some(Upgrade {
            key: Some(key),
            protocol,
            ..
        }) => {
            let fields = req
                .fields()
                .filter(|(n, _)| !n.eq_ignore_ascii_case(b"sec-websocket-key"))
                .chain([(&b"sec-websocket-key"[..], &key[..])]);
            http1::write_upgrade_request(out, b"GET", path, host, fields, &fwd, protocol);
        }
        Some(u) => {
            let method = req.method.as_bytes();
            http1::write_upgrade_request(out, method, path, host, req.fields(), &fwd, u.protocol);
        }
        None => {
            let method = req.method.as_bytes();
            http1::write_request_head(out, method, path, host, req.fields(), framing, &fwd);
        }
    }
}

/// One try of `req` on `backend`; `body` is the client's body, streamed after what
/// it had buffered.
#[allow(clippy::too_many_arguments)]
pub async fn exchange(
    w: &Worker,
    pool: &Pool,
    backend: &Backend,
    attempts: &Attempts<'_>,
    req: &Request<'_>,
    plan: &Plan<'_>,
    body: &mut Source<'_>,
    e: &mut Entry<'_>,
) -> Step<Exchanged> {
    let framing = match req.framing {
        Framing::Empty if expects_body(req.method) => Framing::Length(0),
        other => other,
    };
    let client_ip = req.forwarded_ip().to_string();
    let hint = match req.fields {
        FieldList::Spans { bytes, .. } => bytes.len() + 192,
        FieldList::Pairs(_) => 512,
    };
    let mut out = io::WriteBuf::take(hint);
    write_head(&mut out, req, plan, framing, &client_ip);
    let ends = pool
        .send_proxy
        .and_then(|_| req.local.get())
        .map(|local| (req.peer, local));
    let mut taken = false;
    loop {
        let (up, took) = match conn(w, pool, backend, ends).await {
            Ok(c) => c,
            Err(err) => return Step::Failed(err),
        };
        let reused = took.is_none();
        e.connect = Some(took.unwrap_or_default());
        if !std::mem::replace(&mut taken, true) {
            // Taken once a connection is there: a failed connect leaves the body
            // whole for the next backend.
            match body.take_buffered() {
                Ok(pre) => out.extend_from_slice(&pre),
                Err(err) => return Step::Fatal(client_body_error(err).into()),
            }
        }
        // The whole request leaves in the first write: a closed pooled connection
        // can take it again, and the per-try timeout applies (a body still uploading
        // is the client's pace, not the backend's).
        let whole = body.is_done();
        match io::write_all(&up, &out, attempts.upstream_timeout()).await {
            Ok(()) => {}
            // The pooled connection was closed by the backend as we sent: nothing
            // was consumed, so the same request goes out on another connection.
            Err(_) if reused => continue,
            Err(err) => {
                return Step::Failed(ProxyError::BadResponse(format!("write to backend: {err}")))
            }
        }
        let sent_at = Instant::now();
        let mut buf = io::ReadBuf::default();
        let resp = if whole {
            read_response(&up, &mut buf, req.is_head(), attempts.head_timeout()).await
        } else {
            let upload = upload(
                &up,
                &mut buf,
                body,
                req.is_head(),
                framing,
                attempts.upstream_timeout(),
            );
            match Box::pin(upload).await {
                Ok(r) => r,
                Err(err) => return Step::Fatal(client_body_error(err).into()),
            }
        };
        let rh = match resp {
            Ok(rh) => rh,
            Err(HeadFailure::Closed { nothing: true, .. }) if reused && whole => continue,
            Err(f) => {
                tracing::warn!(backend = %backend.addr, pool = %pool.name, error = ?f, "bad response");
                return Step::Failed(f.into_error());
            }
        };
        let bytes = buf.split_to(rh.len).freeze();
        if rh.status == 101 {
            return switched(
                w,
                pool,
                backend,
                attempts,
                plan,
                (up, rh, bytes, buf),
                sent_at,
                e,
            );
        }
        observed(
            w,
            pool,
            backend,
            attempts.member(),
            rh.status,
            sent_at.elapsed(),
            e,
        );
        if attempts.retry_status(rh.status) {
            // Dropped unread: the connection closes with it, and nothing reached
            // the client.
            return Step::Failed(ProxyError::Retried(rh.status));
        }
        let idle = if is_event_stream(rh.fields(&bytes)) {
            plan.stream_idle
        } else {
            attempts.upstream_timeout()
        };
        // A refused RFC 8441 upgrade reaches the client without its body.
        let bodyless = plan.upgrade.is_some_and(|u| u.key.is_some());
        return Step::Done(Exchanged::Response(Response {
            status: rh.status,
            framing: if bodyless { Framing::Empty } else { rh.body },
            body: ResponseBody::H1 {
                up,
                buf,
                idle,
                keep_alive: rh.keep_alive && !bodyless,
            },
            head: Head::H1 { head: rh, bytes },
            set_cookie: attempts.set_cookie(),
            edits: None,
            encode: None,
            deadline: None,
            bodyless,
        }));
    }
}

/// A `101`: accepted only for the upgrade asked, to that protocol (and, for a key
/// Fulcrum made up, with its accept value).
#[allow(clippy::too_many_arguments)]
fn switched(
    w: &Worker,
    pool: &Pool,
    backend: &Backend,
    attempts: &Attempts<'_>,
    plan: &Plan<'_>,
    (up, head, bytes, mut buf): (Conn, ResponseHead, bytes::Bytes, io::ReadBuf),
    sent_at: Instant,
    e: &mut Entry<'_>,
) -> Step<Exchanged> {
    let Some(u) = plan.upgrade else {
        return Step::Failed(ProxyError::BadResponse(
            "101 without an upgrade request".into(),
        ));
    };
    if !http1::is_upgrade_accepted(head.fields(&bytes), u.protocol) {
        return Step::Failed(ProxyError::BadResponse("101 to another protocol".into()));
    }
    if let Some(key) = u.key {
        let expected = accept_for(&key);
        let accepted = head.fields(&bytes).any(|(n, v)| {
            n.eq_ignore_ascii_case(b"sec-websocket-accept") && v == expected.as_bytes()
        });
        if !accepted {
            return Step::Fatal(
                ProxyError::BadResponse("101 without the WebSocket accept value".into()).into(),
            );
        }
    }
    observed(
        w,
        pool,
        backend,
        attempts.member(),
        101,
        sent_at.elapsed(),
        e,
    );
    // Bytes the backend sent after its head belong to the new protocol.
    let early = buf.split();
    Step::Done(Exchanged::Switched(Switch {
        up,
        head,
        bytes,
        early,
    }))
}

/// Gives a connection whose response was read whole back to the worker's pool,
/// when the backend, the request and the pool allow.
pub fn release(w: &Worker, pool: &Pool, backend: &Backend, body: ResponseBody, whole: bool) {
    if let ResponseBody::H1 {
        up,
        buf,
        keep_alive,
        ..
    } = body
    {
        if keep_alive && whole && buf.is_empty() && pool.send_proxy.is_none() {
            w.h1_pool
                .put(pool.conn_key(backend.addr), up, pool.max_idle);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_value_is_rfc_6455s_example() {
        assert_eq!(
            accept_for(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }
}
