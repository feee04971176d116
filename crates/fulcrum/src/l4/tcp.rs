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

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Instant;

use tokio::net::TcpStream;

use super::splice::{splice, Ended};
use crate::access_log::Entry;
use crate::l7::error::ProxyError;
use crate::l7::proxy::{self, Attempts, Pinned};
use crate::state::{Pool, TcpListener};
use crate::stats::{ErrorKind, Open};
use crate::upstream::{self, Lease};
use crate::worker::{Busy, Worker};

/// Proxies one client connection of tcp listener `listener` until it ends.
pub async fn serve(w: Rc<Worker>, client: TcpStream, peer: SocketAddr, listener: Rc<str>) {
    let started = Instant::now();
    // Held to the end: a reload meanwhile applies to the next connection.
    let snap = w.shared.load_full();
    let Some(l) = snap.tcp_listeners.get(&*listener) else {
        return;
    };
    let _open = Open::new(l.traffic.clone());
    // A connection in progress is work that shutdown waits for (up to its deadline).
    let _busy = Busy::new(&w);
    let Some(pool) = snap.pools.get(l.pool) else {
        return;
    };
    let _ = client.set_nodelay(true);
    let mut e = Entry {
        listener: &l.name,
        listener_traffic: Some(&l.traffic),
        client: Some(peer),
        proto: "TCP",
        pool: &pool.name,
        ..Entry::default()
    };
    if let Err(err) = proxy_to(&w, l, pool, &client, peer, &mut e).await {
        tracing::debug!(listener = %l.name, %peer, error = %err, "tcp connection not proxied");
        e.status = err.status();
        e.error = Some(err.to_string());
    }
    e.duration = started.elapsed();
    crate::stats::record(&e);
    if w.log.enabled() {
        w.log.write(&e);
    }
}

/// Connects to a backend of `pool` and splices; `Err` when no backend could be had.
async fn proxy_to<'s>(
    w: &Rc<Worker>,
    l: &TcpListener,
    pool: &'s Pool,
    client: &TcpStream,
    peer: SocketAddr,
    e: &mut Entry<'s>,
) -> Result<(), ProxyError> {
    let _admitted = proxy::admit(pool)?;
    let _slot = proxy::conn_slot(pool).await?;
    // Validated: a tcp listener's hashing pool hashes the client address.
    let hash = pool
        .hash_key
        .as_ref()
        .and_then(|key| key.hash(peer.ip(), "", |_| None));
    let mut attempts = Attempts::new(pool, hash, Pinned::default(), false);
    let (up, backend, _lease) = loop {
        let Some(backend) = attempts.next(w, e).await else {
            return Err(attempts.exhausted());
        };
        let lease = Lease::new(&backend.state);
        let connecting = Instant::now();
        match upstream::connect(backend.addr, pool.connect_timeout).await {
            Ok(up) => {
                let took = connecting.elapsed();
                pool.state.connect.observe(took);
                proxy::observed(w, pool, backend, attempts.member(), 200, took, e);
                break (up, backend, lease);
            }
            Err(err) => {
                tracing::warn!(backend = %backend.addr, pool = %pool.name, error = %err, "connect failed");
                let reason = err.to_string();
                attempts.failed(
                    w,
                    ProxyError::Connect {
                        addr: backend.addr,
                        reason,
                    },
                );
            }
        }
    };
    e.status = 200;
    let _open = attempts.member().map(|m| m.stats.stream_opened());
    let spliced = Instant::now();
    let done = splice(client, &up, l.idle_timeout).await;
    pool.state.streams.observe(spliced.elapsed());
    e.bytes_in = done.forward;
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
