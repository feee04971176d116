//! `[rate_limits.NAME]`, `[redis]`, and a route's `basic_auth` and `forward_auth`:
//! what the edge refuses before a request reaches a pool.

use serde::{Deserialize, Deserializer};

use super::{Duration, Secret};
use crate::limit::Rate;

/// `[rate_limits.NAME]`: a limiter routes name in `rate_limit = [...]`.
#[derive(Clone, Debug, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Requests allowed per second, minute or hour: `"100/s"`, `"6000/m"`.
    pub rate: Rate,
    /// Requests allowed at once from an idle key. Default: the rate's count.
    #[serde(default)]
    pub burst: Option<u32>,
    /// What requests are counted by: `client_ip`, `header:NAME`, `cookie:NAME`,
    /// `query:NAME`, `jwt:CLAIM`, `route` or `global`. A request without the
    /// attribute is not counted by this limiter.
    #[serde(default = "default_key")]
    pub key: String,
    /// `local` (this process) or `fleet` (every instance sharing `[redis]`).
    #[serde(default)]
    pub scope: RateScope,
    /// Keys held at most; the least recently used go first when full.
    #[serde(default = "default_max_keys")]
    pub max_keys: usize,
    /// With `scope = "fleet"`, what a request gets while Redis fails or is slow:
    /// `allow` (fail open, counted and logged) or `deny` (429).
    #[serde(default)]
    pub on_redis_error: OnRedisError,
}

fn default_key() -> String {
    "client_ip".into()
}

fn default_max_keys() -> usize {
    1_000_000
}

impl RateLimitConfig {
    /// `burst`, or the rate's count.
    pub fn burst(&self) -> u32 {
        self.burst.unwrap_or(self.rate.count).max(1)
    }
}

/// Where a limiter's counts live.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RateScope {
    /// This process (all its workers).
    #[default]
    Local,
    /// Redis, shared by every instance.
    Fleet,
}

/// What a fleet limiter does while Redis cannot answer.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnRedisError {
    /// Lets requests through.
    #[default]
    Allow,
    /// Refuses them with 429.
    Deny,
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// `[redis]`: the store fleet-scope limiters share.
#[derive(Clone, Debug, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port[/db]`, `rediss://` for TLS, or
    /// `unix:///path/redis.sock`.
    pub url: Secret,
    /// Longest wait for an answer before the limiter's `on_redis_error` applies.
    #[serde(default = "default_redis_timeout")]
    pub timeout: Duration,
    /// Connections to Redis (commands are pipelined on each).
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
}

fn default_redis_timeout() -> Duration {
    Duration::from_millis(50)
}

fn default_pool_size() -> usize {
    8
}

/// `basic_auth = { users = "FILE", realm = "..." }` on a route.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BasicAuthConfig {
    /// An htpasswd file of `user:hash` lines (bcrypt `$2y$`/`$2b$`/`$2a$`, or
    /// argon2 `$argon2id$`); read at start and on each reload.
    pub users: String,
    /// The realm named in the `WWW-Authenticate` challenge.
    #[serde(default = "default_realm")]
    pub realm: String,
}

fn default_realm() -> String {
    "fulcrum".into()
}

/// `forward_auth = { url = "http://auth:9000/check", copy_headers = [...], timeout = "2s" }`
/// on a route: each request is first asked of an auth service.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ForwardAuthConfig {
    /// The auth service, `http://host:port/path`.
    pub url: String,
    /// Fields of the auth service's 2xx answer added to the request; a client's
    /// own fields of these names are always removed.
    #[serde(default)]
    pub copy_headers: Vec<String>,
    /// Longest wait for the auth service's answer (503 after).
    #[serde(default = "default_auth_timeout")]
    pub timeout: Duration,
}

fn default_auth_timeout() -> Duration {
    Duration::from_secs(2)
}
