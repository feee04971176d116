//! The snapshot every request reads: compiled routes, pools with their balancers,
//! listener settings. Built in full off the data path (`super::build`), published
//! through `ArcSwap`; a request loads it once and uses it to the end. Plain data for
//! every stage: it names the TLS configurations it holds, and nothing above.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use fulcrum_core::balance::{Backend, BackendKey, BackendState, Balancer, HashKey, Sticky};
use fulcrum_core::config::{Config, HealthCheckConfig, PoolProtocol};
use fulcrum_core::health::{BackendHealth, HealthParams};
use fulcrum_core::jwt::JwtKey;
use fulcrum_core::retry::{RetryBudget, RetryBudgetParams};
use fulcrum_core::route::RouteTable;
use tokio::sync::Notify;

use std::net::IpAddr;

use fulcrum_core::config::{Cidr, ListenerConfig};
use fulcrum_core::proxy_protocol::Version;

use crate::stats::udp::Counters;
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
    pub udp_listeners: HashMap<String, UdpListener>,
    /// Pools, indexed by `Route::pool`.
    pub pools: Vec<Pool>,
    /// Each route's counters, by index in `[[routes]]`.
    pub routes: Vec<Arc<Traffic>>,
    /// Each route's `allow` / `deny`, by index in `[[routes]]`.
    pub route_access: Vec<Option<fulcrum_core::config::AccessList>>,
    /// The key each `jwt_required` route (or one with a `jwt:` rate limit key)
    /// verifies tokens with, by index.
    pub route_jwt: Vec<Option<Arc<fulcrum_core::jwt::JwtKey>>>,
    /// Rate limiters, htpasswd users and auth services, by route.
    pub edge: super::edge::Edge,
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
    pub gate: Gate,
    /// An https listener's certificates and handshake settings.
    pub tls: Option<Arc<crate::tls::Terminator>>,
    /// Every request answered with a redirect to HTTPS on this port.
    pub redirect_https: Option<u16>,
    /// The request ID header (lowercase), and whether a client's own is kept.
    pub request_id: Option<(Box<str>, bool)>,
    /// `trusted_proxies`: peers whose `X-Forwarded-For` names the client.
    pub trusted: Vec<fulcrum_core::config::Cidr>,
    /// What `%2F` and `%5C` in a path get.
    pub encoded_slashes: fulcrum_core::shape::path::EncodedSlashes,
    /// Each route's shaping on this listener, by route index.
    pub shapes: Vec<Option<Arc<super::RouteShape>>>,
    /// `error_pages`, by status.
    pub error_pages: super::Pages,
    /// Which answering policies some route of this listener needs.
    pub answers: Answers,
    /// With `http3` and `alt_svc`: the `ma` (seconds) of the `Alt-Svc` field that
    /// HTTP/1.1 and HTTP/2 responses carry.
    pub alt_svc: Option<u64>,
    /// Streams an HTTP/3 client may open at once on one connection.
    pub max_concurrent_streams: u32,
    /// HTTP/3 takes 0-RTT requests (`early_data`).
    pub early_data: bool,
}

/// Policies that only routes with their keys need: the slot skips them elsewhere.
#[derive(Clone, Copy, Debug, Default)]
pub struct Answers {
    /// A route has `cors`.
    pub cors: bool,
    /// A route has `redirect`.
    pub redirect: bool,
}

impl Listener {
    /// The page for an error `status` on a request of `route` (the route's own
    /// first, then the listener's).
    pub fn error_page(
        &self,
        route: Option<usize>,
        status: u16,
    ) -> Option<&crate::http::error::Page> {
        let shape = route.and_then(|r| self.shapes.get(r)?.as_deref());
        shape
            .and_then(|s| s.error_pages.get(&status))
            .or_else(|| self.error_pages.get(&status))
            .map(|p| &**p)
    }
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
    pub gate: Gate,
    /// For a `tls-passthrough` listener, its `sni` routes: the pool is picked per
    /// connection from the ClientHello, and `pool` is unused.
    pub sni: Option<fulcrum_core::route::SniTable>,
}

