//! The snapshot every request reads: compiled routes, pools with their balancers,
//! listener limits. Built in full off the data path, published through `ArcSwap`;
//! a request loads it once and uses it to the end.

use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use fulcrum_core::balance::{self, Backend, BackendKey, BackendState, Balancer, HashKey, Sticky};
use fulcrum_core::config::{
    BalanceConfig, Config, HealthCheckConfig, ListenerProtocol, PoolConfig, PoolProtocol, Secret,
};
use fulcrum_core::health::{
    BackendHealth, HealthParams, OutlierParams, RiseFallParams, SlowStartParams, State,
};
use fulcrum_core::jwt::JwtKey;
use fulcrum_core::retry::{BackoffParams, RetryBudget, RetryBudgetParams};
use fulcrum_core::route::RouteTable;
use tokio::sync::Notify;

use crate::clock;
use crate::stats::{Timings, Traffic};

/// Everything the data path reads, for one config generation.
#[derive(Debug)]
pub struct Snapshot {
    /// Increases by one on each successful reload.
    pub generation: u64,
    /// The config this was built from.
    pub config: Config,
    /// HTTP listeners by name.
    pub listeners: HashMap<String, Listener>,
    /// TCP (layer 4) listeners by name.
    pub tcp_listeners: HashMap<String, TcpListener>,
    /// UDP listeners by name.
    pub udp_listeners: HashMap<String, crate::l4::udp::Listener>,
    /// Pools, indexed by `Route::pool`.
    pub pools: Vec<Pool>,
    /// Each route's counters, by index in `[[routes]]`.
    pub routes: Vec<Arc<Traffic>>,
}

/// Per-listener settings and routes.
#[derive(Debug)]
pub struct Listener {
    /// Name in the config.
    pub name: String,
    /// Routes that apply to this listener.
    pub routes: RouteTable,
    /// Largest request head.
    pub max_header_bytes: usize,
    /// Largest request body (`u64::MAX` for none).
    pub max_body_bytes: u64,
    /// Time to receive a request head.
    pub header_timeout: Duration,
    /// Idle time allowed between requests.
    pub keepalive_timeout: Duration,
    /// Time allowed per client read or write during a request.
    pub client_timeout: Duration,
    /// Connections and requests, kept across reloads by listener name.
    pub traffic: Arc<Traffic>,
    /// `max_connections` and the PROXY header, checked as connections arrive.
    pub gate: crate::listen::accept::Gate,
    /// An https listener's certificates and handshake settings.
    pub tls: Option<Arc<crate::tls::Terminator>>,
    /// Every request answered with a redirect to HTTPS on this port.
    pub redirect_https: Option<u16>,
}

/// A tcp listener's settings: where its connections go and how long they may idle.
#[derive(Debug)]
pub struct TcpListener {
    /// Name in the config.
    pub name: String,
    /// Index in [`Snapshot::pools`] of the pool its connections go to.
    pub pool: usize,
    /// Time with no byte either way before a connection is closed.
    pub idle_timeout: Duration,
    /// Connections, kept across reloads by listener name.
    pub traffic: Arc<Traffic>,
    /// `max_connections` and the PROXY header, checked as connections arrive.
    pub gate: crate::listen::accept::Gate,
    /// For a `tls-passthrough` listener, its `sni` routes: the pool is picked per
    /// connection from the ClientHello, and `pool` is unused.
    pub sni: Option<fulcrum_core::route::SniTable>,
}

impl Pool {
    /// The key of pooled connections to `addr` for this pool.
    pub fn conn_key(&self, addr: SocketAddr) -> crate::upstream::ConnKey {
        (addr, self.tls.as_ref().map_or(0, |t| t.id))
    }
}

