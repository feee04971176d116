//! HTTP/1.1 from clients: a byte pump over `fulcrum_core::http1`. An idle connection
//! holds no buffer; each request runs in a boxed future so the idle future stays small.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::BytesMut;
use fulcrum_core::config::PoolProtocol;
use fulcrum_core::forward::{with_identity, Identity};
use fulcrum_core::http1::{self, Forwarded, Framing, HeadError, RequestHead, Version};
use fulcrum_core::jwt::RequestTokens;
use fulcrum_core::retry;
use fulcrum_core::route::Fields;

use super::body::{pump, H1Sink, H1Source, H2Sink, H2Source, Out, PumpError, Sink, Source};
use super::error::{write_h1_error, ProxyError, Side};
use super::proxy::{self, Target};
use super::stream::{Logged, Stream};
use super::upstream_h1::{self, Attempt, Outcome, Upgrade};
use crate::access_log::Entry;
use crate::io::Conn;
use crate::io::{self, IoError};
use crate::state::{Listener, Pool, Snapshot};
use crate::stats::Open;
use crate::upstream::Lease;
use crate::worker::{Busy, Worker};

/// The HTTP/2 connection preface; a connection starting with it is h2c.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Serves one client connection until it closes, times out or shutdown ends it.
/// `peer` is the client (a PROXY header's source when the listener takes one) and
/// `buf` what the client sent after that header: the start of its first request.
///
/// A plain fn returning an `async move` block: an `async fn` would store its arguments
/// twice, and this future is what every idle connection costs.
#[allow(clippy::manual_async_fn)]
pub fn serve(
    w: Rc<Worker>,
    io: Conn,
    peer: SocketAddr,
    mut buf: BytesMut,
    listener: Rc<str>,
) -> impl std::future::Future<Output = ()> {
    async move {
        let _ = io.tcp().set_nodelay(true);
        // Counted open for the connection's whole life, as the listener it came in on.
        let _open = w
            .shared
            .load()
            .listeners
            .get(&*listener)
            .map(|l| Open::new(l.traffic.clone()));
        let mut first = true;
        loop {
            if buf.is_empty() {
                let wait = {
                    let snap = w.shared.load();
                    let Some(l) = snap.listeners.get(&*listener) else {
                        return;
                    };
                    if first {
                        l.header_timeout
                    } else {
                        l.keepalive_timeout
                    }
                };
                // Wait for the first bytes with no buffer held (readiness can be stale
                // after a response, so only a read tells). Nothing else is awaited
                // here: at shutdown, idle connections are closed by dropping the
                // worker's tasks once the busy ones are done.
                if !matches!(io::read_some(&io, &mut buf, wait).await, Ok(n) if n > 0) {
                    return;
                }
            }
            let _busy = Busy::new(&w);
            // Loaded once the request has begun: a reload while idle applies to it.
            let snap = w.shared.load_full();
            let Some(l) = snap.listeners.get(&*listener) else {
                // A reload removed this listener while the connection was idle: the
                // request that arrived gets an answer, not a reset. Boxed: its write
                // and timer must not size the future every idle connection holds.
                Box::pin(reply_gone(&io)).await;
                return;
            };
            if first {
                first = false;
                // Over TLS, ALPN chose HTTP/1.1 before this (h2 went to its own path).
                if !io.is_tls() && is_h2(&io, &mut buf, l).await {
                    drop(snap);
                    if let Conn::Tcp(tcp) = io {
                        let local = tcp.local_addr().ok();
                        let ends = (peer, local);
                        let name = listener.clone();
                        let h2 = super::h2::serve(w.clone(), tcp, buf, ends, name, None);
                        // Boxed: the h2 connection state must not size every HTTP/1.1 task.
                        Box::pin(h2).await;
                    }
                    return;
                }
            }
            match Box::pin(exchange(&w, &snap, l, &io, &mut buf, peer)).await {
                Next::Keep if !w.stopping.get() => {}
                Next::Keep | Next::Close => return,
                Next::Stream(stream) => {
                    // Boxed, as the exchange was: only upgraded connections pay for it.
                    Box::pin(stream.run(&w, &snap, l, &io)).await;
                    return;
                }
            }
            if buf.is_empty() {
                // Release the buffer while idle.
                io::recycle(std::mem::take(&mut buf));
            }
        }
    }
}

