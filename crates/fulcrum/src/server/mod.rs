//! Start order, workers, signals and graceful shutdown.
//!
//! The main thread binds each listener once (resolving port 0), starts N worker
//! threads, each with a current-thread runtime and its own SO_REUSEPORT socket on the
//! same port, then waits for signals: SIGHUP reloads, SIGTERM/SIGINT stop accepting
//! and let in-flight requests finish up to `shutdown_timeout`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::unix::net::UnixDatagram as StdDatagram;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use fulcrum_core::config::Config;
use tokio::sync::watch;

use crate::access_log::AccessLog;
use crate::handover::Inherited;
use crate::listen::live::{Live, QuicBound, QUIC_ENTRY, RELAY_ENTRY};
use crate::listen::quic_relay::{socket_to_link, QuicSocket, Relay, Tag};
use crate::listen::socket::Socket;
use crate::state::{Registry, Snapshot};
use crate::worker::{Shared, Worker};
use signals::{Signals, Upgrade};
use workers::{worker_main, worker_seed};

mod signals;
mod workers;

/// Why Fulcrum could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A listener could not be bound.
    #[error("listeners.{name}: cannot bind {address}: {error}")]
    Bind {
        /// Listener name.
        name: String,
        /// Address.
        address: String,
        /// Why.
        error: std::io::Error,
    },
    /// The snapshot could not be built.
    #[error("{0}")]
    Build(#[from] crate::state::BuildError),
    /// The admin listener could not be bound.
    #[error("{0}")]
    Admin(#[from] crate::admin::BindError),
    /// Taking over from an upgrading process failed.
    #[error("upgrade: {0}")]
    Upgrade(#[from] crate::handover::HandoverError),
    /// Runtime or thread setup failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Serves `config` until SIGTERM or SIGINT; `path` is re-read on SIGHUP.
pub fn run(config: Config, path: Option<PathBuf>) -> Result<(), RunError> {
    // A process started by `fulcrum upgrade` takes its listening sockets over from
    // the old one instead of binding them.
    let mut inherited = Inherited::receive()?;
    let registry = Arc::new(Registry::default());
    let shutdown_timeout = config.shutdown_timeout.get();
    let workers = config
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let process = Arc::new(crate::admin::Process::new(path.as_deref()));
    let admin_config = config.admin.clone();
    let log = AccessLog::start(&config.access_log)?;
    process.set_log(log.clone());
    let spans = crate::spans::Spans::start(config.tracing.as_ref())?;
    process.set_spans(spans.clone());
    // Signal handlers exist before anything is announced: a SIGHUP right after
    // "listening" must reload, not kill.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let signals = {
        let _enter = rt.enter();
        Signals::new()?
    };
    let mut bound = Vec::new();
    let (tag, mut inherited_quic) = take_quic(inherited.as_mut());
    let mut quic: Vec<(String, SocketAddr, Vec<QuicSocket>)> = Vec::new();
    for (name, l) in &config.listeners {
        if !crate::listen::live::is_bound(l.protocol) {
            continue;
        }
        let bind_err = |error| RunError::Bind {
            name: name.clone(),
            address: l.address.clone(),
            error,
        };
        let addr: SocketAddr = l
            .address
            .parse()
            .map_err(|_| bind_err(std::io::ErrorKind::InvalidInput.into()))?;
        // Sockets of the other kind (a listener turned from tcp to udp across the
        // upgrade) are not taken over.
        let udp = crate::listen::live::is_udp(l.protocol);
        let taken = inherited
            .as_mut()
            .and_then(|i| i.take(name, addr))
            .filter(|(_, sockets)| sockets.iter().all(|s| s.is_udp() == udp));
        let (actual, sockets) = match taken {
            Some(t) => t,
            None => {
                let first = Socket::bind(addr, udp).map_err(bind_err)?;
                let actual = first.local_addr()?;
                let mut sockets = vec![first];
                // Every worker's socket before "listening": the kernel spreads UDP
                // clients by the size of the group, so a socket joining later would
                // move clients already talking to another worker (and session).
                while udp && sockets.len() < workers {
                    sockets.push(Socket::bind(actual, udp).map_err(bind_err)?);
                }
                (actual, sockets)
            }
        };
        tracing::info!(listener = %name, address = %actual, workers, "listening");
        if crate::listen::live::has_quic(l) {
            // The old process's sockets, one per worker, with their relay links:
            // the group stays the same, so does the kernel's spread.
            let taken = inherited_quic
                .remove(name)
                .filter(|(addr, group)| *addr == actual && group.len() == workers);
            let group = match taken {
                Some((_, group)) => group,
                None => {
                    // One QUIC socket per worker on the same address and port, all
                    // bound before any client: the kernel spreads clients by the
                    // group's size.
                    let mut group = Vec::with_capacity(workers);
                    for _ in 0..workers {
                        group.push(QuicSocket {
                            udp: crate::listen::socket::bind_udp(actual).map_err(bind_err)?,
                            relay: Relay::new(tag, None),
                        });
                    }
                    group
                }
            };
            tracing::info!(listener = %name, address = %actual, workers, "listening for HTTP/3");
            quic.push((name.clone(), actual, group));
        }
        bound.push((name.clone(), l.address.clone(), actual, sockets));
    }
    let shared: Shared = Arc::new(ArcSwap::from_pointee(Snapshot::build(
        config, 1, &registry,
    )?));
    registry.apply(&shared.load());
    // Probes and health timers run on this thread, beside the signal handling.
    rt.spawn(crate::health::run(shared.clone(), registry.clone()));
    // So does discovery: names re-resolved, files re-read, pools rebuilt.
    rt.spawn(crate::discover::run(shared.clone(), registry.clone()));
    rt.spawn(log.clone().report_drops());
    // Certificate files are checked for changes on a thread of their own.
    crate::cert_tasks::watch(shared.clone());
    rt.spawn(crate::cert_tasks::run(shared.clone()));
    if let Some(path) = &path {
        rt.spawn(watch(
            path.clone(),
            shared.clone(),
            registry.clone(),
            process.clone(),
        ));
    }
    // So does the admin server: never on a worker.
    let mut admin_socket = None;
    if let Some(cfg) = &admin_config {
        let listeners = bound.iter().map(|(n, _, a, _)| (n.clone(), *a)).collect();
        let admin = crate::admin::Admin::new(
            cfg,
            shared.clone(),
            registry.clone(),
            process.clone(),
            path.clone(),
            listeners,
        );
        let (server, socket) = crate::admin::start(cfg, admin, inherited.as_mut())?;
        rt.spawn(server);
        admin_socket = Some(socket);
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    // Worker `id` serves socket `i` of each listener when `i % workers == id`; a
    // worker without one (fewer inherited than workers) binds its own.
    let mut per_worker: Vec<Vec<(String, Socket)>> = (0..workers).map(|_| Vec::new()).collect();
    let mut started = Vec::new();
    for (name, address, actual, sockets) in bound {
        let mut copies = Vec::new();
        let have = sockets.len();
        let udp = sockets.first().is_some_and(Socket::is_udp);
        for (i, socket) in sockets.into_iter().enumerate() {
            copies.push(socket.try_clone()?);
            if let Some(w) = per_worker.get_mut(i % workers) {
                w.push((name.clone(), socket));
            }
        }
        for w in per_worker.iter_mut().skip(have) {
            let socket = Socket::bind(actual, udp)?;
            copies.push(socket.try_clone()?);
            w.push((name.clone(), socket));
        }
        // Kept to hand over to a successor; closing these would not close the
        // workers' sockets, and the workers' closing does not close these.
        started.push((name, address, actual, copies));
    }
    let mut quic_per_worker: Vec<Vec<(String, QuicSocket)>> =
        (0..workers).map(|_| Vec::new()).collect();
    let mut quic_bound = std::collections::BTreeMap::new();
    for (name, actual, group) in quic {
        let (entry, group) = QuicBound::new(actual, group)?;
        quic_bound.insert(name.clone(), entry);
        for (w, socket) in quic_per_worker.iter_mut().zip(group) {
            w.push((name.clone(), socket));
        }
    }
    let mut threads = Vec::with_capacity(workers);
    let mut commands = Vec::with_capacity(workers);
    for (id, (sockets, quic)) in per_worker.into_iter().zip(quic_per_worker).enumerate() {
        let (shared, log, stop_rx) = (shared.clone(), log.clone(), stop_rx.clone());
        let spans = spans.clone();
        let registry = registry.clone();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        commands.push(tx);
        let thread = std::thread::Builder::new()
            .name(format!("worker-{id}"))
            .spawn(move || {
                worker_main(
                    id,
                    Worker::new(shared, (log, spans), registry, worker_seed(id)),
                    (sockets, quic, rx),
                    stop_rx,
                    shutdown_timeout,
                )
            })?;
        threads.push(thread);
    }
    let live = Arc::new(Live::new(commands, started, quic_bound, tag));
    process.set_live(live.clone());
    if let Some(inherited) = inherited {
        // Checked backends start unknown: the old process keeps accepting until the
        // first probes have answered, or this one would refuse everything meanwhile.
        rt.block_on(first_probes(&shared));
        inherited.ready()?;
        tracing::info!("took over the listening sockets from the previous process");
        crate::notify::took_over();
    } else {
        crate::notify::ready();
    }
    let upgrade = Upgrade {
        exe: std::env::current_exe()?,
        args: std::env::args_os().skip(1).collect(),
        live,
        admin: admin_socket.map(Arc::new),
    };
    rt.block_on(async {
        signals
            .wait(path, &shared, &registry, &process, &upgrade, &log)
            .await;
        let _ = stop_tx.send(true);
        // Joined off this runtime, which keeps running health checks, ejection ends
        // and the admin API while the workers drain.
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        })
        .await;
    });
    // Every worker has handed its last lines over; they are written before exit.
    log.close(LOG_CLOSE);
    tracing::info!("stopped");
    Ok(())
}

/// The HTTP/3 sockets an upgrade handed over, by listener, each with the relay
/// link to the old process; and this process's tag, other than the old one's.
fn take_quic(
    inherited: Option<&mut Inherited>,
) -> (Tag, HashMap<String, (SocketAddr, Vec<QuicSocket>)>) {
    let Some(inherited) = inherited else {
        return (Tag::pick(None), HashMap::new());
    };
    let mut links: HashMap<String, (Tag, Vec<StdDatagram>)> = HashMap::new();
    for (entry, _, sockets) in inherited.take_prefixed(RELAY_ENTRY) {
        let rest = entry.strip_prefix(RELAY_ENTRY).unwrap_or_default();
        let Some((tag, name)) = rest.split_once('/') else {
            continue;
        };
        let Some(tag) = Tag::parse(tag) else { continue };
        let ends: Option<Vec<_>> = sockets.into_iter().map(socket_to_link).collect();
        if let Some(ends) = ends {
            links.insert(name.to_owned(), (tag, ends));
        }
    }
    let tag = Tag::pick(links.values().next().map(|(t, _)| *t));
    let mut out = HashMap::new();
    for (entry, addr, sockets) in inherited.take_prefixed(QUIC_ENTRY) {
        let name = entry
            .strip_prefix(QUIC_ENTRY)
            .unwrap_or_default()
            .to_owned();
        let udp: Vec<_> = sockets
            .into_iter()
            .filter_map(|s| match s {
                Socket::Udp(u) => Some(u),
                Socket::Tcp(_) => None,
            })
            .collect();
        let mut older: Vec<Option<(Tag, StdDatagram)>> = match links.remove(&name) {
            Some((t, ends)) if ends.len() == udp.len() => {
                ends.into_iter().map(|e| Some((t, e))).collect()
            }
            _ => Vec::new(),
        };
        older.resize_with(udp.len(), || None);
        let group = udp
            .into_iter()
            .zip(older)
            .map(|(udp, older)| QuicSocket {
                udp,
                relay: Relay::new(tag, older),
            })
            .collect();
        out.insert(name, (addr, group));
    }
    (tag, out)
}

/// How long the exit waits for the access log writer (a stuck pipe must not hold it).
const LOG_CLOSE: Duration = Duration::from_secs(5);

/// Waits until every actively checked backend has a first verdict, at most the
/// longest first-probe delay (interval × jitter) plus the check timeout.
async fn first_probes(shared: &Shared) {
    use fulcrum_core::health::State;
    let snap = shared.load_full();
    let limit = snap
        .pools
        .iter()
        .filter_map(|p| p.check.as_ref())
        .map(|c| {
            let interval = c.interval.get();
            let jitter = c.jitter.map_or(interval / 10, |j| j.get());
            jitter + c.timeout.get()
        })
        .max()
        .unwrap_or_default()
        .min(Duration::from_secs(10));
    let deadline = tokio::time::Instant::now() + limit + Duration::from_millis(100);
    let pending = || {
        snap.pools.iter().filter(|p| p.check.is_some()).any(|p| {
            p.members
                .iter()
                .any(|m| m.health().state(crate::clock::now()) == State::Unknown)
        })
    };
    while pending() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Reloads the config file when it changes, while the loaded config says
/// `watch = true`: polled every second (size, modification time, then content),
/// so it needs no inotify and sees a file replaced by rename as well.
async fn watch(
    path: PathBuf,
    shared: Shared,
    registry: Arc<Registry>,
    process: Arc<crate::admin::Process>,
) {
    let stamp = |p: &PathBuf| {
        std::fs::metadata(p)
            .ok()
            .map(|m| (m.len(), m.modified().ok()))
    };
    let mut seen = stamp(&path);
    let mut text = std::fs::read(&path).ok();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = stamp(&path);
        if now == seen {
            continue;
        }
        seen = now;
        let new = std::fs::read(&path).ok();
        if new == text || new.is_none() {
            continue;
        }
        text = new;
        if shared.load().config.watch {
            tracing::info!(path = %path.display(), "config file changed; reloading");
            let _ = process.reload(&path, &shared, &registry);
        }
    }
}
