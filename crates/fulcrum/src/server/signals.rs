//! The signals Fulcrum answers (SIGTERM/SIGINT stop, SIGHUP reload, SIGUSR1
//! access log reopen, SIGUSR2 binary handover) and the handover itself from the old process's side.

use std::path::PathBuf;
use std::sync::Arc;

use crate::handover::{HandoverError, Listening};
use crate::listen::live::Live;
use crate::state::Registry;
use crate::worker::Shared;

/// The signals Fulcrum answers.
pub(super) struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
    usr2: tokio::signal::unix::Signal,
    usr1: tokio::signal::unix::Signal,
}

/// What a SIGUSR2 needs to start the successor: the binary (resolved at start, so
/// a binary replaced on disk is the one started), the arguments, and the sockets.
pub(super) struct Upgrade {
    pub(super) exe: PathBuf,
    pub(super) args: Vec<std::ffi::OsString>,
    /// The HTTP and TCP listeners as they are now (reloads move them).
    pub(super) live: Arc<Live>,
    /// The admin listener's socket, when there is one.
    pub(super) admin: Option<Arc<Listening>>,
}

impl Upgrade {
    /// Starts the successor and hands it the sockets; `true` once it serves.
    async fn run(&self) -> bool {
        let (exe, args) = (self.exe.clone(), self.args.clone());
        let (live, admin) = (self.live.clone(), self.admin.clone());
        let result = tokio::task::spawn_blocking(move || {
            let mut handover = live.handover().map_err(|error| HandoverError::Io {
                what: "copy the listening sockets",
                error,
            })?;
            if let Some(a) = admin {
                let sockets = a
                    .sockets
                    .iter()
                    .map(|s| s.try_clone())
                    .collect::<Result<_, _>>();
                let sockets = sockets.map_err(|error| HandoverError::Io {
                    what: "copy the admin socket",
                    error,
                })?;
                handover.push(Listening {
                    name: a.name.clone(),
                    addr: a.addr,
                    sockets,
                });
            }
            crate::handover::hand_over(&exe, &args, &handover)
        })
        .await;
        match result {
            Ok(Ok(child)) => {
                tracing::info!(
                    new_pid = child.id(),
                    "upgrade: the new process serves; finishing in-flight requests"
                );
                true
            }
            Ok(Err(error)) => {
                tracing::error!(%error, "upgrade failed; this process keeps serving");
                false
            }
            Err(error) => {
                tracing::error!(%error, "upgrade failed; this process keeps serving");
                false
            }
        }
    }
}

impl Signals {
    pub(super) fn new() -> std::io::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
            usr2: signal(SignalKind::user_defined2())?,
            usr1: signal(SignalKind::user_defined1())?,
        })
    }

    /// Waits for SIGTERM or SIGINT, or a SIGUSR2 whose upgrade succeeded; reloads
    /// on each SIGHUP meanwhile.
    pub(super) async fn wait(
        mut self,
        path: Option<PathBuf>,
        shared: &Shared,
        registry: &Registry,
        process: &crate::admin::Process,
        upgrade: &Upgrade,
        log: &crate::access_log::AccessLog,
    ) {
        loop {
            tokio::select! {
                _ = self.term.recv() => break crate::notify::stopping(),
                _ = self.int.recv() => break crate::notify::stopping(),
                // The new process is the service now: no STOPPING=1 from this one,
                // or systemd would take the service for stopping.
                _ = self.usr2.recv() => if upgrade.run().await { break },
                // logrotate's postrotate: the file was moved away; open the path anew.
                _ = self.usr1.recv() => log.reopen(),
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
