//! Reload: read → parse and validate → build a snapshot → swap. Any failure before the
//! swap leaves the old snapshot serving.

use std::path::Path;
use std::sync::Arc;

use fulcrum_core::config::{self, Config};

use crate::listen::live::Live;
use crate::state::Shared;
use crate::state::{Registry, Snapshot};

/// Why a reload changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The file could not be read.
    #[error("{path}: {error}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        error: std::io::Error,
    },
    /// Validation failed; every error is listed.
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<config::ConfigError>),
    /// The snapshot could not be built.
    #[error("{0}")]
    Build(#[from] crate::state::BuildError),
    /// A listener the new config adds or moves could not be bound.
    #[error("{0}")]
    Bind(#[from] crate::listen::live::BindError),
}

/// Reads and validates a config file.
pub fn load(path: &Path) -> Result<Config, ReloadError> {
    let text = std::fs::read_to_string(path).map_err(|error| ReloadError::Read {
        path: path.display().to_string(),
        error,
    })?;
    config::parse(path, &text).map_err(ReloadError::Invalid)
}

/// Builds `config` as a start or reload would, on fresh state, and drops it: every
/// certificate, key, CA and JWT key file is read and every backend name resolved,
/// so `fulcrum check` refuses what `run` would refuse, not only bad keys.
pub fn build_only(config: Config) -> Result<(), crate::state::BuildError> {
    Snapshot::build(config, 1, &Registry::default()).map(drop)
}

/// Loads `path` and publishes it; returns the new generation. Listeners the new
/// config adds or moves are bound first (`live`), so a port in use fails the
/// reload with nothing changed; unchanged listeners keep their sockets.
pub fn reload(
    path: &Path,
    shared: &Shared,
    registry: &Registry,
    live: Option<&Live>,
) -> Result<u64, ReloadError> {
    let config = load(path)?;
    let old = shared.load();
    let generation = old.generation + 1;
    let plan = live.map(|l| l.plan(&config)).transpose()?;
    // The admin API's additions and removals last until a reload: this one
    // builds without them, and puts them back if it fails.
    let runtime = registry.discovered.take_runtime();
    let snapshot = match Snapshot::build(config, generation, registry) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            registry.discovered.restore_runtime(runtime);
            return Err(e.into());
        }
    };
    shared.store(snapshot.clone());
    registry.apply(&snapshot);
    if let (Some(live), Some(plan)) = (live, plan) {
        live.commit(plan);
    }
    Ok(generation)
}

/// Builds and publishes a snapshot of the serving config again, with the
/// registry's current weight overrides, discovered members and admin API changes;
/// returns its generation. Called on the main thread, as reloads are, so the two
/// never interleave.
pub fn rebuild(shared: &Shared, registry: &Registry) -> Result<u64, crate::state::BuildError> {
    let old = shared.load_full();
    let generation = old.generation + 1;
    let snapshot = Arc::new(Snapshot::build(old.config.clone(), generation, registry)?);
    shared.store(snapshot.clone());
    registry.apply(&snapshot);
    Ok(generation)
}
