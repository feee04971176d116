//! HTTP/3 listeners: a QUIC endpoint per worker, each on a UDP socket of its own
//! bound with SO_REUSEPORT to the https listener's address, so the kernel spreads
//! clients over the workers by their address and port, as it does TCP connections.
//! Every packet of a connection reaches the worker that holds it as long as the
//! client's address stays the same; a client that moves would land on another
//! worker, so migration is refused (the QUIC transport parameter
//! `disable_active_migration`), and a client whose NAT rebinds gets a stateless
//! reset and reconnects. `docs/architecture.md` says why one endpoint with
//! connection-ID routing was not chosen.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::QuicServerConfig;
use quinn::Runtime;

use super::quic_relay::{QuicSocket, Relayed};
use crate::worker::Worker;

/// How often an endpoint looks for a reload's new certificates or limits.
const RECHECK: Duration = Duration::from_secs(1);

/// The QUIC settings of https listener `name` in the serving snapshot, and the
/// TLS configuration they were made from.
fn server_config(
    w: &Worker,
    name: &str,
) -> Option<(quinn::ServerConfig, Arc<rustls::ServerConfig>)> {
    let snap = w.shared.load();
    let l = snap.listeners.get(name)?;
    let tls = l.tls.as_ref()?;
    let crypto = match QuicServerConfig::try_from(tls.quic.clone()) {
        Ok(c) => c,
        Err(error) => {
            tracing::error!(listener = %name, %error, "HTTP/3 unavailable: the TLS settings do not suit QUIC");
            return None;
        }
    };
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    transport.max_concurrent_bidi_streams(quinn::VarInt::from_u32(l.max_concurrent_streams));
    transport.max_idle_timeout(quinn::IdleTimeout::try_from(l.keepalive_timeout).ok());
    config.transport_config(Arc::new(transport));
    config.migration(false);
    Some((config, tls.quic.clone()))
}

/// A client's connection once its handshake completed, or with `early_data` at
/// once, so requests in its 0-RTT data are read (`l7::h3` tells them apart).
async fn accept(
    incoming: quinn::Incoming,
    early_data: bool,
) -> Result<quinn::Connection, quinn::ConnectionError> {
    let connecting = incoming.accept()?;
    if !early_data {
        return connecting.await;
    }
    match connecting.into_0rtt() {
        Ok((conn, _accepted)) => Ok(conn),
        Err(connecting) => connecting.await,
    }
}

/// Serves HTTP/3 on `socket` for listener `name` until the worker stops or `stop`
/// is notified (a reload turned HTTP/3 off or moved it): then new connections are
/// refused (or, after an upgrade, go to the new process) and open ones finish.
pub async fn serve(
    w: Rc<Worker>,
    socket: QuicSocket,
    name: Rc<str>,
    stop: Rc<tokio::sync::Notify>,
) {
    let Some((config, mut tls)) = server_config(&w, &name) else {
        return;
    };
    let QuicSocket { udp, relay } = socket;
    let local: Option<SocketAddr> = udp.local_addr().ok();
    let runtime = Arc::new(quinn::TokioRuntime);
    let started = runtime.wrap_udp_socket(udp).and_then(|inner| {
        let relayed = Arc::new(Relayed::new(inner, relay.clone()));
        quinn::Endpoint::new_with_abstract_socket(
            relay.tag().endpoint_config(),
            Some(config),
            relayed,
            runtime,
        )
    });
    let endpoint = match started {
        Ok(e) => e,
        Err(error) => {
            tracing::error!(listener = %name, %error, "HTTP/3 endpoint failed to start");
            return;
        }
    };
    let mut recheck = tokio::time::interval(RECHECK);
    recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            incoming = endpoint.accept() => {
                let Some(incoming) = incoming else { return };
                let (w, name) = (w.clone(), name.clone());
                tokio::task::spawn_local(async move {
                    let traffic = w.shared.load().listeners.get(&*name).map(|l| l.traffic.clone());
                    let Some(traffic) = traffic else { return };
                    let q = &traffic.quic;
                    let early = w.shared.load().listeners.get(&*name).is_some_and(|l| l.early_data);
                    match accept(incoming, early).await {
                        Ok(conn) => {
                            q.handshakes_ok.fetch_add(1, Ordering::Relaxed);
                            q.started.fetch_add(1, Ordering::Relaxed);
                            let handle = conn.clone();
                            crate::l7::h3::serve(w, conn, local, name, &traffic).await;
                            q.ended(&handle.stats());
                        }
                        Err(_) => {
                            q.handshakes_failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
            _ = recheck.tick() => {
                // A reload builds new TLS settings (new certificate files): new
                // connections use them, open ones keep theirs.
                let now = w.shared.load().listeners.get(&*name).and_then(|l| l.tls.as_ref().map(|t| t.quic.clone()));
                if now.as_ref().is_some_and(|t| !Arc::ptr_eq(t, &tls)) {
                    if let Some((config, t)) = server_config(&w, &name) {
                        endpoint.set_server_config(Some(config));
                        tls = t;
                    }
                }
            }
            () = w.stop.notified() => break,
            () = stop.notified() => break,
        }
        if w.stopping.get() {
            break;
        }
    }
    // No new connections; open ones finish (each saw the stop and sent GOAWAY).
    // A successor, if any, takes clients' first packets from now on.
    relay.retire();
    endpoint.set_server_config(None);
}