/// One pool of backends.
#[derive(Debug)]
pub struct Pool {
    /// Name in the config.
    pub name: String,
    /// Backends, indexed by `BackendId`.
    pub backends: Vec<Backend>,
    /// The configured algorithm.
    pub balancer: Box<dyn Balancer>,
    /// HTTP/1.1 or h2c to backends.
    pub protocol: PoolProtocol,
    /// TLS to backends (re-encryption, mutual TLS).
    pub tls: Option<Arc<crate::tls::Upstream>>,
    /// Time to connect.
    pub connect_timeout: Duration,
    /// Time for the response head, and between response reads.
    pub upstream_timeout: Duration,
    /// Connection attempts per request.
    pub connect_attempts: u32,
    /// Idle connections kept per backend and worker.
    pub max_idle: usize,
    /// Time an idle connection is kept.
    pub idle_timeout: Duration,
    /// What consistent hashing hashes (ring_hash, maglev).
    pub hash_key: Option<HashKey>,
    /// Sticky sessions, when configured.
    pub sticky: Option<StickyPool>,
    /// Verifies the token of a `jwt:CLAIM` hash key; unverified when `None`.
    pub jwt_key: Option<Arc<JwtKey>>,
    /// Health of each backend, indexed like `backends`.
    pub members: Vec<Arc<Member>>,
    /// Counters and limits shared by every worker, kept across reloads.
    pub state: Arc<PoolState>,
    /// Health settings every member was configured with.
    pub health: HealthParams,
    /// The active check, when configured.
    pub check: Option<HealthCheckConfig>,
    /// Available share (percent) under which the pool panics.
    pub panic_threshold: u32,
    /// Retries after a failed attempt; `None`: connect failures only, `connect_attempts` tries.
    pub retries: Option<Retries>,
    /// Circuit limits.
    pub limits: Limits,
    /// The PROXY header written first on each new backend connection
    /// (`send_proxy_protocol`). Such a connection names one client, so it is never
    /// pooled for another.
    pub send_proxy: Option<fulcrum_core::proxy_protocol::Version>,
}

/// A pool's compiled `retries`.
pub use fulcrum_core::retry::RetryPolicy as Retries;

/// A pool's circuit limits; `u32::MAX` when unlimited.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Requests holding an upstream HTTP/1.1 connection at once.
    pub max_connections: u32,
    /// Requests waiting for one of those.
    pub max_pending: u32,
    /// Requests in flight to the pool.
    pub max_requests: u32,
}

/// A pool's live counters, shared by every worker and carried across reloads by name.
#[derive(Debug)]
pub struct PoolState {
    /// Requests in flight (`max_requests`).
    pub requests: AtomicU32,
    /// Requests holding an upstream connection (`max_connections`).
    pub connections: AtomicU32,
    /// Requests waiting for a connection slot (`max_pending`).
    pub pending: AtomicU32,
    /// Woken when a connection slot frees.
    pub freed: Notify,
    /// The warm share of the pool in permille (slow start), scaling `max_requests`.
    pub warm_permille: AtomicU32,
    /// Whether the pool routes to unhealthy backends (panic mode).
    pub panic: AtomicBool,
    /// Backends taking traffic, as last published by the health task.
    pub available: AtomicU32,
    /// Retries allowed as a share of requests.
    pub budget: Mutex<RetryBudget>,
    /// What `budget` was built with: a reload replaces it only when they change,
    /// so reloads neither refill a budget in a storm nor forget recent traffic.
    budget_params: Mutex<RetryBudgetParams>,
    /// Requests refused by a circuit limit.
    pub overloaded: AtomicU64,
    /// Retries made.
    pub retries: AtomicU64,
    /// Retries the budget refused.
    pub budget_refused: AtomicU64,
    /// Time to open new upstream connections.
    pub connect: Timings,
    /// Lives of upgraded connections (WebSocket) and layer-4 connections.
    pub streams: Timings,
    /// Times the pool entered panic mode.
    pub panics: AtomicU64,
    /// Requests to a hashing pool that lacked the hash key (picked at random).
    pub hash_missing: AtomicU64,
}

impl PoolState {
    fn new(budget: RetryBudgetParams) -> Self {
        Self {
            requests: AtomicU32::new(0),
            connections: AtomicU32::new(0),
            pending: AtomicU32::new(0),
            freed: Notify::new(),
            warm_permille: AtomicU32::new(1000),
            panic: AtomicBool::new(false),
            available: AtomicU32::new(0),
            budget: Mutex::new(RetryBudget::new(budget)),
            budget_params: Mutex::new(budget),
            overloaded: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            budget_refused: AtomicU64::new(0),
            connect: Timings::default(),
            streams: Timings::default(),
            panics: AtomicU64::new(0),
            hash_missing: AtomicU64::new(0),
        }
    }

