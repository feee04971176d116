//! Listeners that follow the config. A reload binds every listener it adds or
//! moves before the new config is published (a port in use fails the reload and
//! changes nothing), then hands each worker its socket; a listener whose address
//! did not change keeps its sockets, accept queues and connections (a udp
//! listener: its sockets and sessions).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use fulcrum_core::config::{Config, ListenerProtocol};
use tokio::sync::mpsc::UnboundedSender;

use super::quic_relay::{link_to_socket, QuicSocket, Relay, Tag};
use super::socket::Listening;
use super::socket::Socket;

/// Whether listeners speaking `protocol` get sockets: TCP ones for http, https, tcp and
/// tls-passthrough (workers tell them apart by the snapshot's listener maps when
/// they accept), UDP ones for udp (see [`is_udp`]).
pub fn is_bound(protocol: ListenerProtocol) -> bool {
    matches!(
        protocol,
        ListenerProtocol::Http
            | ListenerProtocol::Https
            | ListenerProtocol::Tcp
            | ListenerProtocol::TlsPassthrough
            | ListenerProtocol::Udp
    )
}

/// Whether listeners speaking `protocol` get UDP sockets.
pub fn is_udp(protocol: ListenerProtocol) -> bool {
    protocol == ListenerProtocol::Udp
}

/// What a worker is told to do with its listening sockets.
#[derive(Debug)]
pub enum Command {
    /// Accept on this socket (receive, for UDP) for listener `name`, replacing what
    /// it had.
    Add(String, Socket),
    /// Stop accepting for listener `name`; its connections carry on (a udp
    /// listener's sessions end).
    Remove(String),
    /// Serve HTTP/3 on this UDP socket for https listener `name`, replacing what it
    /// had.
    AddQuic(String, QuicSocket),
    /// Stop taking HTTP/3 connections for listener `name`; open ones finish.
    RemoveQuic(String),
}

/// Handover entry name of an HTTP/3 listener's UDP sockets, before its name.
pub const QUIC_ENTRY: &str = "@quic/";

/// Handover entry name of an HTTP/3 listener's relay links, before `TAG/NAME`.
pub const RELAY_ENTRY: &str = "@quic-relay/";

/// Whether listener `l` serves HTTP/3.
pub fn has_quic(l: &fulcrum_core::config::ListenerConfig) -> bool {
    l.http3 && l.protocol == ListenerProtocol::Https
}

/// One listener's sockets, kept so an upgrade can hand them over.
#[derive(Debug)]
struct Bound {
    /// The address as configured (`127.0.0.1:0` stays `:0` here).
    address: String,
    /// The address actually bound.
    actual: SocketAddr,
    /// Copies of the workers' sockets.
    copies: Vec<Socket>,
}

/// One listener's HTTP/3 sockets, kept so an upgrade can hand them over with a
/// relay link each (`quic_relay`).
#[derive(Debug)]
pub struct QuicBound {
    /// The address bound.
    actual: SocketAddr,
    /// Copies of the workers' sockets.
    copies: Vec<std::net::UdpSocket>,
    /// Each worker socket's relay.
    relays: Vec<Arc<Relay>>,
}

impl QuicBound {
    /// The record of `sockets` (one per worker) bound to `actual`, and the sockets.
    pub fn new(
        actual: SocketAddr,
        sockets: Vec<QuicSocket>,
    ) -> std::io::Result<(Self, Vec<QuicSocket>)> {
        let copies = sockets
            .iter()
            .map(|s| s.udp.try_clone())
            .collect::<Result<_, _>>()?;
        let relays = sockets.iter().map(|s| s.relay.clone()).collect();
        let bound = Self {
            actual,
            copies,
            relays,
        };
        Ok((bound, sockets))
    }
}

/// Why a reload's listeners could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("listeners.{name}: cannot bind {address}: {error}")]
pub struct BindError {
    /// Listener name.
    pub name: String,
    /// The address as configured.
    pub address: String,
    /// Why.
    pub error: std::io::Error,
}

