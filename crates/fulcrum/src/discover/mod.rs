//! Stage: discovery. Keeps pools current without a reload: each backend name is
//! re-resolved as its TTL runs out, each `discover.srv` likewise, and each
//! `discover.file` is read again when it changes. A changed answer is stored in the
//! registry and the serving config is rebuilt with it (`reload::rebuild`), so new
//! members join as on a reload (slow start, health checks) and members that went
//! away are drained.
//!
//! Runs on the main thread's runtime, beside the health task, never on a worker;
//! the decisions (clamps, the empty grace, SRV tiers) are `fulcrum_core::discover`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use fulcrum_core::config::DnsConfig;
use fulcrum_core::discover::dns::{Clamp, Event, Outcome, Tracker};
use fulcrum_core::discover::Found;
use hickory_resolver::TokioResolver;
use tokio::task::JoinHandle;

use crate::clock;
use crate::state::{query, Queried, Registry, Shared, Source};

/// How often the config is looked at for new or gone sources.
const TICK: Duration = Duration::from_millis(250);
/// How often a backends file is checked for a change.
const FILE_POLL: Duration = Duration::from_secs(1);

/// A running source task and what it was started with.
struct Running {
    dns: DnsConfig,
    task: JoinHandle<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Runs forever: starts and stops a task per source as configs change, and
/// rebuilds the snapshot when one reports a change.
pub async fn run(shared: Shared, registry: Arc<Registry>) {
    let mut running: HashMap<(String, Source), Running> = HashMap::new();
    let mut resolver: Option<(Vec<String>, TokioResolver)> = None;
    let mut generation = 0;
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let changed = tokio::select! {
            _ = tick.tick() => false,
            () = registry.discovered.changed.notified() => true,
        };
        if changed {
            match crate::reload::rebuild(&shared, &registry) {
                Ok(generation) => {
                    tracing::info!(generation, "pool members changed; config rebuilt")
                }
                Err(error) => {
                    tracing::error!(%error, "pool members changed, but the config could not be rebuilt; the previous members keep serving")
                }
            }
        }
        let snap = shared.load_full();
        if snap.generation == generation {
            continue;
        }
        generation = snap.generation;
        // No resolver until some pool has a name, an SRV record or a file: a
        // machine without /etc/resolv.conf serves literal addresses quietly.
        if snap.pools.iter().all(|p| p.sources.is_empty()) {
            running.clear();
            continue;
        }
        let servers = &snap.config.resolvers;
        if resolver.as_ref().is_none_or(|(s, _)| s != servers) {
            running.clear();
            resolver = match crate::dns::resolver(servers) {
                Ok(r) => Some((servers.clone(), r)),
                Err(error) => {
                    tracing::error!(%error, "no DNS resolver: backend names are not re-resolved");
                    None
                }
            };
        }
        let Some((_, r)) = &resolver else { continue };
        let mut wanted = HashMap::new();
        for pool in &snap.pools {
            for source in &pool.sources {
                wanted.insert((pool.name.clone(), source.clone()), pool.dns);
            }
        }
        running.retain(|k, run| wanted.get(k) == Some(&run.dns));
        for ((pool, source), dns) in wanted {
            if running.contains_key(&(pool.clone(), source.clone())) {
                continue;
            }
            let task = tokio::spawn(watch(
                pool.clone(),
                source.clone(),
                dns,
                r.clone(),
                registry.clone(),
            ));
            running.insert((pool, source), Running { dns, task });
        }
    }
}

/// Follows one source until stopped.
async fn watch(
    pool: String,
    source: Source,
    dns: DnsConfig,
    r: TokioResolver,
    registry: Arc<Registry>,
) {
    match &source {
        Source::File(path) => watch_file(&pool, &source, path, dns, &r, &registry).await,
        Source::Name { .. } | Source::Srv(_) => watch_dns(&pool, &source, dns, &r, &registry).await,
    }
}