/// Answers a plain-HTTP request with a permanent redirect to the same host and
/// target over HTTPS on `port` (308 keeps the method and body). A request with a
/// body gets the answer and a close: its body is not read.
async fn redirect_https(
    l: &Listener,
    io: &Conn,
    t: &Target<'_>,
    port: u16,
    head: &RequestHead,
    e: &mut Entry<'_>,
) -> Result<Next, Failed> {
    let host = fulcrum_core::route::host_name(t.host);
    if host.is_empty() || host.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(ProxyError::BadRequest("no host to redirect to").into());
    }
    let authority = if port == 443 {
        host.to_owned()
    } else {
        format!("{host}:{port}")
    };
    let close = head.body != Framing::Empty || !head.keep_alive;
    let out = format!(
        "HTTP/1.1 308 Permanent Redirect\r\nlocation: https://{authority}{}\r\ncontent-length: 0\r\n{}\r\n",
        t.path,
        if close { "connection: close\r\n" } else { "" }
    );
    e.status = 308;
    io::write_all(io, out.as_bytes(), l.client_timeout)
        .await
        .map_err(|err| ProxyError::Client(err.to_string()))?;
    Ok(if close { Next::Close } else { Next::Keep })
}

/// Answers 503 and closes: the connection's listener is gone.
async fn reply_gone(io: &Conn) {
    let mut out = Vec::with_capacity(160);
    write_h1_error(&mut out, 503, true, None);
    let _ = io::write_all(io, &out, std::time::Duration::from_secs(5)).await;
}

/// Reads enough to tell the h2c preface from an HTTP/1.1 request.
async fn is_h2(io: &Conn, buf: &mut BytesMut, l: &Listener) -> bool {
    loop {
        let n = buf.len().min(H2_PREFACE.len());
        if buf.get(..n) != H2_PREFACE.get(..n) {
            return false;
        }
        if n == H2_PREFACE.len() {
            return true;
        }
        match io::read_some(io, buf, l.header_timeout).await {
            Ok(0) | Err(_) => return false,
            Ok(_) => {}
        }
    }
}

