//! Start order, workers, signals and graceful shutdown.
//!
//! The main thread binds each listener once (resolving port 0), starts N worker
//! threads, each with a current-thread runtime and its own SO_REUSEPORT socket on the
//! same port, then waits for signals: SIGHUP reloads, SIGTERM/SIGINT stop accepting
//! and let in-flight requests finish up to `shutdown_timeout`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use fulcrum_core::config::{Config, ListenerProtocol};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::access_log::AccessLog;
use crate::listen;
use crate::state::{Registry, Snapshot};
use crate::worker::{Shared, Worker};

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
    /// Runtime or thread setup failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Serves `config` until SIGTERM or SIGINT; `path` is re-read on SIGHUP.
pub fn run(config: Config, path: Option<PathBuf>) -> Result<(), RunError> {
    let registry = Arc::new(Registry::default());
    let shutdown_timeout = config.shutdown_timeout.get();
    let workers = config
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let process = Arc::new(crate::admin::Process::new(path.as_deref()));
    let admin_config = config.admin.clone();
    let log = AccessLog::start(&config.access_log)?;
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
    for (name, l) in &config.listeners {
        if l.protocol != ListenerProtocol::Http {
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
        let first = listen::bind(addr).map_err(bind_err)?;
        let actual = first.local_addr()?;
        tracing::info!(listener = %name, address = %actual, workers, "listening");
        bound.push((Rc::<str>::from(name.as_str()), actual, Some(first)));
    }
    let shared: Shared = Arc::new(ArcSwap::from_pointee(Snapshot::build(
        config, 1, &registry,
    )?));
    registry.apply(&shared.load());
    // Probes and health timers run on this thread, beside the signal handling.
    rt.spawn(crate::health::run(shared.clone(), registry.clone()));
    // So does the admin server: never on a worker.
    if let Some(cfg) = &admin_config {
        let listeners = bound.iter().map(|(n, a, _)| (n.to_string(), *a)).collect();
        let admin = crate::admin::Admin::new(
            cfg,
            shared.clone(),
            registry.clone(),
            process.clone(),
            path.clone(),
            listeners,
        );
        rt.spawn(crate::admin::start(cfg, admin)?);
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut threads = Vec::with_capacity(workers);
    for id in 0..workers {
        let mut sockets = Vec::new();
        for (name, addr, first) in &mut bound {
            let socket = match first.take() {
                Some(s) => s,
                None => listen::bind(*addr)?,
            };
            sockets.push((name.to_string(), socket));
        }
        let (shared, log, stop_rx) = (shared.clone(), log.clone(), stop_rx.clone());
        let registry = registry.clone();
        let thread = std::thread::Builder::new()
            .name(format!("worker-{id}"))
            .spawn(move || {
                worker_main(
                    id,
                    Worker::new(shared, log, registry, worker_seed(id)),
                    sockets,
                    stop_rx,
                    shutdown_timeout,
                )
            })?;
        threads.push(thread);
    }
    rt.block_on(signals.wait(path, &shared, &registry, &process));
    let _ = stop_tx.send(true);
    for t in threads {
        let _ = t.join();
    }
    tracing::info!("stopped");
    Ok(())
}

/// The signals Fulcrum answers.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> std::io::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// Waits for SIGTERM or SIGINT, reloading on each SIGHUP meanwhile.
    async fn wait(
        mut self,
        path: Option<PathBuf>,
        shared: &Shared,
        registry: &Registry,
        process: &crate::admin::Process,
    ) {
        loop {
            tokio::select! {
                _ = self.term.recv() => break,
                _ = self.int.recv() => break,
                _ = self.hup.recv() => match &path {
                    // Counted and logged ("config reloaded" / "reload failed") there.
                    Some(path) => { let _ = process.reload(path, shared, registry); }
                    None => tracing::warn!("SIGHUP ignored: running the embedded config"),
                },
            }
        }
        tracing::info!("shutting down: no new connections, finishing in-flight requests");
    }
}

fn worker_seed(id: usize) -> u64 {
    (id as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ u64::from(std::process::id())
}

fn worker_main(
    id: usize,
    w: Rc<Worker>,
    sockets: Vec<(String, std::net::TcpListener)>,
    mut stop_rx: watch::Receiver<bool>,
    deadline: Duration,
) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(error) => {
            tracing::error!(worker = id, %error, "worker runtime failed to start");
            return;
        }
    };
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        for (name, socket) in sockets {
            match TcpListener::from_std(socket) {
                Ok(listener) => {
                    tokio::task::spawn_local(accept_loop(w.clone(), listener, Rc::from(name.as_str())));
                }
                Err(error) => tracing::error!(worker = id, %error, "listener setup failed"),
            }
        }
        tokio::task::spawn_local(sweep(w.clone()));
        let _ = stop_rx.wait_for(|s| *s).await;
        w.begin_stop();
        let expire = tokio::time::sleep(deadline);
        tokio::pin!(expire);
        while w.busy.get() > 0 {
            tokio::select! {
                () = w.idle.notified() => {}
                () = &mut expire => {
                    tracing::warn!(worker = id, busy = w.busy.get(), "shutdown deadline passed; closing");
                    break;
                }
            }
        }
        w.h1_pool.clear();
        w.h2_pool.clear();
    });
}

async fn accept_loop(w: Rc<Worker>, listener: TcpListener, name: Rc<str>) {
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((io, peer)) => {
                    tokio::task::spawn_local(crate::l7::h1::serve(w.clone(), io, peer, name.clone()));
                }
                Err(error) => {
                    // Out of descriptors or similar: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            () = w.stop.notified() => return,
        }
        if w.stopping.get() {
            return;
        }
    }
}

/// Closes idle upstream connections past their pool's idle timeout.
async fn sweep(w: Rc<Worker>) {
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    loop {
        tick.tick().await;
        if w.stopping.get() {
            return;
        }
        let snap = w.shared.load();
        w.h1_pool.sweep(|addr| {
            snap.pools
                .iter()
                .find(|p| p.backends.iter().any(|b| b.addr == addr))
                .map_or(Duration::ZERO, |p| p.idle_timeout)
        });
    }
}
