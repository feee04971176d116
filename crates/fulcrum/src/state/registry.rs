//! Backend and pool state kept across reloads, by pool name and backend key.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use fulcrum_core::balance::{BackendKey, BackendState};
use fulcrum_core::health::{BackendHealth, HealthParams, State};
use fulcrum_core::retry::{RetryBudget, RetryBudgetParams};
use tokio::sync::Notify;

use super::build::budget_params;
use super::snapshot::{Member, PoolState, Snapshot};
use crate::clock;
use crate::stats::udp::Kept;
use crate::stats::Traffic;

/// Backend and pool state kept across reloads, by pool name and backend key, so
/// in-flight counts, health and ejections survive a rebuild.
#[derive(Debug, Default)]
pub struct Registry {
    members: Mutex<HashMap<(String, BackendKey), Arc<Member>>>,
    pools: Mutex<HashMap<String, Arc<PoolState>>>,
    listeners: Mutex<HashMap<String, Arc<Traffic>>>,
    routes: Mutex<Vec<Arc<Traffic>>>,
    /// Weights set through the admin API, by pool and backend key; applied by
    /// [`Snapshot::build`] over the configured ones.
    weights: Mutex<HashMap<(String, BackendKey), u32>>,
    /// Woken when health may have changed (an ejection, a reload): the health
    /// task re-evaluates at once instead of at its next tick.
    pub changed: Notify,
    /// UDP listeners' session and datagram counters, by listener name.
    pub udp: Kept,
    /// Rate limiters and the Redis connection.
    pub edge: super::edge::Kept,
    /// What discovery found and what the admin API added or removed.
    pub discovered: super::discovered::Discovered,
}

impl Registry {
    /// The member for `key` in `pool`, created with fresh health when new.
    pub(super) fn member(
        &self,
        pool: &str,
        key: &BackendKey,
        params: &HealthParams,
        joining: bool,
        source: Option<Box<str>>,
    ) -> Arc<Member> {
        let mut members = self.members.lock().unwrap_or_else(|e| e.into_inner());
        members
            .entry((pool.to_owned(), key.clone()))
            .or_insert_with(|| {
                let now = clock::now();
                let health = BackendHealth::new(params, joining, now);
                let state = Arc::new(BackendState::default());
                let shown = health.state(now);
                state.set_available(shown == State::Up);
                state.set_ramp_permille(health.ramp_permille(now));
                Arc::new(Member {
                    pool: pool.to_owned(),
                    key: key.clone(),
                    source,
                    state,
                    outlier: AtomicBool::new(health.outlier_enabled()),
                    health: Mutex::new(health),
                    ejected_until_ns: AtomicU64::new(0),
                    shown: AtomicU8::new(state_byte(shown)),
                    removed: AtomicBool::new(false),
                    released: AtomicBool::new(false),
                    stats: crate::stats::Stats::default(),
                })
            })
            .clone()
    }

    pub(super) fn pool(&self, name: &str, budget: RetryBudgetParams) -> Arc<PoolState> {
        let mut pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        pools
            .entry(name.to_owned())
            .or_insert_with(|| Arc::new(PoolState::new(budget)))
            .clone()
    }

    /// Brings every member in line with a snapshot just published: new settings,
    /// re-added backends undrained, removed ones drained. Called after the swap,
    /// so a config that fails to build changes nothing here.
    pub fn apply(&self, snap: &Snapshot) {
        let now = clock::now();
        let mut live = std::collections::HashSet::new();
        for pool in &snap.pools {
            for m in &pool.members {
                live.insert(Arc::as_ptr(m));
                let mut h = m.health();
                h.reconfigure(&pool.health, now);
                m.outlier.store(h.outlier_enabled(), Ordering::Relaxed);
                if m.removed.swap(false, Ordering::Relaxed) {
                    h.undrain(now);
                }
            }
            let budget = pool
                .retries
                .as_ref()
                .map_or_else(RetryBudgetParams::default, |_| {
                    budget_params(&snap.config.pools[&pool.name])
                });
            let mut params = pool
                .state
                .budget_params
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if *params != budget {
                *params = budget;
                *pool.state.budget() = RetryBudget::new(budget);
            }
        }
        let members = self.members.lock().unwrap_or_else(|e| e.into_inner());
        for m in members.values() {
            if !live.contains(&Arc::as_ptr(m)) && !m.removed.swap(true, Ordering::Relaxed) {
                m.health().drain(now);
                m.released.store(false, Ordering::Relaxed);
            }
        }
        drop(members);
        let sources = snap
            .pools
            .iter()
            .flat_map(|p| p.sources.iter().map(|s| (p.name.clone(), s.clone())))
            .collect();
        self.discovered.retain(&sources);
        // A weight override goes with its backend.
        self.weights().retain(|(pool, key), _| {
            snap.pools
                .iter()
                .any(|p| p.name == *pool && p.members.iter().any(|m| m.key == *key))
        });
        self.changed.notify_one();
    }

    /// The counters of listener `name`.
    pub(super) fn listener_traffic(&self, name: &str) -> Arc<Traffic> {
        let mut map = self.listeners.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(name.to_owned()).or_default().clone()
    }

    /// The counters of routes `0..n` (a route keeps its counters by position).
    pub(super) fn route_traffic(&self, n: usize) -> Vec<Arc<Traffic>> {
        let mut routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        while routes.len() < n {
            routes.push(Arc::default());
        }
        routes.iter().take(n).cloned().collect()
    }

    /// Every member, in no particular order.
    pub fn members(&self) -> Vec<Arc<Member>> {
        let members = self.members.lock().unwrap_or_else(|e| e.into_inner());
        members.values().cloned().collect()
    }

    /// Weight overrides set through the admin API.
    pub fn weights(&self) -> MutexGuard<'_, HashMap<(String, BackendKey), u32>> {
        self.weights.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forgets a removed member once it is released.
    pub fn forget(&self, m: &Member) {
        let mut members = self.members.lock().unwrap_or_else(|e| e.into_inner());
        members.remove(&(m.pool.clone(), m.key.clone()));
    }
}

/// A [`State`] as the byte kept in [`Member::shown`].
pub fn state_byte(s: State) -> u8 {
    match s {
        State::Unknown => 0,
        State::Up => 1,
        State::Down => 2,
        State::Ejected => 3,
        State::Draining => 4,
    }
}

/// The [`State`] of a [`Member::shown`] byte.
pub fn byte_state(b: u8) -> State {
    match b {
        1 => State::Up,
        2 => State::Down,
        3 => State::Ejected,
        4 => State::Draining,
        _ => State::Unknown,
    }
}
