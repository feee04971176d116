//! Process-wide facts for metrics and the API: uptime, reloads and the loaded
//! config's hash, resident memory and open descriptors.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use sha2::{Digest, Sha256};

use crate::access_log::AccessLog;
use crate::listen::live::Live;
use crate::reload::{self, ReloadError};
use crate::state::Registry;
use crate::state::Shared;

/// Created once at startup, shared by the signal handler and the admin server.
#[derive(Debug)]
pub struct Process {
    started: Instant,
    reloads_ok: AtomicU64,
    reloads_failed: AtomicU64,
    /// SHA-256 (hex) of the config file last loaded; empty for the embedded config.
    config_sha256: Mutex<String>,
    /// The HTTP listeners, once the workers run: reloads rebind what moved.
    live: OnceLock<Arc<Live>>,
    /// The access log, which reloads reconfigure and metrics read.
    log: OnceLock<AccessLog>,
    /// The span exporter, which reloads point elsewhere.
    spans: OnceLock<crate::spans::Spans>,
}

impl Process {
    /// Starts the clock; hashes the config file the process was started with.
    pub fn new(path: Option<&Path>) -> Self {
        Self {
            started: Instant::now(),
            reloads_ok: AtomicU64::new(0),
            reloads_failed: AtomicU64::new(0),
            config_sha256: Mutex::new(path.map(file_sha256).unwrap_or_default()),
            live: OnceLock::new(),
            log: OnceLock::new(),
            spans: OnceLock::new(),
        }
    }

    /// Hands reloads the running listeners (once, at startup).
    pub fn set_live(&self, live: Arc<Live>) {
        let _ = self.live.set(live);
    }

    /// Hands reloads the access log (once, at startup).
    pub fn set_log(&self, log: AccessLog) {
        let _ = self.log.set(log);
    }

    /// Hands reloads the span exporter (once, at startup).
    pub fn set_spans(&self, spans: crate::spans::Spans) {
        let _ = self.spans.set(spans);
    }

    /// The span exporter.
    pub fn spans(&self) -> Option<&crate::spans::Spans> {
        self.spans.get()
    }

    /// The access log.
    pub fn log(&self) -> Option<&AccessLog> {
        self.log.get()
    }

    /// The running listeners, once the workers run.
    pub fn live(&self) -> Option<&Arc<Live>> {
        self.live.get()
    }

    /// Reloads `path` (SIGHUP or `POST /api/reload`): counts and logs the result,
    /// and remembers the new file's hash.
    pub fn reload(
        &self,
        path: &Path,
        shared: &Shared,
        registry: &Registry,
    ) -> Result<u64, ReloadError> {
        crate::notify::reloading();
        let result = reload::reload(path, shared, registry, self.live.get().map(|l| &**l));
        // Serving again, on the new config or the old one.
        crate::notify::ready();
        match result {
            Ok(generation) => {
                let snap = shared.load();
                if let Some(log) = self.log.get() {
                    log.reconfigure(&snap.config.access_log);
                }
                if let Some(spans) = self.spans.get() {
                    spans.reconfigure(snap.config.tracing.as_ref());
                }
                self.reloads_ok.fetch_add(1, Ordering::Relaxed);
                // Read again after the reload read it: a write in between would
                // show here as a hash of the newer text, which the next reload loads.
                *self.sha_guard() = file_sha256(path);
                tracing::info!(generation, "config reloaded");
                Ok(generation)
            }
            Err(error) => {
                self.reloads_failed.fetch_add(1, Ordering::Relaxed);
                tracing::error!(%error, "reload failed; the previous config keeps serving");
                Err(error)
            }
        }
    }

    fn sha_guard(&self) -> std::sync::MutexGuard<'_, String> {
        self.config_sha256.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Seconds since startup.
    pub fn uptime(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// Successful and failed reloads.
    pub fn reloads(&self) -> (u64, u64) {
        (
            self.reloads_ok.load(Ordering::Relaxed),
            self.reloads_failed.load(Ordering::Relaxed),
        )
    }

    /// SHA-256 (hex) of the loaded config file; empty for the embedded config.
    pub fn config_sha256(&self) -> String {
        self.sha_guard().clone()
    }
}

fn file_sha256(path: &Path) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    Sha256::digest(&text)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Resident memory in bytes (`VmRSS` of /proc/self/status); `None` off Linux.
pub fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// Open file descriptors (entries of /proc/self/fd, less the one reading it).
pub fn open_fds() -> Option<u64> {
    let n = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
    Some(n.saturating_sub(1))
}

/// The soft limit on open descriptors (`Max open files` in /proc/self/limits).
pub fn max_fds() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_proc() {
        assert!(resident_bytes().unwrap() > 0);
        assert!(open_fds().unwrap() >= 3);
        assert!(max_fds().unwrap() > 0);
    }

    #[test]
    fn hashes_the_file() {
        let path = std::env::temp_dir().join(format!("fulcrum-sha-{}", std::process::id()));
        std::fs::write(&path, "abc").unwrap();
        assert_eq!(
            Process::new(Some(&path)).config_sha256(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let _ = std::fs::remove_file(&path);
        assert_eq!(Process::new(None).config_sha256(), "");
    }
}
