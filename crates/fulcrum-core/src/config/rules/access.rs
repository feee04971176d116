//! `allow` and `deny` on listeners and routes: networks that parse, and routes that
//! can apply them (a tls-passthrough route is chosen before any request is read:
//! its listener's lists apply instead).

use super::super::cidr::Cidr;
use super::super::locate::{key, KeyPath};
use super::super::{Config, ListenerProtocol};
use super::Checker;

fn networks(c: &mut Checker<'_>, path: &KeyPath, lists: [(&str, &[String]); 2]) {
    for (name, list) in lists {
        for (i, net) in list.iter().enumerate() {
            if let Err(why) = Cidr::parse(net) {
                c.report(path.key(name).index(i), why);
            }
        }
    }
}

pub(super) fn check(c: &mut Checker<'_>, config: &Config) {
    for (name, l) in &config.listeners {
        let path = key("listeners").key(name);
        networks(c, &path, [("allow", &l.allow), ("deny", &l.deny)]);
        networks(
            c,
            &path,
            [("trusted_proxies", &l.trusted_proxies), ("deny", &[])],
        );
        if !l.trusted_proxies.is_empty()
            && !matches!(l.protocol, ListenerProtocol::Http | ListenerProtocol::Https)
        {
            c.report(
                path.key("trusted_proxies"),
                "only http and https listeners read X-Forwarded-For",
            );
        }
        match l.max_connections_per_client {
            Some(0) => c.report(path.key("max_connections_per_client"), "must be at least 1"),
            Some(_) if l.protocol == ListenerProtocol::Udp => c.report(
                path.key("max_connections_per_client"),
                "udp listeners have sessions, not connections (see max_sessions)",
            ),
            _ => {}
        }
        if l.protocol == ListenerProtocol::Udp && (!l.allow.is_empty() || !l.deny.is_empty()) {
            c.report(
                path.key(if l.allow.is_empty() { "deny" } else { "allow" }),
                "udp listeners do not take allow or deny yet",
            );
        }
    }
    for (i, r) in config.routes.iter().enumerate() {
        let path = key("routes").index(i);
        networks(c, &path, [("allow", &r.allow), ("deny", &r.deny)]);
        let passthrough = r.sni.is_some()
            || r.listener
                .as_ref()
                .and_then(|n| config.listeners.get(n))
                .is_some_and(|l| l.protocol == ListenerProtocol::TlsPassthrough);
        if passthrough && (!r.allow.is_empty() || !r.deny.is_empty()) {
            c.report(
                path.key(if r.allow.is_empty() { "deny" } else { "allow" }),
                "a tls-passthrough route cannot refuse clients: set allow or deny on its listener",
            );
        }
    }
}
