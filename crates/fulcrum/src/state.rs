//! The snapshot every request reads: compiled routes, pools with their balancers,
//! listener limits. Built in full off the data path, published through `ArcSwap`;
//! a request loads it once and uses it to the end.

use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fulcrum_core::balance::{self, Backend, BackendKey, BackendState, Balancer, HashKey, Sticky};
use fulcrum_core::config::{BalanceConfig, Config, ListenerProtocol, PoolProtocol, Secret};
use fulcrum_core::jwt::JwtKey;
use fulcrum_core::route::RouteTable;

/// Everything the data path reads, for one config generation.
#[derive(Debug)]
pub struct Snapshot {
    /// Increases by one on each successful reload.
    pub generation: u64,
    /// The config this was built from.
    pub config: Config,
    /// HTTP listeners by name.
    pub listeners: HashMap<String, Listener>,
    /// Pools, indexed by `Route::pool`.
    pub pools: Vec<Pool>,
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
}

/// A pool's sticky-session cookie: its codec and name.
#[derive(Debug)]
pub struct StickyPool {
    /// Signs and checks cookie values against this pool's backends.
    pub codec: Sticky,
    /// The cookie's name.
    pub cookie: String,
}

/// Backend state kept across reloads, by pool name and backend key, so in-flight
/// counts survive a rebuild.
#[derive(Debug, Default)]
pub struct Registry {
    states: Mutex<HashMap<(String, BackendKey), Arc<BackendState>>>,
}

impl Registry {
    fn state(&self, pool: &str, key: &BackendKey) -> Arc<BackendState> {
        let mut states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        states
            .entry((pool.to_owned(), key.clone()))
            .or_default()
            .clone()
    }
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
}

impl Snapshot {
    /// Builds a snapshot from a validated config, reusing backend state from `registry`.
    pub fn build(config: Config, generation: u64, registry: &Registry) -> Result<Self, BuildError> {
        let pool_names: Vec<String> = config.pools.keys().cloned().collect();
        let mut keys = Keys::default();
        let mut pools = Vec::with_capacity(pool_names.len());
        for (name, p) in &config.pools {
            let mut backends = Vec::with_capacity(p.backends.len());
            for b in &p.backends {
                let addr = resolve(&b.address).map_err(|reason| BuildError::Resolve {
                    pool: name.clone(),
                    address: b.address.clone(),
                    reason,
                })?;
                let key = BackendKey(b.address.clone());
                backends.push(Backend {
                    state: registry.state(name, &key),
                    key,
                    addr,
                    weight: NonZeroU32::new(b.weight).unwrap_or(NonZeroU32::MIN),
                });
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
            .filter(|(_, l)| l.protocol == ListenerProtocol::Http)
            .map(|(name, l)| {
                let listener = Listener {
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
                };
                (name.clone(), listener)
            })
            .collect();
        Ok(Self {
            generation,
            config,
            listeners,
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
