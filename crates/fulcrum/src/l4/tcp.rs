//! Plain TCP proxying: each client connection of a tcp listener gets one backend
//! of the listener's pool, picked as an HTTP request's would be, then bytes are
//! spliced both ways until both sides close, either fails, or the connection idles
//! past the listener's `idle_timeout`.
//!
//! The connection is one long request to its backend: it holds an in-flight lease
//! (least-connections, drains), a `max_requests` slot and, when the pool sets
//! `max_connections`, a connection slot; a refused connect moves to another
//! backend before any byte is sent; a made connect counts as a success for outlier
//! detection, a failed one as a gateway failure. Its access log line and backend
//! counters use status 200 once a backend is connected, 502 when every connect
//! failed and 503 when the pool had no backend or was over its limits.
//!
//! A pool with `send_proxy_protocol` gets the client's PROXY header first on each
//! connection, as part of the connect: a backend that requires it refuses a
//! connection without it, so a failed write counts as a failed connect.

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Instant;

use bytes::BytesMut;
use tokio::net::TcpStream;

use crate::access_log::Entry;
use crate::http::ProxyError;
use crate::io::splice::{splice, Ended};
use crate::state::{Pool, TcpListener};
use crate::stats::{ErrorKind, Open};
use crate::upstream::{self, Attempts, Pinned, Step};
use crate::worker::{Busy, Worker};

/// Proxies one client connection of tcp listener `listener` until it ends. `peer`
/// is the client (a PROXY header's source when the listener takes one) and `early`
/// the client's bytes that arrived with that header: they go to the backend first.
pub async fn serve(
    w: Rc<Worker>,
    client: TcpStream,
    peer: SocketAddr,
    early: BytesMut,
    listener: Rc<str>,
) {
    let started = Instant::now();
    // Held to the end: a reload meanwhile applies to the next connection.
    let snap = w.shared.load_full();
    let Some(l) = snap.tcp_listeners.get(&*listener) else {
        return;
    };
    let _open = Open::new(l.traffic.clone());
    // A connection in progress is work that shutdown waits for (up to its deadline).
    let _busy = Busy::new(&w);
    let _ = client.set_nodelay(true);
    let mut e = Entry {
        listener: &l.name,
        listener_traffic: Some(&l.traffic),
        client: Some(peer),
        proto: "TCP",
        ..Entry::default()
    };
    let sni;
    let (index, early) = match &l.sni {
        None => (l.pool, early),
        Some(table) => {
            e.proto = "TLS";
            let peeked = super::passthrough::read_sni(&client, l.gate.header_timeout).await;
            let (name, mut bytes) = match peeked {
                Ok(found) => found,
                Err(err) => {
                    tracing::debug!(listener = %l.name, %peer, error = %err, "tls passthrough refused");
                    return finish(&w, e, started, 400, err.to_string());
                }
            };
            // Bytes the PROXY header carried in come before the ClientHello.
            if !early.is_empty() {
                let mut all = early;
                all.unsplit(bytes);
                bytes = all;
            }
            sni = name;
            e.host = sni.as_deref().unwrap_or("");
            let Some(route) = table.find(sni.as_deref()) else {
                tracing::debug!(listener = %l.name, %peer, sni = e.host, "no route for the server name");
                return finish(&w, e, started, 404, "no route for the server name".into());
            };
            e.route = Some(route.index);
            e.route_traffic = snap.routes.get(route.index).map(|t| &**t);
            (route.pool, bytes)
        }
    };
    let Some(pool) = snap.pools.get(index) else {
        return;
    };
    e.pool = &pool.name;
    if let Err(err) = proxy_to(&w, l, pool, (&client, peer), early, &mut e).await {
        tracing::debug!(listener = %l.name, %peer, error = %err, "tcp connection not proxied");
        e.status = err.status();
        e.error = Some(err.to_string());
    }
    e.duration = started.elapsed();
    crate::access_log::record(&e);
    if w.log.enabled() {
        w.log.write(&e);
    }
}

/// Logs and counts a connection that ended before reaching a backend.
fn finish(w: &Worker, mut e: Entry<'_>, started: Instant, status: u16, error: String) {
    e.status = status;
    e.error = Some(error);
    e.duration = started.elapsed();
    crate::access_log::record(&e);
    if w.log.enabled() {
        w.log.write(&e);
    }
}

/// Connects to a backend of `pool` and splices; `Err` when no backend could be had.
async fn proxy_to<'s>(
    w: &Rc<Worker>,
    l: &TcpListener,
    pool: &'s Pool,
    (client, peer): (&TcpStream, SocketAddr),
    mut early: BytesMut,
    e: &mut Entry<'s>,
) -> Result<(), ProxyError> {
    let _admitted = upstream::admit(pool)?;
    let hash = pool
        .hash_key
        .as_ref()
        .and_then(|key| key.hash(peer.ip(), "", |_| None));
    let mut attempts = Attempts::new(pool, hash, Pinned::default(), false);
    let header = pool.send_proxy.map(|v| {
        let local = client.local_addr().ok();
        upstream::proxy_header(v, local.map(|local| (peer, local)))
    });
    let header = header.as_deref().unwrap_or_default();
    let tried = upstream::run(w, &mut attempts, e, true, async |backend, attempts, e| {
        let connecting = Instant::now();
        match upstream::connect_with(backend.addr, pool.connect_timeout, header).await {
            Ok(up) => {
                let took = connecting.elapsed();
                pool.state.connect.observe(took);
                upstream::observed(w, pool, backend, attempts.member(), 200, took, e);
                Step::Done(up)
            }
            Err(err) => {
                tracing::warn!(backend = %backend.addr, pool = %pool.name, error = %err, "connect failed");
                Step::Failed(ProxyError::Connect {
                    addr: backend.addr,
                    reason: err.to_string(),
                })
            }
        }
    })
    .await
    .map_err(|f| f.err)?;
    let (up, backend, _lease, _slot) = (tried.value, tried.backend, tried.lease, tried.slot);
    e.status = 200;
    let _open = attempts.member().map(|m| m.stats.stream_opened());
    let spliced = Instant::now();
    // Bytes that came with the client's own PROXY header are its stream's start;
    // their buffer goes back before the splice, which holds none while quiet.
    let early_len = early.len() as u64;
    if !early.is_empty() {
        if let Err(err) = crate::io::write_all(&up, &early, l.idle_timeout).await {
            tracing::warn!(backend = %backend.addr, pool = %pool.name, error = %err, "tcp backend failed");
            e.error = Some(format!("backend: {err}"));
            return Ok(());
        }
        early.clear();
    }
    crate::io::recycle(early);
    let done = splice(client, &up, l.idle_timeout).await;
    pool.state.streams.observe(spliced.elapsed());
    e.bytes_in = done.forward + early_len;
    e.bytes_out = done.backward;
    match done.ended {
        Ended::Closed => {}
        Ended::Idle => {
            tracing::debug!(listener = %l.name, %peer, "tcp connection idle; closed");
            e.error = Some("idle timeout".into());
        }
        Ended::First(err) => {
            tracing::debug!(listener = %l.name, %peer, error = %err, "tcp client failed");
            e.error = Some(format!("client: {err}"));
        }
        Ended::Second(err) => {
            tracing::warn!(backend = %backend.addr, pool = %pool.name, error = %err, "tcp backend failed");
            if let Some(m) = attempts.member() {
                m.stats.error(ErrorKind::Reset);
            }
            e.error = Some(format!("backend: {err}"));
        }
    }
    Ok(())
}
