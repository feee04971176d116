//! `[rate_limits]`, `[redis]` and the routes' `rate_limit`, `basic_auth` and
//! `forward_auth`: keys that parse, names that exist, a store for fleet limiters.

use super::super::locate::key;
use super::super::{Config, RateScope};
use super::Checker;
use crate::limit::RateKey;

/// Most keys one limiter may hold (about 40 bytes each).
const MAX_KEYS: usize = 100_000_000;

pub(super) fn check(c: &mut Checker<'_>, config: &Config) {
    for (name, l) in &config.rate_limits {
        let path = key("rate_limits").key(name);
        if let Err(why) = RateKey::parse(&l.key) {
            c.report(path.key("key"), why);
        }
        if l.burst == Some(0) {
            c.report(path.key("burst"), "must be at least 1");
        }
        if !(1..=MAX_KEYS).contains(&l.max_keys) {
            c.report(
                path.key("max_keys"),
                format!("must be between 1 and {MAX_KEYS}"),
            );
        }
        if l.scope == RateScope::Fleet && config.redis.is_none() && !c.gaps.within(&key("redis")) {
            c.report(
                path.key("scope"),
                "a fleet limiter needs [redis] (url = \"redis://host:6379\")",
            );
        }
    }
    if let Some(redis) = &config.redis {
        let path = key("redis");
        let url = redis.url.expose();
        if let Err(why) = redis_url(url) {
            c.report(path.key("url"), why);
        }
        if !(1..=64).contains(&redis.pool_size) {
            c.report(path.key("pool_size"), "must be between 1 and 64");
        }
        if redis.timeout.is_zero() {
            c.report(path.key("timeout"), "must be more than 0");
        }
    }
    for (i, r) in config.routes.iter().enumerate() {
        let path = key("routes").index(i);
        for (j, name) in r.rate_limit.iter().enumerate() {
            if !config.rate_limits.contains_key(name)
                && !c.gaps.covers(&key("rate_limits").key(name))
            {
                c.report(
                    path.key("rate_limit").index(j),
                    super::unknown("rate limit", name, &config.rate_limits),
                );
            }
            let by_claim = config
                .rate_limits
                .get(name)
                .is_some_and(|l| l.key.starts_with("jwt:"));
            if by_claim && r.jwt_secret.is_none() && r.jwt_public_key.is_none() {
                c.report(
                    path.key("rate_limit").index(j),
                    "a limiter keyed by jwt:CLAIM needs the route's jwt_secret or jwt_public_key: unverified claims let clients pick their own budget",
                );
            }
            if r.rate_limit[..j].contains(name) {
                c.report(path.key("rate_limit").index(j), "listed twice");
            }
        }
        if let Some(auth) = &r.basic_auth {
            if auth.users.is_empty() {
                c.report(
                    path.key("basic_auth").key("users"),
                    "must name an htpasswd file",
                );
            }
            if auth.realm.contains(['"', '\\']) || auth.realm.chars().any(char::is_control) {
                c.report(
                    path.key("basic_auth").key("realm"),
                    "must not hold quotes, backslashes or control characters",
                );
            }
        }
        if let Some(auth) = &r.forward_auth {
            let at = path.key("forward_auth");
            if let Err(why) = crate::forward::parse_http_url(&auth.url) {
                c.report(at.key("url"), why);
            }
            if auth.timeout.is_zero() {
                c.report(at.key("timeout"), "must be more than 0");
            }
            for (j, h) in auth.copy_headers.iter().enumerate() {
                if h.is_empty() || !h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                    c.report(at.key("copy_headers").index(j), "not a header name");
                }
            }
        }
    }
}

/// Checks `redis[s]://[user[:password]@]host[:port][/db]` or
/// `unix:///path/to/redis.sock`; the reason never shows the password.
fn redis_url(url: &str) -> Result<(), String> {
    if let Some(path) = url
        .strip_prefix("unix://")
        .or_else(|| url.strip_prefix("redis+unix://"))
    {
        return match path.starts_with('/') {
            true => Ok(()),
            false => Err("a unix:// URL needs an absolute socket path".into()),
        };
    }
    let rest = url
        .strip_prefix("redis://")
        .or_else(|| url.strip_prefix("rediss://"))
        .ok_or("must start with redis://, rediss:// or unix://")?;
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    let (authority, db) = rest.split_once('/').unwrap_or((rest, ""));
    if !db.is_empty() && db.parse::<u32>().is_err() {
        return Err("the database after the host must be a number".into());
    }
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || authority.starts_with('[') => {
            if port.parse::<u16>().is_err() {
                return Err("invalid port".into());
            }
            host
        }
        _ => authority,
    };
    if host.is_empty() || host.contains(|ch: char| ch.is_whitespace() || ch == '?') {
        return Err("no host".into());
    }
    Ok(())
}

/// Whether `route` uses a limiter keyed by a JWT claim (its JWT key verifies it).
pub(super) fn uses_jwt(config: &Config, route: &super::super::RouteConfig) -> bool {
    route.rate_limit.iter().any(|n| {
        config
            .rate_limits
            .get(n)
            .is_some_and(|l| l.key.starts_with("jwt:"))
    })
}
