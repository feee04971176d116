//! The edge policies' state for one snapshot: each route's rate limiters, htpasswd
//! users and auth service, and the Redis fleet limiters share. Limiters and the
//! Redis connection are kept across a reload that leaves their settings unchanged,
//! so a reload neither resets the limits nor drops the connections.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use fulcrum_core::config::Config;

use super::build::BuildError;
use crate::edge::basic::BasicAuth;
use crate::edge::forward_auth::ForwardAuth;
use crate::edge::limits::RateLimiter;
use crate::edge::redis::Store;

/// Edge state of one snapshot, by route index.
#[derive(Debug, Default)]
pub struct Edge {
    /// Each route's limiters, in its `rate_limit` order.
    pub route_limits: Vec<Vec<Arc<RateLimiter>>>,
    /// Every limiter, by name order.
    pub limiters: Vec<Arc<RateLimiter>>,
    /// Each route's `basic_auth` users.
    pub basic: Vec<Option<Arc<BasicAuth>>>,
    /// Each route's `forward_auth` service.
    pub forward_auth: Vec<Option<Arc<ForwardAuth>>>,
    /// The Redis of fleet limiters.
    pub redis: Option<Arc<Store>>,
}

/// What survives a reload: the Redis store and the limiters, by name.
#[derive(Debug, Default)]
pub struct Kept {
    redis: Mutex<Option<Arc<Store>>>,
    limiters: Mutex<HashMap<String, Arc<RateLimiter>>>,
}

impl Edge {
    /// Builds the edge state of `config`, reusing what `kept` holds when unchanged.
    pub fn build(config: &Config, kept: &Kept) -> Result<Self, BuildError> {
        let redis = match &config.redis {
            None => None,
            Some(rc) => {
                let mut held = kept.redis.lock().unwrap_or_else(|e| e.into_inner());
                match &*held {
                    Some(s) if s.config == *rc => Some(s.clone()),
                    _ => {
                        let store = Store::start(rc).map_err(|reason| BuildError::Edge {
                            at: "redis.url".into(),
                            reason,
                        })?;
                        *held = Some(store.clone());
                        Some(store)
                    }
                }
            }
        };
        let mut old = kept.limiters.lock().unwrap_or_else(|e| e.into_inner());
        let mut by_name = HashMap::new();
        for (name, lc) in &config.rate_limits {
            let limiter =
                match old.get(name) {
                    Some(l) if l.same(lc, redis.as_ref()) => l.clone(),
                    _ => Arc::new(RateLimiter::new(name, lc, redis.as_ref()).map_err(
                        |reason| BuildError::Edge {
                            at: format!("rate_limits.{name}"),
                            reason,
                        },
                    )?),
                };
            by_name.insert(name.clone(), limiter);
        }
        *old = by_name.clone();
        drop(old);
        let mut limiters: Vec<_> = by_name.values().cloned().collect();
        limiters.sort_by(|a, b| a.name.cmp(&b.name));
        let mut edge = Self {
            limiters,
            redis,
            ..Self::default()
        };
        for (i, r) in config.routes.iter().enumerate() {
            edge.route_limits.push(
                r.rate_limit
                    .iter()
                    .filter_map(|n| by_name.get(n).cloned())
                    .collect(),
            );
            let basic = match &r.basic_auth {
                None => None,
                Some(b) => Some(Arc::new(BasicAuth::load(&b.users, &b.realm).map_err(
                    |reason| BuildError::Edge {
                        at: format!("routes[{i}].basic_auth.users"),
                        reason,
                    },
                )?)),
            };
            edge.basic.push(basic);
            let auth = match &r.forward_auth {
                None => None,
                Some(f) => Some(Arc::new(ForwardAuth::new(f).map_err(|reason| {
                    BuildError::Edge {
                        at: format!("routes[{i}].forward_auth.url"),
                        reason,
                    }
                })?)),
            };
            edge.forward_auth.push(auth);
        }
        Ok(edge)
    }
}