/// Reads a request head; `Ok(None)` when the client closed or idled out first.
async fn read_head(
    io: &Conn,
    buf: &mut BytesMut,
    l: &Listener,
) -> Result<Option<RequestHead>, ProxyError> {
    let deadline = Instant::now() + l.header_timeout;
    loop {
        if !buf.is_empty() {
            match http1::parse_request(buf, l.max_header_bytes) {
                Ok(Some(head)) => return Ok(Some(head)),
                Ok(None) => {}
                Err(HeadError::TooLarge) => return Err(ProxyError::HeaderTooLarge),
                Err(HeadError::Malformed(why)) => return Err(ProxyError::BadRequest(why)),
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match io::read_some(io, buf, left).await {
            Ok(0) if buf.is_empty() => return Ok(None),
            Ok(0) => return Err(ProxyError::Client("closed inside a request head".into())),
            Ok(_) => {}
            Err(IoError::Timeout) if buf.is_empty() => return Ok(None),
            Err(IoError::Timeout) => {
                return Err(ProxyError::Client("request head timed out".into()))
            }
            Err(IoError::Io(_)) => return Ok(None),
        }
    }
}

/// What follows a request on its client connection.
pub enum Next {
    /// The connection closes.
    Close,
    /// The connection waits for the next request.
    Keep,
    /// The connection switched protocols: splice it to this backend socket.
    Stream(Box<Stream>),
}

impl From<bool> for Next {
    fn from(keep: bool) -> Self {
        if keep {
            Self::Keep
        } else {
            Self::Close
        }
    }
}

/// One request and its response; returns what the connection does next.
async fn exchange(
    w: &Rc<Worker>,
    snap: &Snapshot,
    l: &Listener,
    io: &Conn,
    buf: &mut BytesMut,
    peer: SocketAddr,
) -> Next {
    let started = Instant::now();
    let mut e = Entry {
        listener: &l.name,
        listener_traffic: Some(&l.traffic),
        client: Some(peer),
        proto: "HTTP/1.1",
        ..Entry::default()
    };
    let head = match read_head(io, buf, l).await {
        Ok(Some(head)) => head,
        Ok(None) => return Next::Close,
        Err(err) => {
            let status = match &err {
                ProxyError::Client(why) if why.contains("timed out") => 408,
                other => other.status(),
            };
            reply_error(io, l, status, true, None).await;
            e.status = status;
            e.error = Some(err.to_string());
            e.duration = started.elapsed();
            w.log.write(&e);
            return Next::Close;
        }
    };
    // An upgrade's head is copied out rather than split off, so it does not keep the
    // connection's read buffer allocated through a socket's hours of life.
    let hb = if head.upgrade {
        let hb = bytes::Bytes::copy_from_slice(buf.get(..head.len).unwrap_or_default());
        bytes::Buf::advance(buf, head.len);
        hb
    } else {
        buf.split_to(head.len).freeze()
    };
    if head.version == Version::Http10 {
        e.proto = "HTTP/1.0";
    }
    let result = forward(w, snap, l, io, buf, peer, &head, &hb, &mut e).await;
    e.duration = started.elapsed();
    let next = match result {
        // Counted and logged when the stream ends.
        Ok(Next::Stream(mut stream)) => {
            stream.log = Logged::new(&e, started);
            return Next::Stream(stream);
        }
        Ok(next) => next,
        Err(Failed { err, replied }) => {
            let close = !head.keep_alive
                || head.body != Framing::Empty
                || err.side() == super::error::Side::Client;
            if !replied {
                reply_error(io, l, err.status(), close, err.retry_after()).await;
                e.status = err.status();
            }
            e.error = Some(err.to_string());
            Next::from(!close && !replied)
        }
    };
    crate::access_log::record(&e);
    if w.log.enabled() {
        w.log.write(&e);
    }
    next
}

/// A request that failed; `replied` when a response (or part of one) already went out.
pub struct Failed {
    /// What went wrong.
    pub err: ProxyError,
    /// Whether the client already got a response head.
    pub replied: bool,
}

impl From<ProxyError> for Failed {
    fn from(err: ProxyError) -> Self {
        Self {
            err,
            replied: false,
        }
    }
}

async fn reply_error(io: &Conn, l: &Listener, status: u16, close: bool, retry_after: Option<u32>) {
    let mut out = Vec::with_capacity(160);
    write_h1_error(&mut out, status, close, retry_after);
    let _ = io::write_all(io, &out, l.client_timeout).await;
}

#[allow(clippy::too_many_arguments)]
async fn forward<'h>(
    w: &Rc<Worker>,
    snap: &'h Snapshot,
    l: &'h Listener,
    io: &Conn,
    buf: &mut BytesMut,
    peer: SocketAddr,
    head: &RequestHead,
    hb: &'h [u8],
    e: &mut Entry<'h>,
) -> Result<Next, Failed> {
    let method =
        std::str::from_utf8(head.method.get(hb)).map_err(|_| ProxyError::BadRequest("method"))?;
    e.method = method;
    if method == "CONNECT" {
        return Err(ProxyError::MethodNotAllowed.into());
    }
    let mut t = proxy::target(head.target.get(hb), head.host.map(|h| h.get(hb)))?;
    t.secure = io.is_tls();
    e.host = t.host;
    e.path = t.path;
    if !io.is_tls() && t.path.starts_with(crate::tls::acme::HTTP01_PREFIX) {
        if let Some(key_auth) = crate::tls::acme::challenges().http01(t.path, &snap.config) {
            e.status = 200;
            let out = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n{key_auth}",
                key_auth.len()
            );
            io::write_all(io, out.as_bytes(), l.client_timeout)
                .await
                .map_err(|err| ProxyError::Client(err.to_string()))?;
            return Ok(Next::from(head.keep_alive && head.body == Framing::Empty));
        }
    }
    if let Some(port) = l.redirect_https {
        return Box::pin(redirect_https(l, io, &t, port, head, e)).await;
    }
    let id = identity(l, io);
    let fields = Fields(with_identity(head.fields(hb), id));
    // The bearer token is decoded only if a `jwt_claim` route or `jwt:` key asks.
    let tokens = RequestTokens::new(proxy::now_unix);
    let (route, pool) = proxy::route(snap, l, method, &t, &fields, &tokens)?;
    e.route = Some(route.index);
    e.route_traffic = snap.routes.get(route.index).map(|t| &**t);
    e.pool = &pool.name;
    if matches!(head.body, Framing::Length(n) if n > l.max_body_bytes) {
        return Err(ProxyError::BodyTooLarge.into());
    }
    let hash = pool.hash_key.as_ref().and_then(|key| {
        key.hash_with_claims(
            peer.ip(),
            t.path,
            |name| {
                with_identity(head.fields(hb), id)
                    .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
                    .map(|(_, v)| v)
            },
            || tokens.claims(&fields, pool.jwt_key.as_ref()),
        )
    });
    if hash.is_none() && pool.hash_key.is_some() {
        pool.state.hash_missing.fetch_add(1, Ordering::Relaxed);
    }
    let pinned = proxy::Pinned::read(
        pool,
        head.fields(hb)
            .filter(|(n, _)| n.eq_ignore_ascii_case(b"cookie"))
            .map(|(_, v)| v),
    );
    // An upgrade the route does not list is ignored (RFC 9110 §7.8): the request
    // goes on as a plain one. One with a body is not a WebSocket handshake.
    let upgrade = if head.upgrade && head.body == Framing::Empty {
        snap.config.routes.get(route.index).and_then(|rc| {
            let protocol = http1::choose_upgrade(head.fields(hb), &rc.upgrades)?;
            Some(Upgrade {
                protocol,
                idle: rc.stream_idle_timeout.get(),
                max: rc.max_stream_duration.map(|d| d.get()),
            })
        })
    } else {
        None
    };
    let req = Req {
        method,
        t,
        head,
        hb,
        peer,
        hash,
        pinned,
        upgrade,
        stream_idle: proxy::stream_idle(snap, route),
        id,
    };
    let admitted = proxy::admit(pool)?;
    match pool.protocol {
        PoolProtocol::Http1 => match to_h1(w, l, pool, io, buf, &req, e).await? {
            Next::Stream(mut stream) => {
                stream.admitted = Some(admitted);
                Ok(Next::Stream(stream))
            }
            next => Ok(next),
        },
        PoolProtocol::H2c | PoolProtocol::H2 => {
            to_h2(w, l, pool, io, buf, &req, e).await.map(Next::from)
        }
    }
}

