//! WebSocket over HTTP/2 from clients (RFC 8441): an extended CONNECT with
//! `:protocol = websocket` becomes an HTTP/1.1 upgrade to the backend, and the
//! client's stream and the backend connection are then bridged both ways.
//!
//! An HTTP/2 client sends no `Sec-WebSocket-Key` and expects `200`, an HTTP/1.1
//! backend wants a key and answers `101` with its accept value: Fulcrum makes the key
//! up and checks the answer, as a WebSocket client would, so only a backend that
//! really switched is bridged. Frames are never parsed.

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use fulcrum_core::config::PoolProtocol;
use fulcrum_core::http1::{self, Forwarded};
use http::{Response, StatusCode};
use sha1::{Digest, Sha1};
use tokio::time::Instant;

use super::body::h2_send;
use super::error::ProxyError;
use super::proxy::{self, Attempts, Pinned, Target};
use super::upstream_h1::{read_response, HeadFailure};
use crate::access_log::Entry;
use crate::io;
use crate::io::Conn;
use crate::state::{Pool, Snapshot};
use crate::upstream::Lease;
use crate::worker::Worker;

/// RFC 6455 §1.3: appended to the key before hashing.
const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Bytes asked of one backend read.
const CHUNK: usize = 64 * 1024;

/// Whether `parts` is an extended CONNECT for a WebSocket.
pub fn is_websocket(parts: &http::request::Parts) -> bool {
    parts.method == http::Method::CONNECT
        && parts
            .extensions
            .get::<h2::ext::Protocol>()
            .is_some_and(|p| p.as_str().eq_ignore_ascii_case("websocket"))
}

/// The `Sec-WebSocket-Accept` value a backend must answer `key` with.
fn accept_for(key: &[u8]) -> String {
    let mut h = Sha1::new();
    h.update(key);
    h.update(GUID);
    base64::engine::general_purpose::STANDARD.encode(h.finalize())
}

/// Bridges one RFC 8441 WebSocket stream of an HTTP/2 client to an HTTP/1.1
/// backend of `pool`, until either side ends it or it idles out.
#[allow(clippy::too_many_arguments)]
pub async fn bridge<'s>(
    w: &Rc<Worker>,
    snap: &'s Snapshot,
    route: &fulcrum_core::route::Route,
    pool: &'s Pool,
    parts: &http::request::Parts,
    t: &Target<'_>,
    mut body: h2::RecvStream,
    respond: &mut h2::server::SendResponse<Bytes>,
    (peer, local): (SocketAddr, Option<SocketAddr>),
    pinned: Pinned,
    hash: Option<u64>,
    e: &mut Entry<'s>,
) -> Result<(), ProxyError> {
    let rc = snap.config.routes.get(route.index);
    let allowed = rc.is_some_and(|r| {
        r.upgrades
            .iter()
            .any(|u| u.eq_ignore_ascii_case("websocket"))
    });
    if !allowed || pool.protocol != PoolProtocol::Http1 {
        return Err(ProxyError::BadRequest("no WebSocket on this route"));
    }
    let idle = proxy::stream_idle(snap, route);
    let max = rc.and_then(|r| r.max_stream_duration).map(|d| d.get());
    let key_bytes = [w.entropy().to_le_bytes(), w.entropy().to_le_bytes()].concat();
    let key = base64::engine::general_purpose::STANDARD.encode(key_bytes);
    let client_ip = peer.ip().to_string();
    let fwd = Forwarded {
        client_ip: &client_ip,
        proto: t.proto(),
        via_version: "2",
    };
    let fields = proxy::map_fields(&parts.headers);
    // The client's own key, if any, is not the one the backend must answer.
    let fields = fields
        .iter()
        .copied()
        .filter(|(n, _)| !n.eq_ignore_ascii_case(b"sec-websocket-key"))
        .chain([(&b"sec-websocket-key"[..], key.as_bytes())]);
    let mut out = Vec::with_capacity(512);
    http1::write_upgrade_request(
        &mut out,
        b"GET",
        t.path.as_bytes(),
        t.host.as_bytes(),
        fields,
        &fwd,
        b"websocket",
    );
    let mut attempts = Attempts::new(pool, hash, pinned, true);
    while let Some(backend) = attempts.next(w, e).await {
        let _slot = proxy::conn_slot(pool).await?;
        let _lease = Lease::new(&backend.state);
        let ends = local.map(|local| (peer, local));
        let up = match proxy::h1_conn(w, pool, backend, ends).await {
            Ok((up, _)) => up,
            Err(err) => {
                attempts.failed(w, err);
                continue;
            }
        };
        if let Err(err) = io::write_all(&up, &out, pool.upstream_timeout).await {
            attempts.failed(
                w,
                ProxyError::BadResponse(format!("write to backend: {err}")),
            );
            continue;
        }
        let sent_at = std::time::Instant::now();
        let mut resp = io::ReadBuf::default();
        let rh = match read_response(&up, &mut resp, false, attempts.head_timeout()).await {
            Ok(rh) => rh,
            Err(f @ HeadFailure::Closed { .. } | f @ HeadFailure::Timeout) => {
                attempts.failed(w, f.into_error());
                continue;
            }
            Err(f) => return Err(f.into_error()),
        };
        let rhb = resp.split_to(rh.len).freeze();
        let expected = accept_for(key.as_bytes());
        let accepted = rh.status == 101
            && http1::is_upgrade_accepted(rh.fields(&rhb), b"websocket")
            && rh.fields(&rhb).any(|(n, v)| {
                n.eq_ignore_ascii_case(b"sec-websocket-accept") && v == expected.as_bytes()
            });
        proxy::observed(
            w,
            pool,
            backend,
            attempts.member(),
            rh.status,
            sent_at.elapsed(),
            e,
        );
        if rh.status != 101 {
            // A refusal (403, 404, ...) reaches the client as it is, without a body.
            e.status = rh.status;
            let mut res = Response::new(());
            *res.status_mut() = StatusCode::from_u16(rh.status)
                .map_err(|_| ProxyError::BadResponse("invalid status".into()))?;
            *res.headers_mut() = proxy::h2_response_headers(rh.fields(&rhb));
            res.headers_mut().remove(http::header::CONTENT_LENGTH);
            res.headers_mut().remove(http::header::TRANSFER_ENCODING);
            respond
                .send_response(res, true)
                .map_err(|err| ProxyError::Client(err.to_string()))?;
            return Ok(());
        }
        if !accepted {
            return Err(ProxyError::BadResponse(
                "101 without the WebSocket accept value".into(),
            ));
        }
        let mut headers = proxy::h2_response_headers(rh.fields(&rhb));
        headers.remove("sec-websocket-accept");
        let mut res = Response::new(());
        *res.headers_mut() = headers;
        let send = respond
            .send_response(res, false)
            .map_err(|err| ProxyError::Client(err.to_string()))?;
        e.status = 200;
        let open = attempts.member().map(|m| m.stats.stream_opened());
        let started = std::time::Instant::now();
        let moved = Moved::default();
        let early = resp.split();
        let run = relay(&mut body, send, &up, early, idle, &moved);
        let ended = match max {
            Some(max) => tokio::time::timeout(max, run)
                .await
                .unwrap_or_else(|_| Some("max_stream_duration".into())),
            None => run.await,
        };
        e.bytes_in = moved.forward.get();
        e.bytes_out = moved.backward.get();
        e.error = ended;
        pool.state.streams.observe(started.elapsed());
        drop(open);
        return Ok(());
    }
    Err(attempts.exhausted())
}