    /// The retry budget, even if a panicking holder poisoned it.
    pub fn budget(&self) -> MutexGuard<'_, RetryBudget> {
        self.budget.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One backend's health, shared by the workers (outcomes), the health task (probes,
/// timers) and reloads; carried across reloads by pool name and backend key.
#[derive(Debug)]
pub struct Member {
    /// Pool name.
    pub pool: String,
    /// Backend key (its address as written).
    pub key: BackendKey,
    /// The state balancers read; the same `Arc` as the snapshot's `Backend::state`.
    pub state: Arc<BackendState>,
    health: Mutex<BackendHealth>,
    /// Whether passive detection is on, so outcomes skip the lock when it is off.
    outlier: AtomicBool,
    /// End of the running ejection on the process clock (ns), for the pool guard.
    ejected_until_ns: AtomicU64,
    /// The state last announced, as `State as u8`.
    pub shown: AtomicU8,
    /// The config no longer has it: drained, then dropped once released.
    pub removed: AtomicBool,
    /// A release was already announced for the current drain.
    pub released: AtomicBool,
    /// Request, error and health-check counters (metrics, admin API).
    pub stats: crate::stats::Stats,
}

impl Member {
    /// The health machine.
    pub fn health(&self) -> MutexGuard<'_, BackendHealth> {
        self.health.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether passive outlier detection is on for this backend.
    pub fn outlier_enabled(&self) -> bool {
        self.outlier.load(Ordering::Relaxed)
    }

    /// Whether an ejection is running at `now_ns`.
    pub fn is_ejected(&self, now_ns: u64) -> bool {
        self.ejected_until_ns.load(Ordering::Relaxed) > now_ns
    }

    /// Records that an ejection runs until `until_ns`.
    pub fn set_ejected_until(&self, until_ns: u64) {
        self.ejected_until_ns.store(until_ns, Ordering::Relaxed);
    }
}

/// A pool's sticky-session cookie: its codec and name.
#[derive(Debug)]
pub struct StickyPool {
    /// Signs and checks cookie values against this pool's backends.
    pub codec: Sticky,
    /// The cookie's name.
    pub cookie: String,
}

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
    pub udp: crate::l4::udp::Kept,
}