/// Listeners a reload adds or moves, bound and not yet in use, and those it removes;
/// the same for HTTP/3's UDP sockets, which follow their https listener's address.
#[derive(Debug, Default)]
pub struct Plan {
    add: Vec<(String, Bound, Vec<Socket>)>,
    remove: Vec<String>,
    add_quic: Vec<(String, QuicBound, Vec<QuicSocket>)>,
    remove_quic: Vec<String>,
}

/// The HTTP, TCP and UDP listeners of a running process and the workers that
/// serve them.
#[derive(Debug)]
pub struct Live {
    workers: Vec<UnboundedSender<Command>>,
    bound: Mutex<BTreeMap<String, Bound>>,
    /// HTTP/3 listeners by name, with their UDP sockets.
    quic: Mutex<BTreeMap<String, QuicBound>>,
    /// The tag of this process's QUIC connection IDs.
    tag: Tag,
}

impl Live {
    /// The listeners bound at startup: `(name, configured address, actual address,
    /// copies of the workers' sockets)`.
    pub fn new(
        workers: Vec<UnboundedSender<Command>>,
        started: Vec<(String, String, SocketAddr, Vec<Socket>)>,
        quic: BTreeMap<String, QuicBound>,
        tag: Tag,
    ) -> Self {
        let bound = started
            .into_iter()
            .map(|(name, address, actual, copies)| {
                (
                    name,
                    Bound {
                        address,
                        actual,
                        copies,
                    },
                )
            })
            .collect();
        Self {
            workers,
            bound: Mutex::new(bound),
            quic: Mutex::new(quic),
            tag,
        }
    }

