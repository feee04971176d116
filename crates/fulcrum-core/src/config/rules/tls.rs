//! Rules for the TLS keys: an https listener has certificates; `tls` is accepted
//! only where it acts; a pool that asks for HTTP/2 over TLS has `tls`.

use super::predicates::is_token;
use super::Checker;
use crate::config::address;
use crate::config::locate::KeyPath;
use crate::config::{ListenerConfig, ListenerProtocol, PoolConfig, PoolProtocol};

/// `tls` of the listener at `path`.
pub(super) fn check_listener(c: &mut Checker<'_>, path: &KeyPath, l: &ListenerConfig) {
    let at = path.key("tls");
    if c.gaps.covers(&path.key("protocol")) || c.gaps.covers(&at) {
        return;
    }
    match l.redirect_https {
        Some(_) if l.protocol != ListenerProtocol::Http => c.report(
            path.key("redirect_https"),
            "only an http listener redirects to HTTPS",
        ),
        Some(0) => c.report(path.key("redirect_https"), "must be a port, 1 to 65535"),
        _ => {}
    }
    let Some(tls) = &l.tls else {
        if l.protocol == ListenerProtocol::Https {
            c.report(
                at,
                "an https listener needs tls = { certificates = [{ cert = \"PATH\", key = \"PATH\" }] }",
            );
        }
        return;
    };
    if l.protocol != ListenerProtocol::Https {
        c.report(
            at,
            "only https listeners terminate TLS (a tls-passthrough listener passes it on unopened)",
        );
        return;
    }
    if tls.certificates.is_empty()
        && tls.acme.is_none()
        && !c.gaps.covers(&at.key("certificates"))
        && !c.gaps.covers(&at.key("acme"))
    {
        c.report(
            at.key("certificates"),
            "needs at least one { cert = \"PATH\", key = \"PATH\" } (or acme)",
        );
    }
    if let Some(acme) = &tls.acme {
        check_acme(c, &at.key("acme"), acme);
    }
    for (i, cert) in tls.certificates.iter().enumerate() {
        for (name, file) in [("cert", &cert.cert), ("key", &cert.key)] {
            if file.is_empty() {
                c.report(
                    at.key("certificates").index(i).key(name),
                    "must be the path of a PEM file",
                );
            }
        }
    }
    if let Some(auth) = &tls.client_auth {
        let at = at.key("client_auth");
        if auth.ca.is_empty() {
            c.report(at.key("ca"), "must be the path of a PEM file");
        }
        if !is_token(&auth.header) {
            c.report(
                at.key("header"),
                format!("invalid header name {:?}", auth.header),
            );
        }
    }
    if tls.watch_interval.is_zero() {
        c.report(at.key("watch_interval"), "must be greater than 0");
    }
}

/// `tls` and `protocol` of the pool at `path`.
pub(super) fn check_pool(c: &mut Checker<'_>, path: &KeyPath, pool: &PoolConfig) {
    let at = path.key("tls");
    if c.gaps.covers(&at) {
        return;
    }
    match &pool.tls {
        None if pool.protocol == PoolProtocol::H2 && !c.gaps.covers(&path.key("protocol")) => {
            c.report(
                path.key("protocol"),
                "protocol = \"h2\" is HTTP/2 over TLS and needs tls = { ... } \
                 (\"h2c\" is HTTP/2 in the clear)",
            );
        }
        None => {}
        Some(tls) => {
            if pool.protocol == PoolProtocol::H2c {
                c.report(
                    path.key("protocol"),
                    "h2c is HTTP/2 in the clear: with tls, use protocol = \"h2\"",
                );
            }
            if pool.send_proxy_protocol.is_some() && pool.protocol == PoolProtocol::H2 {
                c.report(
                    path.key("send_proxy_protocol"),
                    "not with protocol = \"h2\": an HTTP/2 connection is shared by many \
                     clients, and a PROXY header names one",
                );
            }
            match (&tls.client_cert, &tls.client_key) {
                (Some(_), None) => c.report(at.key("client_key"), "needed with client_cert"),
                (None, Some(_)) => c.report(at.key("client_cert"), "needed with client_key"),
                _ => {}
            }
            if let Some(sni) = &tls.sni {
                // A server name is a host name without a wildcard, or an address.
                if sni.contains('*') || address::route_host(sni).is_err() {
                    c.report(
                        at.key("sni"),
                        format!(
                            "invalid server name {sni:?}: expected a DNS name or an IP address"
                        ),
                    );
                }
            }
            for (name, file) in [
                ("ca", &tls.ca),
                ("client_cert", &tls.client_cert),
                ("client_key", &tls.client_key),
            ] {
                if file.as_deref() == Some("") {
                    c.report(at.key(name), "must be the path of a PEM file");
                }
            }
        }
    }
}

/// `acme` of an https listener.
fn check_acme(c: &mut Checker<'_>, at: &KeyPath, acme: &crate::config::AcmeConfig) {
    if !acme.directory.starts_with("https://") {
        c.report(at.key("directory"), "must be an https:// URL");
    }
    if acme.domains.is_empty() {
        c.report(at.key("domains"), "needs at least one name");
    }
    for (i, d) in acme.domains.iter().enumerate() {
        if d.contains('*') {
            c.report(
                at.key("domains").index(i),
                "no wildcards: http-01 and tls-alpn-01 cannot prove them",
            );
        } else if address::route_host(d).is_err() || d.parse::<std::net::IpAddr>().is_ok() {
            c.report(at.key("domains").index(i), format!("invalid domain {d:?}"));
        }
    }
    if acme.storage.is_empty() {
        c.report(at.key("storage"), "must be a directory path");
    }
    if acme.renew_before.is_zero() {
        c.report(at.key("renew_before"), "must be greater than 0");
    }
}