impl Registry {
    /// The member for `key` in `pool`, created with fresh health when new.
    fn member(
        &self,
        pool: &str,
        key: &BackendKey,
        params: &HealthParams,
        joining: bool,
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

    fn pool(&self, name: &str, budget: RetryBudgetParams) -> Arc<PoolState> {
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
        // A weight override goes with its backend.
        self.weights().retain(|(pool, key), _| {
            snap.pools
                .iter()
                .any(|p| p.name == *pool && p.members.iter().any(|m| m.key == *key))
        });
        self.changed.notify_one();
    }

    /// The counters of listener `name`.
    fn listener_traffic(&self, name: &str) -> Arc<Traffic> {
        let mut map = self.listeners.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(name.to_owned()).or_default().clone()
    }

    /// The counters of routes `0..n` (a route keeps its counters by position).
    fn route_traffic(&self, n: usize) -> Vec<Arc<Traffic>> {
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

/// A pool's health settings from its config.
pub fn health_params(p: &PoolConfig) -> HealthParams {
    HealthParams {
        checks: p.health.as_ref().map(|h| RiseFallParams {
            rise: h.rise,
            fall: h.fall,
        }),
        outlier: p.outlier.as_ref().map(|o| OutlierParams {
            consecutive_5xx: o.consecutive_5xx,
            consecutive_gateway_failures: o.consecutive_gateway_failures,
            failure_percentage: if o.failure_percentage == 0 {
                101
            } else {
                o.failure_percentage
            },
            window: o.window.get(),
            min_requests: o.min_requests,
            max_latency: o.max_latency.map(|d| d.get()),
            base_ejection_time: o.base_ejection_time.get(),
            max_ejection_time: o.max_ejection_time.get(),
            max_ejection_percent: o.max_ejection_percent,
            panic_threshold: p.panic_threshold,
        }),
        slow_start: SlowStartParams {
            window: p.slow_start.map_or(Duration::ZERO, |d| d.get()),
            ..SlowStartParams::default()
        },
        drain_timeout: p.drain_timeout.get(),
    }
}

fn budget_params(p: &PoolConfig) -> RetryBudgetParams {
    let defaults = RetryBudgetParams::default();
    p.retries.as_ref().map_or(defaults, |r| RetryBudgetParams {
        ratio_percent: r.budget.0,
        min_per_sec: r.min_retries_per_sec,
        ..defaults
    })
}

/// Why a validated config could not be turned into a snapshot.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A backend address did not resolve.
    #[error("pools.{pool}.backends: cannot resolve {address}: {reason}")]
    Resolve {
        /// Pool name.
        pool: String,
        /// The address as written.
        address: String,
        /// Why.
        reason: String,
    },
    /// A `jwt_public_key` file could not be read or holds no usable key.
    #[error("{at}.jwt_public_key: {file}: {reason}")]
    JwtKey {
        /// `pools.NAME` or `routes[I]`.
        at: String,
        /// The path as written.
        file: String,
        /// Why.
        reason: String,
    },
    /// A certificate, key or CA file could not be used.
    #[error("{at}: {reason}")]
    Tls {
        /// `listeners.NAME.tls` or `pools.NAME.tls`.
        at: String,
        /// The file and why.
        reason: String,
    },
}

impl Snapshot {
    /// Builds a snapshot from a validated config, reusing backend state from `registry`.
    pub fn build(config: Config, generation: u64, registry: &Registry) -> Result<Self, BuildError> {
        let pool_names: Vec<String> = config.pools.keys().cloned().collect();
        let overrides = registry.weights().clone();
        let mut keys = Keys::default();
        let mut pools = Vec::with_capacity(pool_names.len());
        for (name, p) in &config.pools {
            let health = health_params(p);
            let mut backends = Vec::with_capacity(p.backends.len());
            let mut members = Vec::with_capacity(p.backends.len());
            for b in &p.backends {
                let addr = resolve(&b.address).map_err(|reason| BuildError::Resolve {
                    pool: name.clone(),
                    address: b.address.clone(),
                    reason,
                })?;
                let key = BackendKey(b.address.clone());
                let member = registry.member(name, &key, &health, generation > 1);
                let weight = if overrides.is_empty() {
                    b.weight
                } else {
                    let set = overrides.get(&(name.clone(), key.clone()));
                    set.copied().unwrap_or(b.weight)
                };
                backends.push(Backend {
                    state: member.state.clone(),
                    key,
                    addr,
                    weight: NonZeroU32::new(weight).unwrap_or(NonZeroU32::MIN),
                });
                members.push(member);
            }
            let sticky = p.sticky.as_ref().map(|st| StickyPool {
                codec: Sticky::new(st.secret.as_bytes(), st.ttl.get().as_secs(), &backends),
                cookie: st.cookie.clone(),
            });
            let jwt_key = keys.load(&format!("pools.{name}"), &p.jwt_secret, &p.jwt_public_key)?;
            pools.push(Pool {
                name: name.clone(),
                jwt_key,
                sticky,
                balancer: balance::build(&balance::Settings::from_pool(p), &backends),
                backends,
                protocol: p.protocol,
                tls: match &p.tls {
                    None => None,
                    Some(t) => Some(Arc::new(
                        crate::tls::Upstream::build(t, p.protocol == PoolProtocol::H2).map_err(
                            |reason| BuildError::Tls {
                                at: format!("pools.{name}.tls"),
                                reason,
                            },
                        )?,
                    )),
                },
                connect_timeout: p.connect_timeout.get(),
                upstream_timeout: p.upstream_timeout.get(),
                connect_attempts: p.connect_attempts.get(),
                max_idle: p.max_idle_per_backend,
                idle_timeout: p.idle_timeout.get(),
                // Validated already; a hashing pool without a key hashes the client.
                hash_key: matches!(p.balance, BalanceConfig::RingHash | BalanceConfig::Maglev)
                    .then(|| {
                        p.hash_key
                            .as_deref()
                            .and_then(|k| HashKey::parse(k).ok())
                            .unwrap_or(HashKey::ClientIp)
                    }),
                state: {
                    let state = registry.pool(name, budget_params(p));
                    let up = members.iter().filter(|m| m.state.is_available()).count();
                    state
                        .available
                        .store(u32::try_from(up).unwrap_or(u32::MAX), Ordering::Relaxed);
                    state
                },
                members,
                health,
                check: p.health.clone(),
                panic_threshold: p.panic_threshold,
                retries: p.retries.as_ref().map(|r| Retries {
                    attempts: r.attempts,
                    on: r.on.clone(),
                    per_try_timeout: r.per_try_timeout.map(|d| d.get()),
                    backoff: BackoffParams {
                        base: r.backoff.get(),
                        max: r.max_backoff.get(),
                    },
                }),
                send_proxy: p.send_proxy_protocol.map(|v| v.version()),
                limits: Limits {
                    max_connections: p.max_connections.unwrap_or(u32::MAX),
                    // A queue as deep as the limit unless set: bounded, and no
                    // refusals for a brief burst.
                    max_pending: p.max_pending.or(p.max_connections).unwrap_or(0),
                    max_requests: p.max_requests.unwrap_or(u32::MAX),
                },
            });
        }
        let route_keys = config
            .routes
            .iter()
            .enumerate()
            .map(|(i, r)| keys.load(&format!("routes[{i}]"), &r.jwt_secret, &r.jwt_public_key))
            .collect::<Result<Vec<_>, _>>()?;
        let listeners = config
            .listeners
            .iter()
            .filter(|(_, l)| matches!(l.protocol, ListenerProtocol::Http | ListenerProtocol::Https))
            .map(|(name, l)| {
                let tls = match &l.tls {
                    None => None,
                    Some(t) => Some(Arc::new(crate::tls::Terminator::build(t).map_err(
                        |reason| BuildError::Tls {
                            at: format!("listeners.{name}.tls"),
                            reason,
                        },
                    )?)),
                };
                let listener = Listener {
                    tls,
                    redirect_https: l.redirect_https,
                    name: name.clone(),
                    routes: RouteTable::build_with_keys(
                        &config.routes,
                        name,
                        &pool_names,
                        &route_keys,
                    ),
                    max_header_bytes: l.max_header_bytes,
                    max_body_bytes: l.max_body_bytes.unwrap_or(u64::MAX),
                    header_timeout: l.header_timeout.get(),
                    keepalive_timeout: l.keepalive_timeout.get(),
                    client_timeout: l.client_timeout.get(),
                    traffic: registry.listener_traffic(name),
                    gate: crate::listen::accept::Gate::build(l),
                };
                Ok((name.clone(), listener))
            })
            .collect::<Result<_, BuildError>>()?;
        let tcp_listeners = config
            .listeners
            .iter()
            .filter(|(_, l)| {
                matches!(
                    l.protocol,
                    ListenerProtocol::Tcp | ListenerProtocol::TlsPassthrough
                )
            })
            .filter_map(|(name, l)| {
                let passthrough = l.protocol == ListenerProtocol::TlsPassthrough;
                // Validated: a tcp listener names a pool that exists.
                let pool = match passthrough {
                    true => usize::MAX,
                    false => pool_names.iter().position(|p| Some(p) == l.pool.as_ref())?,
                };
                let listener = TcpListener {
                    sni: passthrough.then(|| {
                        fulcrum_core::route::SniTable::build(&config.routes, name, &pool_names)
                    }),
                    name: name.clone(),
                    pool,
                    idle_timeout: l
                        .idle_timeout
                        .unwrap_or(fulcrum_core::config::DEFAULT_TCP_IDLE_TIMEOUT)
                        .get(),
                    traffic: registry.listener_traffic(name),
                    gate: crate::listen::accept::Gate::build(l),
                };
                Some((name.clone(), listener))
            })
            .collect();
        let udp_listeners = crate::l4::udp::listeners(&config, &pool_names, &registry.udp);
        Ok(Self {
            generation,
            routes: registry.route_traffic(config.routes.len()),
            config,
            listeners,
            tcp_listeners,
            udp_listeners,
            pools,
        })
    }
}

fn resolve(address: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = address.parse() {
        return Ok(addr);
    }
    address
        .to_socket_addrs()
        .map_err(|e| e.to_string())?
        .next()
        .ok_or_else(|| "no addresses".to_owned())
}

/// JWT keys of one build; equal keys share one `Arc`, so a request whose route and
/// pool name the same key verifies its token once.
#[derive(Default)]
struct Keys {
    secrets: HashMap<String, Arc<JwtKey>>,
    files: HashMap<String, Arc<JwtKey>>,
}

impl Keys {
    /// The key configured at `at` (a pool or route), reading a PEM file once.
    fn load(
        &mut self,
        at: &str,
        secret: &Option<Secret>,
        file: &Option<String>,
    ) -> Result<Option<Arc<JwtKey>>, BuildError> {
        if let Some(secret) = secret {
            let key = self
                .secrets
                .entry(secret.expose().to_owned())
                .or_insert_with(|| Arc::new(JwtKey::hs256(secret.expose().as_bytes())));
            return Ok(Some(key.clone()));
        }
        let Some(file) = file else { return Ok(None) };
        if let Some(key) = self.files.get(file) {
            return Ok(Some(key.clone()));
        }
        let err = |reason: String| BuildError::JwtKey {
            at: at.to_owned(),
            file: file.clone(),
            reason,
        };
        let pem = std::fs::read_to_string(file).map_err(|e| err(e.to_string()))?;
        let key = Arc::new(JwtKey::from_pem(&pem).map_err(|e| err(e.to_string()))?);
        self.files.insert(file.clone(), key.clone());
        Ok(Some(key))
    }
}