impl Pool {
    /// The key of pooled connections to `addr` for this pool.
    pub fn conn_key(&self, addr: SocketAddr) -> ConnKey {
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
    /// `Host` sent to the backends instead of the client's.
    pub host: Option<Box<str>>,
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
    /// Each member's weight from its source (the config, an SRV record, a file),
    /// before any admin API override; indexed like `backends`.
    pub base_weights: Vec<u32>,
    /// Which members are backups (SRV records of a higher priority), indexed
    /// like `backends`; empty when none is.
    pub backups: Vec<bool>,
    /// Where members come from beyond literal addresses: names, SRV, a file.
    pub sources: Vec<super::discovered::Source>,
    /// How the sources are re-resolved.
    pub dns: fulcrum_core::config::DnsConfig,
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
    pub(super) budget_params: Mutex<RetryBudgetParams>,
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
    pub(super) fn new(budget: RetryBudgetParams) -> Self {
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
    /// Backend key: its address as written, or `source@address` when a source
    /// found it.
    pub key: BackendKey,
    /// The name, SRV record, file or `admin-api` it came from; `None` for a
    /// literal address in the config.
    pub source: Option<Box<str>>,
    /// The state balancers read; the same `Arc` as the snapshot's `Backend::state`.
    pub state: Arc<BackendState>,
    pub(super) health: Mutex<BackendHealth>,
    /// Whether passive detection is on, so outcomes skip the lock when it is off.
    pub(super) outlier: AtomicBool,
    /// End of the running ejection on the process clock (ns), for the pool guard.
    pub(super) ejected_until_ns: AtomicU64,
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

/// A listener's checks on each new connection, compiled into the snapshot.
#[derive(Debug, Default)]
pub struct Gate {
    /// `max_connections`, across every worker.
    pub max_connections: Option<u32>,
    /// `proxy_protocol` and `proxy_protocol_from`.
    pub proxy: Option<Accept>,
    /// Time to receive a whole PROXY header (the listener's `header_timeout`).
    pub header_timeout: Duration,
    /// `allow` and `deny`: checked per connection on layer-4 listeners, per
    /// request (403) on HTTP ones.
    pub access: Option<fulcrum_core::config::AccessList>,
    /// `max_connections_per_client`.
    pub per_client: Option<u32>,
}

impl Gate {
    /// The checks `l` configures.
    pub fn build(l: &ListenerConfig) -> Self {
        Self {
            max_connections: l.max_connections,
            proxy: Accept::build(l),
            header_timeout: l.header_timeout.get(),
            access: fulcrum_core::config::AccessList::build(&l.allow, &l.deny),
            per_client: l.max_connections_per_client,
        }
    }
}

/// A listener's `proxy_protocol` with the networks allowed to send it.
#[derive(Clone, Debug)]
pub struct Accept {
    /// The one version the listener takes.
    pub version: Version,
    /// `proxy_protocol_from`.
    pub from: Vec<Cidr>,
}

impl Accept {
    /// The listener's setting; `None` when it takes no header. Networks that do not
    /// parse were refused by validation and are skipped here.
    pub fn build(l: &ListenerConfig) -> Option<Self> {
        let version = l.proxy_protocol?.version();
        let from = l
            .proxy_protocol_from
            .iter()
            .filter_map(|n| Cidr::parse(n).ok())
            .collect();
        Some(Self { version, from })
    }

    /// Whether a peer at `ip` may send the header. Anyone else could claim any
    /// client address, so their connections are closed unread.
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.from.iter().any(|n| n.contains(ip))
    }
}

/// A udp listener's settings.
#[derive(Debug)]
pub struct UdpListener {
    /// Name in the config.
    pub name: String,
    /// Index in [`Snapshot::pools`](crate::state::Snapshot::pools) of its pool.
    pub pool: usize,
    /// A session ends after this long without a datagram either way.
    pub idle: Duration,
    /// Sessions open at once, on all workers together.
    pub max_sessions: u32,
    /// Sessions and datagrams, kept across reloads by listener name.
    pub counters: Arc<Counters>,
}

pub use crate::io::pool::ConnKey;
