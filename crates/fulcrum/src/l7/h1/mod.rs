//! HTTP/1.1 from clients: a byte pump over `fulcrum_core::http1`. An idle connection
//! holds no buffer; each request runs in a boxed future so the idle future stays
//! small. A request head becomes a [`Request`] for the forward step; what comes back
//! is encoded by `respond`.

mod respond;

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Instant;

use bytes::BytesMut;
use fulcrum_core::forward::{FieldList, Identity};
use fulcrum_core::http1::{self, Framing, HeadError, RequestHead, Version};

use super::forward::{client, describe, forward, Forwarded};
use super::ids::Ids;
use super::stream::{Logged, Stream};
use crate::access_log::Entry;
use crate::http::body::{H1Source, Source};
use crate::http::error::{wants_json, write_h1_error, ErrorBody};
use crate::http::message::{Asked, Local};
use crate::http::{Failed, ProxyError, Request, Side};
use crate::io::{self, Conn, IoError};
use crate::state::{Listener, Snapshot};
use crate::stats::Open;
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

/// Answers 503 and closes: the connection's listener is gone.
async fn reply_gone(io: &Conn) {
    let mut out = Vec::with_capacity(160);
    let body = ErrorBody::new(503, None, false, None);
    write_h1_error(&mut out, 503, true, None, None, &body);
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
    // Set at the first wait: a head already in `buf` costs no clock read.
    let mut deadline = None;
    loop {
        if !buf.is_empty() {
            match http1::parse_request(buf, l.max_header_bytes) {
                Ok(Some(head)) => return Ok(Some(head)),
                Ok(None) => {}
                Err(HeadError::TooLarge) => return Err(ProxyError::HeaderTooLarge),
                Err(HeadError::Malformed(why)) => return Err(ProxyError::BadRequest(why)),
            }
        }
        let now = Instant::now();
        let left = deadline
            .get_or_insert(now + l.header_timeout)
            .saturating_duration_since(now);
        match io::read_some(io, buf, left).await {
            Ok(0) if buf.is_empty() => return Ok(None),
            Ok(0) => return Err(ProxyError::Client("closed inside a request head".into())),
            Ok(_) => {}
            Err(IoError::Timeout) if buf.is_empty() => return Ok(None),
            Err(IoError::Timeout) => return Err(ProxyError::ClientTimeout),
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
            let status = err.status();
            let body = ErrorBody::new(status, l.error_page(None, status), false, None);
            reply_error(io, l, status, true, (None, None), &body).await;
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
    let mut ids = Ids::default();
    let result = request(w, snap, l, io, buf, peer, (&head, &hb), &mut ids, &mut e).await;
    e.duration = started.elapsed();
    let next = match result {
        // Counted and logged when the stream ends.
        Ok(Next::Stream(mut stream)) => {
            stream.log = Logged::new(&e, started);
            return Next::Stream(stream);
        }
        Ok(next) => next,
        Err(Failed { err, replied }) => {
            let close =
                !head.keep_alive || head.body != Framing::Empty || err.side() == Side::Client;
            if !replied {
                let rid = (!e.request_id.is_empty()).then_some(e.request_id);
                let status = err.status();
                let accept = head
                    .fields(&hb)
                    .find(|(n, _)| n.eq_ignore_ascii_case(b"accept"))
                    .map(|(_, v)| v);
                let page = l.error_page(e.route, status);
                let body = ErrorBody::new(status, page, wants_json(accept), rid);
                reply_error(io, l, status, close, (err.retry_after(), rid), &body).await;
                e.status = status;
            }
            e.error = Some(err.to_string());
            Next::from(!close && !replied)
        }
    };
    crate::access_log::record(&e);
    if w.log.enabled() {
        w.log.write(&e);
    }
    super::ids::finish(w, &mut e);
    next
}

/// An error response; with the request's ID when the listener sets one.
async fn reply_error(
    io: &Conn,
    l: &Listener,
    status: u16,
    close: bool,
    (retry_after, request_id): (Option<u32>, Option<&str>),
    body: &ErrorBody,
) {
    let mut out = Vec::with_capacity(160 + body.body.len());
    let rid = l
        .request_id
        .as_ref()
        .zip(request_id)
        .map(|((name, _), id)| (&**name, id));
    write_h1_error(&mut out, status, close, retry_after, rid, body);
    let _ = io::write_all(io, &out, l.client_timeout).await;
}

/// The client-certificate header of `l`, with the subject `io` verified.
fn identity<'a>(l: &'a Listener, io: &'a Conn) -> Identity<'a> {
    let name = l.tls.as_ref()?.subject_header.as_deref()?;
    Some((name.as_bytes(), io.subject().map(str::as_bytes)))
}

/// Builds the request view of `head`, forwards it, and encodes what came back.
#[allow(clippy::too_many_arguments)]
async fn request<'h>(
    w: &Rc<Worker>,
    snap: &'h Snapshot,
    l: &'h Listener,
    io: &'h Conn,
    buf: &mut BytesMut,
    peer: SocketAddr,
    (head, hb): (&'h RequestHead, &'h [u8]),
    ids: &'h mut Ids,
    e: &mut Entry<'h>,
) -> Result<Next, Failed> {
    let method =
        std::str::from_utf8(head.method.get(hb)).map_err(|_| ProxyError::BadRequest("method"))?;
    e.method = method;
    if method == "CONNECT" {
        return Err(ProxyError::MethodNotAllowed.into());
    }
    let mut target =
        fulcrum_core::forward::parse_target(head.target.get(hb), head.host.map(|h| h.get(hb)))
            .map_err(|err| ProxyError::BadRequest(err.reason()))?;
    target.secure = io.is_tls();
    e.host = target.host;
    e.path = target.path;
    let fields = FieldList::Spans {
        fields: &head.fields,
        bytes: hb,
    };
    if l.request_id.is_some() || snap.config.tracing.is_some() {
        *ids = Ids::new(w, l, snap.config.tracing.as_ref(), fields.iter());
    }
    let ids: &'h Ids = ids;
    let (peer, via_proxy) = client(l, peer, fields);
    e.client = Some(peer);
    let req = Request {
        via_proxy,
        method,
        target,
        fields,
        identity: identity(l, io),
        request_id: ids.request_id_field(),
        traceparent: ids.traceparent_field(),
        via: if head.version == Version::Http10 {
            "1.0"
        } else {
            "1.1"
        },
        peer,
        local: Local::Socket(io.tcp()),
        framing: head.body,
        asked: if head.upgrade {
            Asked::Upgrade
        } else {
            Asked::Nothing
        },
        grpc_timeout: None,
        original_host: None,
    };
    // Returned to the client as well as logged.
    e.request_id = ids.request_id();
    ids.begin(e);
    if w.log.enabled() {
        describe(e, &req, ids);
        e.tls = io.tls_info();
    }
    let source = H1Source::new(io, buf, head.body, l.client_timeout, l.max_body_bytes)
        .expect_continue(head.expect_continue);
    let mut body = Source::H1(source);
    let forwarded = forward(w, snap, l, &req, &mut body, e).await?;
    let body_done = body.is_done();
    drop(body);
    let out = respond::Out { w, l, io, head };
    match forwarded {
        Forwarded::Answered(answer) => out.answer(answer, e).await,
        Forwarded::File(file) => out.file(file, e).await,
        Forwarded::Response(resp, held) => {
            out.response(req.is_head(), resp, held, body_done, e).await
        }
        Forwarded::Switched(sw, held, upgrade) => out.switch(buf, sw, held, upgrade, e).await,
    }
}
