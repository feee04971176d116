//! What happens to a connection between `accept` and its listener's protocol: the
//! `max_connections` cap, the PROXY protocol header, the TLS handshake of an https
//! listener, then HTTP or TCP.
//!
//! The checks that need no byte (the cap, the peer's network) run in the accept loop
//! and close a refused connection before any task exists for it; the header is read
//! in the connection's own task, so a slow sender never holds up the accept loop. A
//! listener with neither setting starts its protocol's task directly, so its idle
//! connections cost exactly what they did before these features.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use fulcrum_core::proxy_protocol::Version;
use tokio::net::TcpStream;

use super::cap::{ClientSlot, Slot};
use super::proxy_header;
use crate::io::Conn;
use crate::stats::Traffic;
use crate::worker::Worker;

/// A header still to read before the protocol starts.
struct Pending {
    version: Version,
    limit: Duration,
    traffic: Arc<Traffic>,
}

/// Starts serving a connection just accepted on listener `name`, or closes it when
/// the listener refuses it.
pub fn spawn(w: &Rc<Worker>, conn: TcpStream, peer: SocketAddr, name: &Rc<str>) {
    let snap = w.shared.load();
    // The snapshot says what the listener speaks now: a reload may turn an http
    // listener into a tcp one on the same socket.
    let (tcp, tls, gate, traffic) = match snap.tcp_listeners.get(&**name) {
        Some(l) => (true, false, &l.gate, &l.traffic),
        None => match snap.listeners.get(&**name) {
            Some(l) => (false, l.tls.is_some(), &l.gate, &l.traffic),
            // Removed by a reload since the accept: nothing would serve it.
            None => return,
        },
    };
    let slot = match gate.max_connections {
        None => None,
        Some(max) => match Slot::take(traffic, max) {
            Some(slot) => Some(slot),
            None => {
                tracing::debug!(listener = %name, %peer, max, "connection refused: max_connections reached");
                return;
            }
        },
    };
    let pending = match &gate.proxy {
        None => None,
        Some(p) if p.allows(peer.ip()) => Some(Pending {
            version: p.version,
            limit: gate.header_timeout,
            traffic: traffic.clone(),
        }),
        Some(_) => {
            traffic.admission.refuse_proxy();
            tracing::debug!(listener = %name, %peer, "connection refused: PROXY header from a network not in proxy_protocol_from");
            return;
        }
    };
    // A layer-4 listener refuses by address at once when the peer is the client;
    // behind a PROXY header, once the header names the client.
    if tcp && pending.is_none() && !permitted(gate, peer) {
        traffic.admission.refuse_access();
        tracing::debug!(listener = %name, %peer, "connection refused: allow/deny");
        return;
    }
    let per_client = gate.per_client;
    drop(snap);
    let (w, name) = (w.clone(), name.clone());
    match (slot, pending) {
        (None, None) if per_client.is_some() => {
            tokio::task::spawn_local(gated(w, conn, peer, name, (tcp, tls), None, None));
        }
        (None, None) if tcp => {
            tokio::task::spawn_local(crate::l4::tcp::serve(w, conn, peer, BytesMut::new(), name));
        }
        (None, None) if !tls => {
            let conn = Conn::Tcp(conn);
            tokio::task::spawn_local(crate::l7::h1::serve(w, conn, peer, BytesMut::new(), name));
        }
        (slot, pending) => {
            tokio::task::spawn_local(gated(w, conn, peer, name, (tcp, tls), slot, pending));
        }
    }
}

/// Whether the listener's `allow` / `deny` lets `client` in.
fn permitted(gate: &crate::state::Gate, client: SocketAddr) -> bool {
    gate.access.as_ref().is_none_or(|a| a.permits(client.ip()))
}

/// Serves a connection that holds a place under the cap, or must first send a
/// PROXY header, or both.
async fn gated(
    w: Rc<Worker>,
    conn: TcpStream,
    peer: SocketAddr,
    name: Rc<str>,
    (tcp, tls): (bool, bool),
    slot: Option<Slot>,
    pending: Option<Pending>,
) {
    // Held until the connection ends, whatever it turns out to speak.
    let _slot = slot;
    let (client, rest) = match pending {
        None => (peer, BytesMut::new()),
        // Boxed: the read's timer and buffer live only while the header arrives,
        // not in the connection's future for its whole life.
        Some(p) => match Box::pin(proxy_header::read(&conn, p.version, p.limit)).await {
            Ok((client, rest)) => (client.unwrap_or(peer), rest),
            Err(error) => {
                p.traffic.admission.refuse_proxy();
                tracing::debug!(listener = %name, %peer, %error, "connection refused: bad PROXY header");
                return;
            }
        },
    };
    // One client's share of the listener, once the client is known.
    let per_client = {
        let snap = w.shared.load();
        let listener = match snap.tcp_listeners.get(&*name) {
            Some(l) => Some((l.gate.per_client, &l.traffic)),
            None => snap
                .listeners
                .get(&*name)
                .map(|l| (l.gate.per_client, &l.traffic)),
        };
        match listener {
            Some((Some(max), traffic)) => match ClientSlot::take(traffic, client.ip(), max) {
                Some(slot) => Some(slot),
                None => {
                    tracing::debug!(listener = %name, %client, max, "connection refused: max_connections_per_client reached");
                    return;
                }
            },
            _ => None,
        }
    };
    let _per_client = per_client;
    if tcp {
        let refused = w.shared.load().tcp_listeners.get(&*name).map(|l| {
            let refused = !permitted(&l.gate, client);
            if refused {
                l.traffic.admission.refuse_access();
            }
            refused
        });
        if refused != Some(false) {
            tracing::debug!(listener = %name, %client, "connection refused: allow/deny");
            return;
        }
        crate::l4::tcp::serve(w, conn, client, rest, name).await;
    } else if tls {
        https(w, conn, client, rest, name).await;
    } else {
        crate::l7::h1::serve(w, Conn::Tcp(conn), client, rest, name).await;
    }
}

/// Serves a connection of an https listener: the handshake (its state boxed, so
/// it is freed before the connection idles), then HTTP/2 or HTTP/1.1 by ALPN.
async fn https(w: Rc<Worker>, conn: TcpStream, peer: SocketAddr, early: BytesMut, name: Rc<str>) {
    let Some((t, limit, traffic)) = w.shared.load().listeners.get(&*name).and_then(|l| {
        let t = l.tls.clone()?;
        Some((t, l.header_timeout, l.traffic.clone()))
    }) else {
        return;
    };
    let local = conn.local_addr().ok();
    let _ = conn.set_nodelay(true);
    let accepted = Box::pin(crate::tls::accept(&t, conn, &early, limit, &traffic.tls)).await;
    drop((t, early));
    match accepted {
        Err(error) => {
            tracing::debug!(listener = %name, %peer, %error, "TLS handshake failed");
        }
        Ok(crate::tls::Accepted::Challenge) => {}
        Ok(crate::tls::Accepted::H2(tls)) => {
            drop(traffic);
            let session = Rc::new(tls.session().clone());
            let h2 =
                crate::l7::h2::serve(w, tls, BytesMut::new(), (peer, local), name, Some(session));
            Box::pin(h2).await;
        }
        Ok(crate::tls::Accepted::H1(tls)) => {
            drop(traffic);
            let conn = Conn::Tls(Box::new(tls));
            crate::l7::h1::serve(w, conn, peer, BytesMut::new(), name).await;
        }
    }
}
