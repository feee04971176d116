//! Rate limiters as requests meet them: a local one decides in the process's shared
//! table; a fleet one spends leased tokens and asks Redis only when its lease of a
//! key runs out (or is refused), so Redis sees a small fraction of the requests.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use fulcrum_core::config::{OnRedisError, RateLimitConfig, RateScope};
use fulcrum_core::limit::{Decision, Gcra, Grant, LeaseTable, Limiter, Need, Rate, RateKey};

use super::redis::Store;
use crate::clock;

/// Time a fleet lease's tokens stay good: unused ones go back to Redis after it.
const LEASE_TTL_NS: u64 = 1_000_000_000;
/// After Redis failed, requests skip it (and fail as configured) for this long, so
/// a dead Redis costs one timeout a second, not one per request.
const REDIS_PAUSE_NS: u64 = 1_000_000_000;

/// One `[rate_limits.NAME]`, shared by every worker.
#[derive(Debug)]
pub struct RateLimiter {
    /// Its name.
    pub name: String,
    /// What requests are counted by.
    pub key: RateKey,
    /// Its settings, to keep its state across a reload that leaves it unchanged.
    pub config: RateLimitConfig,
    /// The rate as configured.
    pub rate: Rate,
    /// GCRA rate and burst.
    pub gcra: Gcra,
    kind: Kind,
    /// Requests it let through.
    pub allowed: AtomicU64,
    /// Requests it refused (429).
    pub limited: AtomicU64,
    /// Requests let through or refused without Redis's answer (`on_redis_error`).
    pub redis_failed: AtomicU64,
}

#[derive(Debug)]
enum Kind {
    Local(Limiter),
    Fleet(Fleet),
}

#[derive(Debug)]
struct Fleet {
    store: Arc<Store>,
    leases: LeaseTable,
    /// Tokens asked per lease.
    want: u32,
    on_error: OnRedisError,
    /// Redis is skipped until then (`clock::now_ns`).
    paused_until: AtomicU64,
    /// Last time a failure was logged (`clock::now_ns`), to log once a second.
    logged: AtomicU64,
}

/// A limiter's verdict on one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Let through (or not counted: the request lacks the key).
    Allow,
    /// Over the limit: retry after this many seconds (at least 1).
    Limited {
        /// Whole seconds, rounded up.
        retry_after: u64,
    },
}

impl RateLimiter {
    /// The limiter `name` of `config`; a fleet one needs `store`.
    pub fn new(
        name: &str,
        config: &RateLimitConfig,
        store: Option<&Arc<Store>>,
    ) -> Result<Self, String> {
        let key = RateKey::parse(&config.key)?;
        let gcra = Gcra::new(config.rate, config.burst());
        let kind = match (config.scope, store) {
            (RateScope::Local, _) => Kind::Local(Limiter::new(gcra, config.max_keys)),
            (RateScope::Fleet, None) => return Err("a fleet limiter needs [redis]".into()),
            (RateScope::Fleet, Some(store)) => Kind::Fleet(Fleet {
                store: store.clone(),
                leases: LeaseTable::new(config.max_keys, LEASE_TTL_NS),
                // A tenth of the burst per lease: at most that is held back per
                // instance and key, and Redis sees one call per that many requests.
                want: (gcra.burst / 10).clamp(1, 1000),
                on_error: config.on_redis_error,
                paused_until: AtomicU64::new(0),
                logged: AtomicU64::new(0),
            }),
        };
        Ok(Self {
            name: name.to_owned(),
            key,
            config: config.clone(),
            rate: config.rate,
            gcra,
            kind,
            allowed: AtomicU64::new(0),
            limited: AtomicU64::new(0),
            redis_failed: AtomicU64::new(0),
        })
    }

    /// Whether this limiter can be kept for `config` and `store` after a reload.
    pub fn same(&self, config: &RateLimitConfig, store: Option<&Arc<Store>>) -> bool {
        self.config == *config
            && match (&self.kind, store) {
                (Kind::Local(_), _) => true,
                (Kind::Fleet(f), Some(s)) => Arc::ptr_eq(&f.store, s),
                (Kind::Fleet(_), None) => false,
            }
    }

