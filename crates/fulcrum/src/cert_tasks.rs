//! Side tasks that keep the certificates of https listeners current: ACME issuance
//! and renewal per listener (following reloads), and the watcher that serves
//! changed certificate files. They read the snapshot and write only into each
//! listener's certificate resolver, so no stage waits on them.

use std::collections::HashMap;
use std::time::Duration;

use fulcrum_core::config::AcmeConfig;

use crate::state::Shared;
use crate::tls::acme;

/// Keeps one task per https listener with `acme`, following reloads.
pub async fn run(shared: Shared) {
    let mut tasks: HashMap<(String, AcmeConfig), tokio::task::JoinHandle<()>> = HashMap::new();
    let mut generation = 0;
    loop {
        let snap = shared.load_full();
        if snap.generation != generation {
            generation = snap.generation;
            let wanted: HashMap<(String, AcmeConfig), ()> = snap
                .config
                .listeners
                .iter()
                .filter_map(|(name, l)| Some(((name.clone(), l.tls.as_ref()?.acme.clone()?), ())))
                .collect();
            tasks.retain(|k, t| {
                let keep = wanted.contains_key(k);
                if !keep {
                    t.abort();
                }
                keep
            });
            for (k, ()) in wanted {
                let (name, cfg) = (k.0.clone(), k.1.clone());
                tasks.entry(k).or_insert_with(|| {
                    let shared = shared.clone();
                    tokio::spawn(acme::keep(name, cfg, move |l, loaded| {
                        install(&shared, l, loaded)
                    }))
                });
            }
        }
        drop(snap);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Puts `loaded` in the listener's certificate set (replacing the one from the same
/// file).
fn install(shared: &Shared, listener: &str, loaded: crate::tls::Loaded) {
    let snap = shared.load();
    if let Some(t) = snap.listeners.get(listener).and_then(|l| l.tls.as_ref()) {
        t.put(loaded);
    }
}

/// Checks the https listeners' certificate files for changes, forever, on a
/// thread of its own (loading files blocks).
pub fn watch(shared: Shared) {
    let spawned = std::thread::Builder::new()
        .name("fulcrum-tls-watch".into())
        .spawn(move || loop {
            let snap = shared.load_full();
            let mut every = Duration::from_secs(5);
            for (name, l) in &snap.listeners {
                if let Some(t) = &l.tls {
                    every = every.min(t.watch_interval);
                    t.refresh(name);
                }
            }
            drop(snap);
            std::thread::sleep(every);
        });
    if let Err(error) = spawned {
        tracing::error!(%error, "certificate watcher not started");
    }
}
