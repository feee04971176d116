//! Stage: backend health. Runs the active probes on jittered timers, feeds their
//! results into each backend's pure state machine (`fulcrum_core::health`), and
//! publishes what the data path reads: each backend's availability and slow-start
//! ramp, each pool's panic flag and warm share. Drained and removed backends are
//! released here once idle or past their deadline.
//!
//! Runs on the main thread's runtime, never on a worker: a thousand probes must
//! not delay a request. Workers only record outcomes (passive detection) and wake
//! this task when they eject a backend.

pub mod probe;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use fulcrum_core::balance::BackendKey;
use fulcrum_core::config::HealthCheckConfig;
use fulcrum_core::health::{tiered_verdict, warm_share_permille, State, DEFAULT_JITTER_FRACTION};
use fulcrum_core::proxy_protocol::Version;
use tokio::task::JoinHandle;

use crate::clock;
use crate::state::Shared;
use crate::state::{byte_state, state_byte, Member, Pool, Registry};

/// How often ramps, ejection ends and drain deadlines are re-evaluated.
const TICK: Duration = Duration::from_millis(100);

/// A running probe loop and what it was started with.
struct Running {
    addr: SocketAddr,
    check: HealthCheckConfig,
    /// The pool's `send_proxy_protocol`: a change restarts the probe too.
    send_proxy: Option<Version>,
    /// The pool's TLS settings ([`crate::tls::Upstream::id`]), likewise.
    tls: u64,
    task: JoinHandle<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Runs forever: probes, ticks, and re-evaluation on every change.
pub async fn run(shared: Shared, registry: Arc<Registry>) {
    let mut probes: HashMap<(String, BackendKey), Running> = HashMap::new();
    let mut generation = 0;
    let mut seed = u64::from(std::process::id()) ^ clock::now_ns() ^ 0x9e37_79b9_7f4a_7c15;
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut out = Vec::new();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = registry.changed.notified() => {}
        }
        let snap = shared.load_full();
        if snap.generation != generation {
            generation = snap.generation;
            let mut wanted = HashMap::new();
            for pool in &snap.pools {
                let Some(check) = &pool.check else { continue };
                for (b, m) in pool.backends.iter().zip(&pool.members) {
                    let probe = (b.addr, check, (pool.send_proxy, pool.tls.clone()), m);
                    wanted.insert((pool.name.clone(), b.key.clone()), probe);
                }
            }
            probes.retain(|k, r| {
                wanted
                    .get(k)
                    .is_some_and(|(addr, check, (send_proxy, tls), _)| {
                        *addr == r.addr
                            && **check == r.check
                            && *send_proxy == r.send_proxy
                            && tls.as_ref().map_or(0, |t| t.id) == r.tls
                    })
            });
            for (k, (addr, check, (send_proxy, tls), m)) in wanted {
                if probes.contains_key(&k) {
                    continue;
                }
                seed = splitmix(seed);
                let tls_id = tls.as_ref().map_or(0, |t| t.id);
                let task = tokio::spawn(probe_loop(
                    m.clone(),
                    (addr, send_proxy, tls),
                    check.clone(),
                    registry.clone(),
                    seed,
                ));
                probes.insert(
                    k,
                    Running {
                        addr,
                        check: check.clone(),
                        send_proxy,
                        tls: tls_id,
                        task,
                    },
                );
            }
        }
        let now = clock::now();
        for pool in &snap.pools {
            evaluate(pool, now, &mut out);
        }
        for m in registry.members() {
            if m.removed.load(Ordering::Relaxed) {
                let (state, released) = {
                    let h = m.health();
                    let in_flight = u64::from(m.state.in_flight.load(Ordering::Relaxed));
                    (h.state(now), h.is_released(in_flight, now))
                };
                announce(&m, state);
                if released {
                    release(&m);
                    registry.forget(&m);
                }
            }
        }
    }
}