/// Bytes moved each way.
#[derive(Default)]
struct Moved {
    forward: Cell<u64>,
    backward: Cell<u64>,
}

/// Copies the client's stream to the backend and the backend to the client's stream
/// (first `early`, what followed the `101`). Returns why it ended, `None` for both
/// sides finishing.
async fn relay(
    body: &mut h2::RecvStream,
    mut send: h2::SendStream<Bytes>,
    up: &Conn,
    early: BytesMut,
    idle: Duration,
    moved: &Moved,
) -> Option<String> {
    let last = Cell::new(Instant::now());
    let forward = async {
        while let Some(data) = body.data().await {
            let data = data.map_err(|e| format!("client: {e}"))?;
            let _ = body.flow_control().release_capacity(data.len());
            last.set(Instant::now());
            io::write_all(up, &data, idle)
                .await
                .map_err(|e| format!("backend: {e}"))?;
            moved.forward.set(moved.forward.get() + data.len() as u64);
        }
        let _ = up.shutdown_write().await;
        Ok::<(), String>(())
    };
    let backward = async {
        if !early.is_empty() {
            moved.backward.set(early.len() as u64);
            h2_send(&mut send, early.freeze())
                .await
                .map_err(|e| format!("client: {e}"))?;
        }
        let mut buf = BytesMut::new();
        loop {
            buf.reserve(CHUNK);
            match io::read_some(up, &mut buf, idle).await {
                Ok(0) => break,
                Ok(n) => {
                    last.set(Instant::now());
                    moved.backward.set(moved.backward.get() + n as u64);
                    h2_send(&mut send, buf.split().freeze())
                        .await
                        .map_err(|e| format!("client: {e}"))?;
                }
                Err(io::IoError::Timeout) => continue,
                Err(io::IoError::Io(e)) => return Err(format!("backend: {e}")),
            }
        }
        let _ = send.send_data(Bytes::new(), true);
        Ok::<(), String>(())
    };
    tokio::pin!(forward, backward);
    let (mut f_done, mut b_done) = (false, false);
    loop {
        if f_done && b_done {
            return None;
        }
        let deadline = last.get() + idle;
        tokio::select! {
            r = &mut forward, if !f_done => match r {
                Ok(()) => f_done = true,
                Err(e) => return Some(e),
            },
            r = &mut backward, if !b_done => match r {
                Ok(()) => b_done = true,
                Err(e) => return Some(e),
            },
            () = tokio::time::sleep_until(deadline) => {
                if last.get() + idle <= Instant::now() {
                    return Some("stream idle timeout".into());
                }
            }
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