/// The parts of a client request the upstream side needs.
struct Req<'h> {
    method: &'h str,
    t: Target<'h>,
    head: &'h RequestHead,
    hb: &'h [u8],
    peer: SocketAddr,
    /// The consistent-hashing key, when the pool hashes one and the request has it.
    hash: Option<u64>,
    /// The sticky cookie, when the pool is sticky.
    pinned: proxy::Pinned,
    /// The upgrade to ask of the backend.
    upgrade: Option<Upgrade<'h>>,
    /// The route's `stream_idle_timeout`, for event-stream responses.
    stream_idle: std::time::Duration,
    /// The client-certificate header of an https listener, and its value.
    id: Identity<'h>,
}

/// The client-certificate header of `l`, with the subject `io` verified.
fn identity<'a>(l: &'a Listener, io: &'a Conn) -> Identity<'a> {
    let name = l.tls.as_ref()?.subject_header.as_deref()?;
    Some((name.as_bytes(), io.subject().map(str::as_bytes)))
}

async fn to_h1<'h>(
    w: &Rc<Worker>,
    l: &Listener,
    pool: &'h Pool,
    io: &Conn,
    buf: &mut BytesMut,
    req: &Req<'_>,
    e: &mut Entry<'h>,
) -> Result<Next, Failed> {
    let head = req.head;
    let client_ip = req.peer.ip().to_string();
    let fwd = Forwarded {
        client_ip: &client_ip,
        proto: if io.is_tls() { "https" } else { "http" },
        via_version: if head.version == Version::Http10 {
            "1.0"
        } else {
            "1.1"
        },
    };
    let up_framing = match head.body {
        Framing::Empty if proxy::expects_body(req.method) => Framing::Length(0),
        other => other,
    };
    let mut out = io::WriteBuf::take(req.hb.len() + 192);
    match req.upgrade {
        Some(u) => http1::write_upgrade_request(
            &mut out,
            req.method.as_bytes(),
            req.t.path.as_bytes(),
            req.t.host.as_bytes(),
            with_identity(head.fields(req.hb), req.id),
            &fwd,
            u.protocol,
        ),
        None => http1::write_request_head(
            &mut out,
            req.method.as_bytes(),
            req.t.path.as_bytes(),
            req.t.host.as_bytes(),
            with_identity(head.fields(req.hb), req.id),
            up_framing,
            &fwd,
        ),
    }
    let head_len = out.len();
    let replayable = head.body == Framing::Empty && retry::is_retryable_method(req.method);
    let mut attempts = proxy::Attempts::new(pool, req.hash, req.pinned, replayable);
    // Looked up only for a pool that sends a PROXY header.
    let ends = pool
        .send_proxy
        .and_then(|_| io.local_addr().ok())
        .map(|local| (req.peer, local));
    while let Some(backend) = attempts.next(w, e).await {
        // Queued for a connection slot before counting as in flight on the backend:
        // a waiting request must not skew least-connections or hold up a drain.
        let slot = proxy::conn_slot(pool).await?;
        let lease = Lease::new(&backend.state);
        let set_cookie = attempts.set_cookie();
        loop {
            let (upc, reused) = match proxy::h1_conn(w, pool, backend, ends).await {
                Ok(c) => c,
                Err(err) => {
                    attempts.failed(w, err);
                    break;
                }
            };
            out.truncate(head_len);
            let attempt = upstream_h1::Exchange {
                w,
                l,
                pool,
                io,
                up: &upc,
                reused,
                backend,
                attempts: &attempts,
                head,
                is_head: req.method == "HEAD",
                set_cookie: set_cookie.as_deref(),
                upgrade: req.upgrade,
                stream_idle: req.stream_idle,
            };
            match attempt.run(buf, &mut out, e).await {
                Ok(Outcome::Done { keep, reusable }) => {
                    if reusable && pool.send_proxy.is_none() {
                        w.h1_pool
                            .put(pool.conn_key(backend.addr), upc, pool.max_idle);
                    }
                    return Ok(Next::from(keep));
                }
                Ok(Outcome::Switched) => {
                    // Validated: a 101 is only accepted for a request that asked.
                    let Some(upgrade) = req.upgrade else {
                        return Ok(Next::Close);
                    };
                    let member = attempts.member_arc();
                    let stream = Stream::new(upc, lease, slot, member, &pool.state, upgrade);
                    return Ok(Next::Stream(Box::new(stream)));
                }
                // The pooled connection was closed by the backend as we sent: nothing
                // was consumed, so the same request goes out on another connection.
                Err(Attempt::Stale) => continue,
                Err(Attempt::Failed(f)) if !f.replied && f.err.side() == Side::Backend => {
                    attempts.failed(w, f.err);
                    break;
                }
                Err(Attempt::Failed(f)) => return Err(f),
            }
        }
    }
    Err(attempts.exhausted().into())
}