/// Publishes one pool's availability, ramps, panic flag and warm share at `now`.
fn evaluate(pool: &Pool, now: Duration, out: &mut Vec<bool>) {
    let mut states = Vec::with_capacity(pool.members.len());
    let mut ramps = Vec::with_capacity(pool.members.len());
    for m in &pool.members {
        let h = m.health();
        let state = h.state(now);
        let in_flight = u64::from(m.state.in_flight.load(Ordering::Relaxed));
        let released = state == State::Draining && h.is_released(in_flight, now);
        states.push(state);
        ramps.push(h.ramp_permille(now));
        drop(h);
        if released {
            release(m);
        }
    }
    let panic = tiered_verdict(&states, &pool.backups, pool.panic_threshold, out);
    let was = pool.state.panic.swap(panic, Ordering::Relaxed);
    if panic && !was {
        pool.state.panics.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(pool = %pool.name, "pool in panic mode: too few backends available, routing to every checked backend");
    } else if was && !panic {
        tracing::info!(pool = %pool.name, "pool out of panic mode");
    }
    let mut weights = Vec::new();
    for (i, m) in pool.members.iter().enumerate() {
        let takes = out.get(i).copied().unwrap_or(false);
        let ramp = ramps.get(i).copied().unwrap_or(1000);
        m.state.set_available(takes);
        m.state.set_ramp_permille(ramp);
        if let Some(state) = states.get(i) {
            announce(m, *state);
            if *state == State::Up {
                if let Some(b) = pool.backends.get(i) {
                    let scaled = u64::from(b.weight.get()) * u64::from(ramp) / 1000;
                    let effective = NonZeroU32::new(u32::try_from(scaled).unwrap_or(u32::MAX))
                        .unwrap_or(NonZeroU32::MIN);
                    weights.push((effective, b.weight));
                }
            }
        }
    }
    pool.state
        .warm_permille
        .store(warm_share_permille(weights), Ordering::Relaxed);
    let taking = out.iter().filter(|&&t| t).count();
    pool.state
        .available
        .store(u32::try_from(taking).unwrap_or(u32::MAX), Ordering::Relaxed);
}

/// Logs a visible state change once.
fn announce(m: &Member, state: State) {
    let prev = byte_state(m.shown.swap(state_byte(state), Ordering::Relaxed));
    if prev != state {
        tracing::info!(
            pool = %m.pool,
            backend = %m.key.0,
            from = %prev.as_str(),
            to = %state.as_str(),
            "backend state changed"
        );
    }
    if state != State::Draining {
        m.released.store(false, Ordering::Relaxed);
    }
}

/// Logs a drained backend's release once per drain.
fn release(m: &Member) {
    if !m.released.swap(true, Ordering::Relaxed) {
        tracing::info!(pool = %m.pool, backend = %m.key.0, "backend released");
    }
}

/// Probes one backend forever: the first probe at once (within the jitter, so a
/// pool's probes never start in lockstep), then every interval ± jitter.
async fn probe_loop(
    m: Arc<Member>,
    (addr, send_proxy, tls): (
        SocketAddr,
        Option<Version>,
        Option<Arc<crate::tls::Upstream>>,
    ),
    check: HealthCheckConfig,
    registry: Arc<Registry>,
    mut seed: u64,
) {
    let interval = check.interval.get();
    let fraction = check.jitter.map_or(DEFAULT_JITTER_FRACTION, |j| {
        j.get().as_secs_f64() / interval.as_secs_f64().max(f64::MIN_POSITIVE)
    });
    seed = splitmix(seed);
    let jitter = interval.mul_f64(fraction.clamp(0.0, 1.0));
    tokio::time::sleep(jitter.mul_f64(unit(seed))).await;
    loop {
        let result = probe::probe(addr, &check, send_proxy, tls.as_deref()).await;
        if let Err(error) = &result {
            tracing::debug!(pool = %m.pool, backend = %m.key.0, %error, "probe failed");
        }
        let now = clock::now();
        m.stats.check(result.is_ok());
        if m.health().probe(result.is_ok(), now).is_some() {
            registry.changed.notify_one();
        }
        seed = splitmix(seed);
        let next = fulcrum_core::health::next_probe(interval, fraction, seed, now);
        tokio::time::sleep(next.saturating_sub(clock::now())).await;
    }
}

/// A uniform draw in `[0, 1)` from 64 random bits.
fn unit(bits: u64) -> f64 {
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

/// splitmix64: the next random bits from a state.
fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = x;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
