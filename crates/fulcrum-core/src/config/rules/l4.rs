//! Rules for tcp listeners: each names an existing pool, and that pool may only
//! balance on what a bare connection carries (its client address).

use super::Checker;
use crate::balance::HashKey;
use crate::config::locate::KeyPath;
use crate::config::{Config, ListenerConfig};

/// Checks `pool` and `idle_timeout` of the tcp listener at `path`.
pub(super) fn check_tcp(c: &mut Checker<'_>, config: &Config, path: &KeyPath, l: &ListenerConfig) {
    let at = path.key("pool");
    match l.pool.as_deref() {
        None if !c.gaps.covers(&at) => {
            c.report(
                at,
                "a tcp listener needs pool: the pool its connections go to",
            );
        }
        Some(name) => {
            // An unknown pool is reported with the other listener rules.
            if let Some(pool) = config.pools.get(name) {
                // An invalid key is reported on the pool.
                let other = pool
                    .hash_key
                    .as_deref()
                    .filter(|text| HashKey::parse(text).is_ok_and(|key| key != HashKey::ClientIp));
                if let Some(text) = other {
                    c.report(
                        at.clone(),
                        format!(
                            "pool {name:?} hashes {text:?}, which a TCP connection does not \
                             carry; at layer 4 only hash_key = \"client_ip\" works"
                        ),
                    );
                }
                if pool.sticky.is_some() {
                    c.report(
                        at,
                        format!("pool {name:?} is sticky, and a TCP connection carries no cookie"),
                    );
                }
            }
        }
        None => {}
    }
    if l.idle_timeout.is_some_and(|d| d.is_zero()) {
        c.report(path.key("idle_timeout"), "must be greater than 0");
    }
}
