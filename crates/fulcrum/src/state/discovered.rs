//! Members that come and go without a reload: what DNS names, SRV records and
//! backends files last gave, and the admin API's additions and removals. Kept in
//! the [`Registry`](super::Registry); each snapshot build reads it, so a rebuild
//! after an answer changes is an ordinary build of the serving config.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use fulcrum_core::balance::BackendKey;
use fulcrum_core::config::{FamilyConfig, PoolConfig};
use fulcrum_core::discover::dns::{Event, Outcome};
use fulcrum_core::discover::{file, host_port, member_key, Found};
use hickory_resolver::TokioResolver;
use tokio::sync::Notify;

/// The `source` of members added through the admin API.
pub const ADMIN_API: &str = "admin-api";

/// Where some of a pool's members come from, beyond its literal addresses.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    /// A backend written as a name (`"api.internal:8080"`): one member per
    /// address, each with the backend's weight.
    Name {
        /// The address as written.
        address: String,
        /// Its weight.
        weight: u32,
    },
    /// `discover.srv`.
    Srv(String),
    /// `discover.file`.
    File(String),
}

impl Source {
    /// What members show as their source, and the metrics' `source` label.
    pub fn label(&self) -> &str {
        match self {
            Self::Name { address, .. } => address,
            Self::Srv(name) | Self::File(name) => name,
        }
    }

    /// The sources of `pool`, in config order.
    pub fn of(pool: &PoolConfig) -> Vec<Source> {
        let mut out: Vec<Source> = pool
            .backends
            .iter()
            .filter(|b| b.address.parse::<SocketAddr>().is_err())
            .map(|b| Source::Name {
                address: b.address.clone(),
                weight: b.weight,
            })
            .collect();
        if let Some(d) = &pool.discover {
            out.extend(d.srv.clone().map(Source::Srv));
            out.extend(d.file.clone().map(Source::File));
        }
        out
    }

    /// The members of records from this source.
    pub fn specs(&self, found: &[Found]) -> Vec<Spec> {
        found
            .iter()
            .map(|f| Spec {
                key: BackendKey(member_key(self.label(), f.addr)),
                addr: f.addr,
                weight: f.weight,
                backup: f.backup,
            })
            .collect()
    }
}

/// One member a source gives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spec {
    /// Its key: the address as written for a literal, else `source@address`.
    pub key: BackendKey,
    /// Where it answers.
    pub addr: SocketAddr,
    /// Its weight.
    pub weight: u32,
    /// Serves only while no other member is up (a higher SRV priority).
    pub backup: bool,
}

/// Counters of one source, for metrics.
#[derive(Debug, Default)]
pub struct SourceStats {
    /// Queries (or file reads) by [`Event`], in [`EVENTS`] order.
    pub results: [AtomicU64; 5],
    /// When the members were last confirmed, on the process clock (ns).
    pub answered_ns: AtomicU64,
    /// Members it gives now.
    pub members: AtomicU32,
}

/// Every [`Event`], in the order of [`SourceStats::results`].
pub const EVENTS: [Event; 5] = [
    Event::Same,
    Event::Changed,
    Event::EmptyHeld,
    Event::Emptied,
    Event::Failed,
];

impl SourceStats {
    /// Counts one result at `now_ns`.
    pub fn record(&self, event: Event, now_ns: u64) {
        if let Some(i) = EVENTS.iter().position(|e| *e == event) {
            self.results[i].fetch_add(1, Ordering::Relaxed);
        }
        if !matches!(event, Event::Failed | Event::EmptyHeld) {
            self.answered_ns.store(now_ns, Ordering::Relaxed);
        }
    }
}

/// What every source last gave and what the admin API changed.
#[derive(Debug, Default)]
pub struct Discovered {
    answers: Mutex<HashMap<(String, Source), Vec<Spec>>>,
    stats: Mutex<BTreeMap<(String, String), Arc<SourceStats>>>,
    added: Mutex<BTreeMap<String, Vec<Spec>>>,
    removed: Mutex<BTreeSet<(String, BackendKey)>>,
    /// Woken when an answer changed: the snapshot is rebuilt.
    pub changed: Notify,
}