async fn to_h2<'h>(
    w: &Rc<Worker>,
    l: &Listener,
    pool: &'h Pool,
    io: &Conn,
    buf: &mut BytesMut,
    req: &Req<'_>,
    e: &mut Entry<'h>,
) -> Result<bool, Failed> {
    let head = req.head;
    // Only connect failures are retried toward h2c backends: the request is
    // streamed as it is sent.
    let mut attempts = proxy::Attempts::new(pool, req.hash, req.pinned, false);
    let (send, backend) = loop {
        let Some(backend) = attempts.next(w, e).await else {
            return Err(attempts.exhausted().into());
        };
        match proxy::h2_conn(w, pool, backend).await {
            Ok(send) => break (send, backend),
            Err(err) => attempts.failed(w, err),
        }
    };
    let _lease = Lease::new(&backend.state);
    let set_cookie = attempts.set_cookie();
    let via = if head.version == Version::Http10 {
        "1.0"
    } else {
        "1.1"
    };
    let proto = if io.is_tls() { "https" } else { "http" };
    let fields = with_identity(head.fields(req.hb), req.id);
    let headers = proxy::h2_request_headers(fields, req.t.host, req.peer, proto, via);
    let scheme = if pool.tls.is_some() { "https" } else { "http" };
    let uri = format!("{scheme}://{}{}", req.t.host, req.t.path);
    let mut builder = http::Request::builder().method(req.method).uri(uri);
    if let Some(h) = builder.headers_mut() {
        *h = headers;
    }
    let request = builder
        .body(())
        .map_err(|_| ProxyError::BadRequest("request not representable in HTTP/2"))?;
    let ended = head.body == Framing::Empty;
    let mut send = send;
    let (response, stream) = send.send_request(request, ended).map_err(|err| {
        w.h2_pool.remove(pool.conn_key(backend.addr));
        ProxyError::BadResponse(err.to_string())
    })?;
    let sent_at = Instant::now();
    let mut src = Source::H1(H1Source::new(
        io,
        buf,
        head.body,
        l.client_timeout,
        l.max_body_bytes,
    ));
    let mut body_ok = ended;
    let response = {
        let timed = tokio::time::timeout(pool.upstream_timeout, response);
        tokio::pin!(timed);
        if ended {
            drop(stream);
            timed.await
        } else {
            let mut sink = Sink::H2(H2Sink::new(stream));
            let body = async {
                if head.expect_continue {
                    let _ =
                        io::write_all(io, b"HTTP/1.1 100 Continue\r\n\r\n", l.client_timeout).await;
                }
                pump(&mut src, &mut sink).await
            };
            tokio::pin!(body);
            tokio::select! {
                biased;
                r = &mut body => match r {
                    Ok(()) => { body_ok = true; timed.await }
                    Err(PumpError::Source(err)) => return Err(client_body_error(err).into()),
                    Err(PumpError::Sink(_)) => timed.await,
                },
                r = &mut timed => r,
            }
        }
    };
    e.bytes_in = src.received();
    drop(src);
    let response = match response {
        Ok(Ok(r)) => r,
        Ok(Err(err)) => {
            let err = ProxyError::BadResponse(err.to_string());
            attempts.failed(w, err);
            return Err(attempts.exhausted().into());
        }
        Err(_) => {
            attempts.failed(w, ProxyError::BackendTimeout);
            return Err(attempts.exhausted().into());
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
    let (parts, recv) = response.into_parts();
    let client_11 = head.version == Version::Http11;
    let ended = recv.is_end_stream() || req.method == "HEAD";
    let framing = match proxy::h2_body_framing(&parts.headers, ended, client_11) {
        Framing::Empty if req.method != "HEAD" => empty_framing(parts.status.as_u16()),
        other => other,
    };
    let close = !head.keep_alive || !body_ok || framing == Framing::UntilClose || w.stopping.get();
    let mut out = Vec::with_capacity(512);
    http1::write_response_head(
        &mut out,
        parts.status.as_u16(),
        proxy::map_fields(&parts.headers)
            .iter()
            .copied()
            .chain(proxy::set_cookie_field(set_cookie.as_deref())),
        framing,
        close,
        !close && !client_11,
    );
    e.status = parts.status.as_u16();
    let mode = if framing == Framing::Chunked {
        Out::Chunked
    } else {
        Out::Raw
    };
    let mut sink = Sink::H1(H1Sink::new(io, out, mode, l.client_timeout));
    let mut src = Source::H2(H2Source::new(recv, u64::MAX));
    let result = pump(&mut src, &mut sink).await;
    e.bytes_out = sink.sent();
    match result {
        Ok(()) => Ok(!close),
        Err(err) => {
            e.error = Some(err.to_string());
            Ok(false)
        }
    }
}

/// The framing of an empty response body for an HTTP/1.1 client: `Content-Length: 0`
/// unless the status never has a body, so the client need not wait for a close.
pub fn empty_framing(status: u16) -> Framing {
    if (100..200).contains(&status) || status == 204 || status == 304 {
        Framing::Empty
    } else {
        Framing::Length(0)
    }
}

/// Maps a failure reading the client's body to its error.
pub fn client_body_error(err: super::body::BodyError) -> ProxyError {
    match err {
        super::body::BodyError::TooLarge => ProxyError::BodyTooLarge,
        super::body::BodyError::Chunked(_) => ProxyError::BadRequest("invalid chunked body"),
        other => ProxyError::Client(other.to_string()),
    }
}