    /// Keys held in this process's table.
    pub fn keys(&self) -> usize {
        match &self.kind {
            Kind::Local(l) => l.len(),
            Kind::Fleet(f) => f.leases.len(),
        }
    }

    /// Whether it counts in Redis.
    pub fn is_fleet(&self) -> bool {
        matches!(self.kind, Kind::Fleet(_))
    }

    /// Decides on a request whose key is `key`, when that takes no waiting (a
    /// local limiter); `None` for a fleet one (see [`RateLimiter::check`]).
    pub fn check_now(&self, key: u64) -> Option<Verdict> {
        match &self.kind {
            Kind::Local(l) => Some(self.count(from_ns(l.check(key, clock::now_ns())))),
            Kind::Fleet(_) => None,
        }
    }

    /// Decides on a request whose key is `key`.
    pub async fn check(&self, key: u64) -> Verdict {
        let verdict = match &self.kind {
            Kind::Local(l) => from_ns(l.check(key, clock::now_ns())),
            Kind::Fleet(f) => self.fleet(f, key).await,
        };
        self.count(verdict)
    }

    fn count(&self, verdict: Verdict) -> Verdict {
        let counter = match verdict {
            Verdict::Allow => &self.allowed,
            Verdict::Limited { .. } => &self.limited,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        verdict
    }

    async fn fleet(&self, f: &Fleet, key: u64) -> Verdict {
        let now = clock::now_ns();
        let unused = match f.leases.take(key, now) {
            Need::Nothing => return Verdict::Allow,
            Need::Refused { retry_after_ns } => return limited(retry_after_ns),
            Need::Fetch { unused } => unused,
        };
        if now < f.paused_until.load(Ordering::Relaxed) {
            return self.failed(f, now, "paused after a failure");
        }
        let redis_key = format!("fulcrum:rl:{}:{key:016x}", self.name);
        match f.store.lease(redis_key, self.gcra, f.want, unused).await {
            Ok((granted, retry_after_ns)) => {
                match f.leases.fill(key, clock::now_ns(), granted, retry_after_ns) {
                    Grant::Allow => Verdict::Allow,
                    Grant::Deny { retry_after_ns } => limited(retry_after_ns),
                }
            }
            Err(e) => {
                f.paused_until
                    .store(now.saturating_add(REDIS_PAUSE_NS), Ordering::Relaxed);
                self.failed(f, now, &e.to_string())
            }
        }
    }

    /// Redis could not answer: the configured fallback, counted, logged once a second.
    fn failed(&self, f: &Fleet, now: u64, why: &str) -> Verdict {
        self.redis_failed.fetch_add(1, Ordering::Relaxed);
        let last = f.logged.load(Ordering::Relaxed);
        // 0: never logged (the process clock starts at 0, so it is no time).
        if (last == 0 || now.saturating_sub(last) >= 1_000_000_000)
            && f.logged
                .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let action = match f.on_error {
                OnRedisError::Allow => "letting requests through",
                OnRedisError::Deny => "refusing requests",
            };
            tracing::warn!(limiter = %self.name, "rate limit: redis failed ({why}); {action}");
        }
        match f.on_error {
            OnRedisError::Allow => Verdict::Allow,
            OnRedisError::Deny => Verdict::Limited { retry_after: 1 },
        }
    }

    /// `RateLimit-Policy` of the IETF httpapi draft: quota and window.
    pub fn policy_field(&self) -> String {
        format!(
            "\"{}\";q={};w={}",
            self.name, self.rate.count, self.rate.per_secs
        )
    }
}

fn limited(retry_after_ns: u64) -> Verdict {
    Verdict::Limited {
        retry_after: retry_after_ns.div_ceil(1_000_000_000).max(1),
    }
}

fn from_ns(d: Decision) -> Verdict {
    match d {
        Decision::Allow { .. } => Verdict::Allow,
        Decision::Deny { retry_after_ns } => limited(retry_after_ns),
    }
}
