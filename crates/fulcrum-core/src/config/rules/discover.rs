//! Discovery keys: a pool's `dns` clamps and `discover` source, the top-level
//! `resolvers`.

use super::super::locate::key;
use super::super::{address, Config};
use super::Checker;

pub(super) fn check(c: &mut Checker<'_>, config: &Config) {
    for (i, r) in config.resolvers.iter().enumerate() {
        if crate::discover::resolver_addr(r).is_none() {
            c.report(
                key("resolvers").index(i),
                format!("invalid resolver {r:?}: expected an IP address or ip:port, such as 127.0.0.1:53"),
            );
        }
    }
    for (name, pool) in &config.pools {
        let path = key("pools").key(name);
        let dns = path.key("dns");
        if pool.dns.min_ttl.is_zero() {
            c.report(dns.key("min_ttl"), "must be greater than 0");
        }
        if pool.dns.max_ttl < pool.dns.min_ttl {
            c.report(dns.key("max_ttl"), "must be at least min_ttl");
        }
        let Some(d) = &pool.discover else { continue };
        let at = path.key("discover");
        match (&d.srv, &d.file) {
            (Some(_), Some(_)) => c.report(at, "set srv or file, not both"),
            (None, None) => c.report(at, "needs srv or file"),
            (Some(srv), None) => {
                if let Err(why) = address::dns_name(srv) {
                    c.report(at.key("srv"), format!("invalid name {srv:?}: {why}"));
                }
            }
            (None, Some(file)) => {
                if file.is_empty() {
                    c.report(at.key("file"), "must name a file");
                }
            }
        }
    }
}