    fn guard(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Bound>> {
        self.bound.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Binds what `config` adds or moves, one socket per worker (SO_REUSEPORT).
    pub fn plan(&self, config: &Config) -> Result<Plan, BindError> {
        let bound = self.guard();
        let mut plan = Plan::default();
        for (name, l) in &config.listeners {
            if !is_bound(l.protocol) {
                continue;
            }
            let udp = is_udp(l.protocol);
            // A listener turned from TCP to UDP (or back) on the same address needs
            // sockets of the other kind.
            let same = |b: &Bound| {
                b.address == l.address && b.copies.first().is_some_and(|s| s.is_udp() == udp)
            };
            if bound.get(name).is_some_and(same) {
                continue;
            }
            let err = |error| BindError {
                name: name.clone(),
                address: l.address.clone(),
                error,
            };
            let addr: SocketAddr = l
                .address
                .parse()
                .map_err(|_| err(std::io::ErrorKind::InvalidInput.into()))?;
            let first = Socket::bind(addr, udp).map_err(err)?;
            let actual = first.local_addr().map_err(err)?;
            let mut sockets = vec![first];
            while sockets.len() < self.workers.len() {
                sockets.push(Socket::bind(actual, udp).map_err(err)?);
            }
            let copies = sockets
                .iter()
                .map(Socket::try_clone)
                .collect::<Result<Vec<_>, _>>()
                .map_err(err)?;
            let entry = Bound {
                address: l.address.clone(),
                actual,
                copies,
            };
            plan.add.push((name.clone(), entry, sockets));
        }
        plan.remove = bound
            .keys()
            .filter(|name| {
                !config
                    .listeners
                    .get(*name)
                    .is_some_and(|l| is_bound(l.protocol))
            })
            .cloned()
            .collect();
        drop(bound);
        self.plan_quic(config, &mut plan)?;
        Ok(plan)
    }

    /// HTTP/3 sockets for the https listeners with `http3`, at the address their TCP
    /// sockets have (or are about to have): kept when that did not change.
    fn plan_quic(&self, config: &Config, plan: &mut Plan) -> Result<(), BindError> {
        let bound = self.guard();
        let quic = self.quic.lock().unwrap_or_else(|e| e.into_inner());
        for (name, l) in config.listeners.iter().filter(|(_, l)| has_quic(l)) {
            let actual = plan
                .add
                .iter()
                .find(|(n, _, _)| n == name)
                .map(|(_, b, _)| b.actual)
                .or_else(|| bound.get(name).map(|b| b.actual));
            let Some(actual) = actual else { continue };
            if quic.get(name).map(|q| q.actual) == Some(actual) {
                continue;
            }
            let err = |error| BindError {
                name: name.clone(),
                address: l.address.clone(),
                error,
            };
            let mut sockets = Vec::with_capacity(self.workers.len());
            for _ in 0..self.workers.len() {
                sockets.push(QuicSocket {
                    udp: super::socket::bind_udp(actual).map_err(err)?,
                    relay: Relay::new(self.tag, None),
                });
            }
            let (entry, sockets) = QuicBound::new(actual, sockets).map_err(err)?;
            plan.add_quic.push((name.clone(), entry, sockets));
        }
        plan.remove_quic = quic
            .keys()
            .filter(|name| !config.listeners.get(*name).is_some_and(has_quic))
            .cloned()
            .collect();
        Ok(())
    }

    /// Puts a plan into effect, once the config that made it is published.
    pub fn commit(&self, plan: Plan) {
        let mut bound = self.guard();
        for name in plan.remove {
            for w in &self.workers {
                let _ = w.send(Command::Remove(name.clone()));
            }
            bound.remove(&name);
            tracing::info!(listener = %name, "listener removed; its connections finish");
        }
        for (name, entry, sockets) in plan.add {
            for (w, socket) in self.workers.iter().zip(sockets) {
                let _ = w.send(Command::Add(name.clone(), socket));
            }
            let workers = self.workers.len();
            tracing::info!(listener = %name, address = %entry.actual, workers, "listening");
            bound.insert(name, entry);
        }
        drop(bound);
        let mut quic = self.quic.lock().unwrap_or_else(|e| e.into_inner());
        for name in plan.remove_quic {
            for w in &self.workers {
                let _ = w.send(Command::RemoveQuic(name.clone()));
            }
            quic.remove(&name);
            tracing::info!(listener = %name, "HTTP/3 stopped; its connections finish");
        }
        for (name, entry, sockets) in plan.add_quic {
            for (w, socket) in self.workers.iter().zip(sockets) {
                let _ = w.send(Command::AddQuic(name.clone(), socket));
            }
            let workers = self.workers.len();
            tracing::info!(listener = %name, address = %entry.actual, workers, "listening for HTTP/3");
            quic.insert(name, entry);
        }
    }

    /// Copies of every listening socket, for a successor process. HTTP/3 sockets
    /// go as `@quic/NAME`, with a relay link per socket as `@quic-relay/TAG/NAME`
    /// (`quic_relay`); packets of the successor's connections read here cross
    /// over from now on.
    pub fn handover(&self) -> std::io::Result<Vec<Listening>> {
        let mut out = self
            .guard()
            .iter()
            .map(|(name, b)| {
                Ok(Listening {
                    name: name.clone(),
                    addr: b.actual,
                    sockets: b
                        .copies
                        .iter()
                        .map(Socket::try_clone)
                        .collect::<Result<_, _>>()?,
                })
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        for (name, q) in self.quic.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let sockets = q
                .copies
                .iter()
                .map(|s| s.try_clone().map(Socket::Udp))
                .collect::<Result<_, _>>()?;
            out.push(Listening {
                name: format!("{QUIC_ENTRY}{name}"),
                addr: q.actual,
                sockets,
            });
            let links = q
                .relays
                .iter()
                .map(|r| r.link_newer().map(link_to_socket))
                .collect::<Result<_, _>>()?;
            out.push(Listening {
                name: format!("{RELAY_ENTRY}{}/{name}", self.tag),
                addr: q.actual,
                sockets: links,
            });
        }
        Ok(out)
    }

    /// Every listener's name and bound address.
    pub fn addresses(&self) -> Vec<(String, SocketAddr)> {
        self.guard()
            .iter()
            .map(|(name, b)| (name.clone(), b.actual))
            .collect()
    }
}
