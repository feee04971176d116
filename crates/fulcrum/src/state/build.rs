//! Compiling a validated config into a [`Snapshot`]: resolving backends, building
//! balancers, route tables, TLS configurations and the udp listeners, reusing the
//! registry's backend state. Runs off the data path; an error leaves the old
//! snapshot serving.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use fulcrum_core::balance::{self, Backend, BackendKey, HashKey, Sticky};
use fulcrum_core::config::{
    BalanceConfig, Config, EncodedSlashesConfig, ListenerProtocol, PoolConfig, PoolProtocol, Secret,
};
use fulcrum_core::health::{HealthParams, OutlierParams, RiseFallParams, SlowStartParams};
use fulcrum_core::jwt::JwtKey;
use fulcrum_core::retry::{BackoffParams, RetryBudgetParams};
use fulcrum_core::route::RouteTable;
use fulcrum_core::shape::path::EncodedSlashes;

use super::discovered::{query, Queried, Source, Spec, ADMIN_API};
use super::registry::Registry;
use super::snapshot::*;
use crate::stats::udp::Kept;
use fulcrum_core::config::{DEFAULT_UDP_MAX_SESSIONS, DEFAULT_UDP_SESSION_IDLE_TIMEOUT};

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

pub(super) fn budget_params(p: &PoolConfig) -> RetryBudgetParams {
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
    /// A `discover` source could not be used at start or reload.
    #[error("{at}: {reason}")]
    Discover {
        /// `pools.NAME.discover.srv` or `.file`.
        at: String,
        /// The source and why.
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
    /// An edge policy's file or service could not be set up (htpasswd, Redis).
    #[error("{at}: {reason}")]
    Edge {
        /// The key, such as `routes[0].basic_auth.users`.
        at: String,
        /// The file and why.
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
        resolve_missing(&config, registry)?;
        for (name, p) in &config.pools {
            let health = health_params(p);
            let specs = pool_specs(name, p, registry);
            let mut backends = Vec::with_capacity(specs.len());
            let mut members = Vec::with_capacity(specs.len());
            let mut backups = Vec::new();
            let mut base_weights = Vec::with_capacity(specs.len());
            for (spec, source) in specs {
                base_weights.push(spec.weight);
                let key = spec.key;
                let member = registry.member(name, &key, &health, generation > 1, source);
                let weight = if overrides.is_empty() {
                    spec.weight
                } else {
                    let set = overrides.get(&(name.clone(), key.clone()));
                    set.copied().unwrap_or(spec.weight)
                };
                backends.push(Backend {
                    state: member.state.clone(),
                    key,
                    addr: spec.addr,
                    weight: NonZeroU32::new(weight).unwrap_or(NonZeroU32::MIN),
                });
                members.push(member);
                backups.push(spec.backup);
            }
            if !backups.contains(&true) {
                backups.clear();
            } else if members
                .iter()
                .zip(&backups)
                .any(|(m, b)| !b && m.state.is_available())
            {
                // Until the health task's first look: backups wait while another
                // member may serve.
                for (m, _) in members.iter().zip(&backups).filter(|(_, b)| **b) {
                    m.state.set_available(false);
                }
            }
            let sticky = p.sticky.as_ref().map(|st| StickyPool {
                codec: Sticky::new(st.secret.as_bytes(), st.ttl.get().as_secs(), &backends),
                cookie: st.cookie.clone(),
            });
            let jwt_key = keys.load(&format!("pools.{name}"), &p.jwt_secret, &p.jwt_public_key)?;
            pools.push(Pool {
                name: name.clone(),
                host: p.host.as_deref().map(Into::into),
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
                base_weights,
                backups,
                sources: Source::of(p),
                dns: p.dns,
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
        // What `jwt_required` and `jwt:` rate limit keys verify with: the loaded key, or
        // the route's secret.
        let route_jwt = config
            .routes
            .iter()
            .zip(&route_keys)
            .map(|(r, key)| {
                let by_claim = r.rate_limit.iter().any(|n| {
                    config
                        .rate_limits
                        .get(n)
                        .is_some_and(|l| l.key.starts_with("jwt:"))
                });
                (r.jwt_required || by_claim).then(|| {
                    key.clone().or_else(|| {
                        let secret = r.jwt_secret.as_ref()?;
                        Some(Arc::new(fulcrum_core::jwt::JwtKey::hs256(
                            secret.expose().as_bytes(),
                        )))
                    })
                })?
            })
            .collect();
        let listeners = config
            .listeners
            .iter()
            .filter(|(_, l)| matches!(l.protocol, ListenerProtocol::Http | ListenerProtocol::Https))
            .map(|(name, l)| {
                let tls = match &l.tls {
                    None => None,
                    Some(t) => Some(Arc::new(
                        crate::tls::Terminator::build(t, l.early_data).map_err(|reason| {
                            BuildError::Tls {
                                at: format!("listeners.{name}.tls"),
                                reason,
                            }
                        })?,
                    )),
                };
                let listener = Listener {
                    tls,
                    answers: Answers {
                        cors: config.routes.iter().any(|r| r.cors.is_some()),
                        redirect: config.routes.iter().any(|r| r.redirect.is_some()),
                    },
                    shapes: super::shape::build(&config, name, l)?,
                    error_pages: super::shape::pages(&format!("listeners.{name}"), &l.error_pages)?,
                    encoded_slashes: match l.encoded_slashes {
                        EncodedSlashesConfig::Reject => EncodedSlashes::Reject,
                        EncodedSlashesConfig::Keep => EncodedSlashes::Keep,
                    },
                    redirect_https: l.redirect_https,
                    alt_svc: (l.http3 && l.alt_svc).then(|| l.alt_svc_max_age.get().as_secs()),
                    max_concurrent_streams: l.max_concurrent_streams,
                    early_data: l.http3 && l.early_data,
                    trusted: l
                        .trusted_proxies
                        .iter()
                        .filter_map(|n| fulcrum_core::config::Cidr::parse(n).ok())
                        .collect(),
                    request_id: l
                        .request_id
                        .as_ref()
                        .map(|r| (r.header.to_ascii_lowercase().into(), r.trust_incoming)),
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
                    gate: Gate::build(l),
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
                    gate: Gate::build(l),
                };
                Some((name.clone(), listener))
            })
            .collect();
        let udp_listeners = udp_listeners(&config, &pool_names, &registry.udp);
        let edge = super::edge::Edge::build(&config, &registry.edge)?;
        Ok(Self {
            generation,
            edge,
            routes: registry.route_traffic(config.routes.len()),
            route_jwt,
            route_access: config
                .routes
                .iter()
                .map(|r| fulcrum_core::config::AccessList::build(&r.allow, &r.deny))
                .collect(),
            config,
            listeners,
            tcp_listeners,
            udp_listeners,
            pools,
        })
    }
}

/// A pool's members: its literal addresses, what its sources last gave, and the
/// admin API's additions, less its removals; each with its source's label. The
/// first of two members with one key wins.
fn pool_specs(name: &str, p: &PoolConfig, registry: &Registry) -> Vec<(Spec, Option<Box<str>>)> {
    let d = &registry.discovered;
    let mut out: Vec<(Spec, Option<Box<str>>)> = p
        .backends
        .iter()
        .filter_map(|b| {
            let addr = b.address.parse::<SocketAddr>().ok()?;
            let key = BackendKey(b.address.clone());
            Some((
                Spec {
                    key,
                    addr,
                    weight: b.weight,
                    backup: false,
                },
                None,
            ))
        })
        .collect();
    for source in Source::of(p) {
        let label: Box<str> = source.label().into();
        for spec in d.answer(name, &source).unwrap_or_default() {
            out.push((spec, Some(label.clone())));
        }
    }
    out.extend(
        d.added(name)
            .into_iter()
            .map(|s| (s, Some(ADMIN_API.into()))),
    );
    let mut seen = std::collections::HashSet::new();
    out.retain(|(s, _)| !d.is_removed(name, &s.key) && seen.insert(s.key.clone()));
    out
}

/// Asks every source that has not answered yet (a name or file new in this
/// config), on a thread of its own. A name that does not resolve, an SRV lookup
/// that fails and an unusable file refuse the config, as at start.
fn resolve_missing(config: &Config, registry: &Registry) -> Result<(), BuildError> {
    let missing: Vec<(String, Source, fulcrum_core::config::FamilyConfig)> = config
        .pools
        .iter()
        .flat_map(|(name, p)| {
            Source::of(p)
                .into_iter()
                .map(move |s| (name.clone(), s, p.dns.family))
        })
        .filter(|(name, s, _)| registry.discovered.answer(name, s).is_none())
        .collect();
    let Some((first_pool, first, _)) = missing.first() else {
        return Ok(());
    };
    let asked: Vec<_> = missing.iter().map(|(_, s, f)| (s.clone(), *f)).collect();
    // All at once: a start with many names waits for the slowest, not their sum.
    let results = crate::dns::blocking(&config.resolvers, move |r| async move {
        let tasks: Vec<_> = asked
            .into_iter()
            .map(|(source, family)| {
                let r = r.clone();
                tokio::spawn(async move { query(&r, &source, family).await })
            })
            .collect();
        let mut out = Vec::with_capacity(tasks.len());
        for t in tasks {
            out.push(t.await.unwrap_or_else(|e| {
                Queried::Dns(fulcrum_core::discover::dns::Outcome::Failed(e.to_string()))
            }));
        }
        out
    })
    .map_err(|reason| BuildError::Resolve {
        pool: first_pool.clone(),
        address: first.label().to_owned(),
        reason,
    })?;
    let now = crate::clock::now_ns();
    for ((pool, source, _), result) in missing.iter().zip(results) {
        let at = |key: &str| format!("pools.{pool}.discover.{key}");
        let specs = match (source, result) {
            (_, Queried::Dns(fulcrum_core::discover::dns::Outcome::Records { found, .. })) => {
                source.specs(&found)
            }
            (
                Source::Srv(name),
                Queried::Dns(fulcrum_core::discover::dns::Outcome::Empty { .. }),
            ) => {
                tracing::warn!(pool = %pool, srv = %name, "SRV name has no records yet; the pool starts without its members");
                Vec::new()
            }
            (
                Source::Srv(name),
                Queried::Dns(fulcrum_core::discover::dns::Outcome::Failed(why)),
            ) => {
                return Err(BuildError::Discover {
                    at: at("srv"),
                    reason: format!("cannot resolve {name}: {why}"),
                })
            }
            (_, Queried::Dns(fulcrum_core::discover::dns::Outcome::Empty { .. })) => {
                return Err(BuildError::Resolve {
                    pool: pool.clone(),
                    address: source.label().to_owned(),
                    reason: "no addresses".to_owned(),
                })
            }
            (_, Queried::Dns(fulcrum_core::discover::dns::Outcome::Failed(reason))) => {
                return Err(BuildError::Resolve {
                    pool: pool.clone(),
                    address: source.label().to_owned(),
                    reason,
                })
            }
            (_, Queried::File(Ok(specs))) => specs,
            (_, Queried::File(Err(reason))) => {
                return Err(BuildError::Discover {
                    at: at("file"),
                    reason,
                })
            }
        };
        registry.discovered.set_answer(pool, source, specs);
        registry
            .discovered
            .stats(pool, source.label())
            .record(fulcrum_core::discover::dns::Event::Changed, now);
    }
    Ok(())
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

/// The udp listeners of `config`, by name; `pools` are the snapshot's pool names.
pub fn udp_listeners(
    config: &Config,
    pools: &[String],
    kept: &Kept,
) -> HashMap<String, UdpListener> {
    config
        .listeners
        .iter()
        .filter(|(_, l)| l.protocol == ListenerProtocol::Udp)
        .filter_map(|(name, l)| {
            // Validated: a udp listener names a pool that exists.
            let pool = pools.iter().position(|p| Some(p) == l.pool.as_ref())?;
            let listener = UdpListener {
                name: name.clone(),
                pool,
                idle: l
                    .session_idle_timeout
                    .unwrap_or(DEFAULT_UDP_SESSION_IDLE_TIMEOUT)
                    .get(),
                max_sessions: l.max_sessions.unwrap_or(DEFAULT_UDP_MAX_SESSIONS).max(1),
                counters: kept.get(name),
            };
            Some((name.clone(), listener))
        })
        .collect()
}