async fn watch_dns(
    pool: &str,
    source: &Source,
    dns: DnsConfig,
    r: &TokioResolver,
    registry: &Registry,
) {
    let clamp = Clamp {
        min_ttl: dns.min_ttl.get(),
        max_ttl: dns.max_ttl.get(),
        empty_grace: dns.empty_grace.get(),
    };
    let d = &registry.discovered;
    let current: Vec<Found> = d
        .answer(pool, source)
        .unwrap_or_default()
        .iter()
        .map(|s| Found {
            addr: s.addr,
            weight: s.weight,
            backup: s.backup,
        })
        .collect();
    let stats = d.stats(pool, source.label());
    let mut tracker = Tracker::new(clamp, current, clock::now());
    // The build's answer carried no TTL here: asked again soon, then on schedule.
    let mut next_in = clamp.min_ttl;
    let mut last = Event::Same;
    loop {
        tokio::time::sleep(next_in).await;
        let Queried::Dns(outcome) = query(r, source, dns.family).await else {
            return;
        };
        let why = match &outcome {
            Outcome::Failed(why) => why.clone(),
            _ => String::new(),
        };
        let now = clock::now();
        let step = tracker.on(now, outcome);
        stats.record(step.event, clock::now_ns());
        let name = source.label();
        match step.event {
            Event::Failed if last != Event::Failed => tracing::warn!(
                pool, name, error = %why, members = tracker.current().len(),
                "DNS lookup failed; the last good answer is kept"
            ),
            Event::EmptyHeld if last != Event::EmptyHeld => tracing::warn!(
                pool, name, grace = ?clamp.empty_grace,
                "DNS answer is empty; the members are kept through the grace period"
            ),
            Event::Emptied => tracing::warn!(
                pool,
                name,
                "DNS answer stayed empty; the name has no members"
            ),
            Event::Same | Event::Changed if last == Event::Failed => {
                tracing::info!(pool, name, "DNS lookups answer again")
            }
            _ => {}
        }
        last = step.event;
        if let Some(found) = step.publish {
            tracing::info!(pool, name, members = found.len(), "DNS answer changed");
            d.set_answer(pool, source, source.specs(&found));
            d.changed.notify_one();
        }
        next_in = step.next_in;
    }
}

/// What tells a file changed: modification time, length and inode (an atomic
/// rename gives a new inode).
fn stamp(path: &str) -> Option<(std::time::SystemTime, u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len(), m.ino()))
}

async fn watch_file(
    pool: &str,
    source: &Source,
    path: &str,
    dns: DnsConfig,
    r: &TokioResolver,
    registry: &Registry,
) {
    let d = &registry.discovered;
    let stats = d.stats(pool, source.label());
    // Read once at the start: the file may have changed since the build read it.
    let mut seen = None;
    let mut first = true;
    let mut last_error: Option<String> = None;
    loop {
        if !first {
            tokio::time::sleep(FILE_POLL).await;
        }
        first = false;
        let now = stamp(path);
        if now.is_some() && now == seen {
            continue;
        }
        let Queried::File(result) = query(r, source, dns.family).await else {
            return;
        };
        match result {
            Ok(specs) => {
                seen = now;
                last_error = None;
                if d.answer(pool, source).as_ref() == Some(&specs) {
                    stats.record(Event::Same, clock::now_ns());
                    continue;
                }
                tracing::info!(
                    pool,
                    file = path,
                    members = specs.len(),
                    "backends file changed"
                );
                stats.record(Event::Changed, clock::now_ns());
                d.set_answer(pool, source, specs);
                d.changed.notify_one();
            }
            Err(error) => {
                if last_error.as_ref() != Some(&error) {
                    tracing::error!(pool, %error, "backends file unusable; the last good list is kept");
                }
                stats.record(Event::Failed, clock::now_ns());
                last_error = Some(error);
                // A missing file is looked for again; a malformed one once it changes.
                seen = now;
            }
        }
    }
}
