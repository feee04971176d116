//! Rules for JWT keys: `jwt_secret` / `jwt_public_key` on pools (for a `jwt:CLAIM`
//! hash key) and routes (for `jwt_claim`, where a key is required). The PEM file
//! itself is read when the snapshot is built, not here.

use super::Checker;
use crate::config::locate::KeyPath;
use crate::config::{PoolConfig, RouteConfig, Secret};
use crate::route::predicate;

/// Shortest HS256 secret accepted: the size of its HMAC-SHA256 output.
const MIN_SECRET: usize = 32;

/// Checks a pool's JWT keys: set only for a `jwt:` hash key, one kind at most.
pub(super) fn check_pool(c: &mut Checker<'_>, path: &KeyPath, pool: &PoolConfig) {
    let used = pool
        .hash_key
        .as_deref()
        .is_some_and(|k| k.starts_with("jwt:"));
    check_keys(
        c,
        path,
        &pool.jwt_secret,
        &pool.jwt_public_key,
        used,
        "only used with hash_key = \"jwt:CLAIM\"",
    );
}

/// Checks a route's `jwt_claim` and its key, which it must have.
pub(super) fn check_route(
    c: &mut Checker<'_>,
    path: &KeyPath,
    route: &RouteConfig,
    limited_by_claim: bool,
) {
    let used = !route.jwt_claim.is_empty() || route.jwt_required || limited_by_claim;
    check_keys(
        c,
        path,
        &route.jwt_secret,
        &route.jwt_public_key,
        used,
        "only used with jwt_claim, jwt_required or a rate limit keyed by jwt:CLAIM",
    );
    if route.jwt_required && route.jwt_secret.is_none() && route.jwt_public_key.is_none() {
        c.report(
            path.key("jwt_required"),
            "needs jwt_secret or jwt_public_key to verify the token with",
        );
    }
    if !route.jwt_claim.is_empty() && route.jwt_secret.is_none() && route.jwt_public_key.is_none() {
        c.report(
            path.key("jwt_claim"),
            "needs jwt_secret or jwt_public_key: routing on unverified claims lets clients pick their route",
        );
    }
    for (claim, value) in &route.jwt_claim {
        let at = path.key("jwt_claim").key(claim);
        if claim.is_empty() {
            c.report(at.clone(), "claim name must not be empty");
        }
        if let Err(e) = predicate::check_value(value) {
            c.report(at, super::predicates::regex_reason(&e));
        }
    }
}

fn check_keys(
    c: &mut Checker<'_>,
    path: &KeyPath,
    secret: &Option<Secret>,
    public_key: &Option<String>,
    used: bool,
    unused: &str,
) {
    for (name, set) in [
        ("jwt_secret", secret.is_some()),
        ("jwt_public_key", public_key.is_some()),
    ] {
        if set && !used {
            c.report(path.key(name), unused);
        }
    }
    if secret.is_some() && public_key.is_some() {
        c.report(
            path.key("jwt_public_key"),
            "set either jwt_secret or jwt_public_key, not both",
        );
    }
    if secret
        .as_ref()
        .is_some_and(|s| s.expose().len() < MIN_SECRET)
    {
        c.report(
            path.key("jwt_secret"),
            format!("must be at least {MIN_SECRET} bytes"),
        );
    }
    if public_key.as_deref().is_some_and(|p| p.trim().is_empty()) {
        c.report(path.key("jwt_public_key"), "must be the path of a PEM file");
    }
}