/// The admin API's changes, taken out for a reload (which forgets them) and put
/// back if it fails.
#[derive(Debug, Default)]
pub struct RuntimeChanges {
    added: BTreeMap<String, Vec<Spec>>,
    removed: BTreeSet<(String, BackendKey)>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Discovered {
    /// What `source` of `pool` last gave, if it answered yet.
    pub fn answer(&self, pool: &str, source: &Source) -> Option<Vec<Spec>> {
        lock(&self.answers)
            .get(&(pool.to_owned(), source.clone()))
            .cloned()
    }

    /// Records what `source` of `pool` gives now.
    pub fn set_answer(&self, pool: &str, source: &Source, specs: Vec<Spec>) {
        let stats = self.stats(pool, source.label());
        stats.members.store(
            u32::try_from(specs.len()).unwrap_or(u32::MAX),
            Ordering::Relaxed,
        );
        lock(&self.answers).insert((pool.to_owned(), source.clone()), specs);
    }

    /// The counters of `source` (its label) in `pool`.
    pub fn stats(&self, pool: &str, source: &str) -> Arc<SourceStats> {
        lock(&self.stats)
            .entry((pool.to_owned(), source.to_owned()))
            .or_default()
            .clone()
    }

    /// Every source's counters, by pool and label.
    pub fn all_stats(&self) -> Vec<((String, String), Arc<SourceStats>)> {
        lock(&self.stats)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Forgets the sources no pool has any more.
    pub fn retain(&self, live: &BTreeSet<(String, Source)>) {
        lock(&self.answers).retain(|k, _| live.contains(k));
        let labels: BTreeSet<(String, String)> = live
            .iter()
            .map(|(p, s)| (p.clone(), s.label().to_owned()))
            .collect();
        lock(&self.stats).retain(|k, _| labels.contains(k));
    }

    /// Members the admin API added to `pool`.
    pub fn added(&self, pool: &str) -> Vec<Spec> {
        lock(&self.added).get(pool).cloned().unwrap_or_default()
    }

    /// Whether the admin API removed `key` from `pool`.
    pub fn is_removed(&self, pool: &str, key: &BackendKey) -> bool {
        lock(&self.removed).contains(&(pool.to_owned(), key.clone()))
    }

    /// Adds a member to `pool` until the next reload.
    pub fn add(&self, pool: &str, spec: Spec) {
        lock(&self.removed).remove(&(pool.to_owned(), spec.key.clone()));
        lock(&self.added)
            .entry(pool.to_owned())
            .or_default()
            .push(spec);
    }

    /// Removes the member `key` from `pool` until the next reload.
    pub fn remove(&self, pool: &str, key: &BackendKey) {
        let mut added = lock(&self.added);
        if let Some(list) = added.get_mut(pool) {
            let before = list.len();
            list.retain(|s| s.key != *key);
            if list.len() != before {
                return;
            }
        }
        drop(added);
        lock(&self.removed).insert((pool.to_owned(), key.clone()));
    }

    /// Takes the admin API's changes out (a reload forgets them).
    pub fn take_runtime(&self) -> RuntimeChanges {
        RuntimeChanges {
            added: std::mem::take(&mut lock(&self.added)),
            removed: std::mem::take(&mut lock(&self.removed)),
        }
    }

    /// Puts changes taken by [`Self::take_runtime`] back (the reload failed).
    pub fn restore_runtime(&self, changes: RuntimeChanges) {
        *lock(&self.added) = changes.added;
        *lock(&self.removed) = changes.removed;
    }
}

/// Asks `source` once: DNS for names and SRV records (answers as [`Outcome`]s),
/// the file for `discover.file` (its specs, or why it cannot be used).
pub async fn query(r: &TokioResolver, source: &Source, family: FamilyConfig) -> Queried {
    match source {
        Source::Name { address, weight } => {
            let Some((host, port)) = host_port(address) else {
                return Queried::Dns(Outcome::Failed(format!("invalid address {address:?}")));
            };
            Queried::Dns(crate::dns::lookup_name(r, host, port, *weight, family).await)
        }
        Source::Srv(name) => Queried::Dns(crate::dns::lookup_srv(r, name, family).await),
        Source::File(path) => Queried::File(read_file(r, path, family).await),
    }
}

/// What [`query`] got.
#[derive(Debug)]
pub enum Queried {
    /// A DNS outcome.
    Dns(Outcome),
    /// A file's members, or why it cannot be used.
    File(Result<Vec<Spec>, String>),
}

/// The members a backends file lists; names in it are resolved once per read.
async fn read_file(
    r: &TokioResolver,
    path: &str,
    family: FamilyConfig,
) -> Result<Vec<Spec>, String> {
    // Small, and read off the workers: a plain read does.
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let listed = file::parse(&text, path.ends_with(".toml")).map_err(|e| format!("{path}: {e}"))?;
    let mut specs = Vec::new();
    for l in listed {
        if let Ok(addr) = l.address.parse::<SocketAddr>() {
            specs.push(Spec {
                key: BackendKey(l.address),
                addr,
                weight: l.weight,
                backup: false,
            });
            continue;
        }
        let Some((host, port)) = host_port(&l.address) else {
            continue;
        };
        let source = Source::Name {
            address: l.address.clone(),
            weight: l.weight,
        };
        match crate::dns::lookup_name(r, host, port, l.weight, family).await {
            Outcome::Records { found, .. } => specs.extend(source.specs(&found)),
            Outcome::Empty { .. } => {
                tracing::warn!(file = %path, name = %l.address, "backends file: name has no addresses; skipped");
            }
            Outcome::Failed(why) => return Err(format!("{path}: {}: {why}", l.address)),
        }
    }
    Ok(specs)
}
