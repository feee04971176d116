//! Shaping keys: header rules on listeners and routes, a route's rewrite and
//! redirect (which stands for its pool), per-route limits and a pool's `host`.

use super::super::locate::{key, KeyPath};
use super::super::{Config, HeaderOpsConfig, ListenerProtocol, RouteConfig};
use super::Checker;
use crate::shape::headers::{HeaderOps, Side};
use crate::shape::rewrite::Rewrite;
use crate::shape::template::{Template, REDIRECT_VARS};

/// `error_pages`: statuses of errors, each with a file.
fn pages(c: &mut Checker<'_>, path: &KeyPath, pages: &std::collections::BTreeMap<String, String>) {
    for (status, file) in pages {
        let at = path.key("error_pages").key(status);
        if !status
            .parse::<u16>()
            .is_ok_and(|s| (400..=599).contains(&s))
        {
            c.report(at, "keys are error statuses, \"400\" to \"599\"");
        } else if file.is_empty() {
            c.report(at, "must name a file");
        }
    }
}

fn ops(c: &mut Checker<'_>, path: &KeyPath, cfg: Option<&HeaderOpsConfig>, side: Side) {
    let Some(cfg) = cfg else { return };
    if let Err(e) = HeaderOps::compile(cfg, side) {
        let at = path.key(e.kind);
        let at = match e.index {
            Some(i) => at.index(i),
            None => at.key(&e.name),
        };
        c.report(at, e.reason);
    }
}

pub(super) fn check(c: &mut Checker<'_>, config: &Config) {
    for (name, l) in &config.listeners {
        let path = key("listeners").key(name);
        let http = matches!(l.protocol, ListenerProtocol::Http | ListenerProtocol::Https);
        for (k, set) in [
            ("request_headers", l.request_headers.is_some()),
            ("response_headers", l.response_headers.is_some()),
        ] {
            if set && !http && !c.gaps.covers(&path.key("protocol")) {
                c.report(
                    path.key(k),
                    "only http and https listeners have headers to change",
                );
            }
        }
        ops(
            c,
            &path.key("request_headers"),
            l.request_headers.as_ref(),
            Side::Request,
        );
        ops(
            c,
            &path.key("response_headers"),
            l.response_headers.as_ref(),
            Side::Response,
        );
        pages(c, &path, &l.error_pages);
    }
    for (name, pool) in &config.pools {
        if let Some(host) = &pool.host {
            let bad = host.is_empty()
                || host.bytes().any(|b| {
                    b.is_ascii_whitespace() || b.is_ascii_control() || b"/?#@".contains(&b)
                });
            if bad {
                c.report(
                    key("pools").key(name).key("host"),
                    "must be a host name, with a port if needed (\"backend.internal:8080\")",
                );
            }
        }
    }
}

/// The shaping keys of one route.
pub(super) fn check_route(c: &mut Checker<'_>, path: &KeyPath, route: &RouteConfig) {
    ops(
        c,
        &path.key("request_headers"),
        route.request_headers.as_ref(),
        Side::Request,
    );
    ops(
        c,
        &path.key("response_headers"),
        route.response_headers.as_ref(),
        Side::Response,
    );
    pages(c, path, &route.error_pages);
    let rewrite = route
        .rewrite
        .as_ref()
        .map(|r| (r.regex.as_str(), r.to.as_str()));
    if let Err((at, why)) = Rewrite::compile(route.strip_prefix.as_deref(), rewrite) {
        let at = match at.split_once('.') {
            Some((a, b)) => path.key(a).key(b),
            None => path.key(at),
        };
        c.report(at, why);
    }
    let mut codings = Vec::new();
    for (i, token) in route.compress.iter().enumerate() {
        match crate::shape::encoding::Coding::parse(token) {
            None => c.report(
                path.key("compress").index(i),
                format!("unknown coding {token:?} (codings: zstd, br, gzip)"),
            ),
            Some(coding) if codings.contains(&coding) => {
                c.report(
                    path.key("compress").index(i),
                    format!("{token:?} is listed twice"),
                );
            }
            Some(coding) => codings.push(coding),
        }
    }
    for (name, level) in &route.compress_level {
        let at = path.key("compress_level").key(name);
        match crate::shape::encoding::Coding::parse(name) {
            None => c.report(
                at,
                format!("unknown coding {name:?} (codings: zstd, br, gzip)"),
            ),
            Some(coding) if !coding.levels().contains(level) => {
                let (lo, hi) = coding.levels().into_inner();
                c.report(at, format!("{name} levels are {lo} to {hi}"));
            }
            Some(_) => {}
        }
    }
    for (i, t) in route.compress_types.iter().enumerate() {
        let ok = t.split_once('/').is_some_and(|(a, _)| !a.is_empty())
            && !t.bytes().any(|b| b.is_ascii_whitespace() || b == b';');
        if !ok {
            c.report(
                path.key("compress_types").index(i),
                "a media type (\"application/json\") or a prefix (\"text/\")",
            );
        }
    }
    if let Some(cors) = &route.cors {
        if let Err((k, why)) = crate::shape::cors::Cors::compile(cors) {
            c.report(path.key("cors").key(k), why);
        }
    }
    if let Some(st) = &route.static_files {
        let at = path.key("static");
        if st.root.is_empty() {
            c.report(at.key("root"), "must name a directory");
        }
        if st.index.is_empty() || st.index.contains('/') || st.index == ".." {
            c.report(at.key("index"), "must be a file name");
        }
        if let Some(fb) = &st.fallback {
            if !fb.starts_with('/') || crate::shape::files::relative_path(fb).is_err() {
                c.report(
                    at.key("fallback"),
                    "must be a path under root, starting with \"/\"",
                );
            }
        }
        if !route.pool.is_empty() {
            c.report(
                path.key("pool"),
                "a route with static serves files itself: leave pool out",
            );
        }
        if route.redirect.is_some() {
            c.report(
                path.key("redirect"),
                "set either static or redirect, not both",
            );
        }
        for (k, set) in [
            ("rewrite", route.rewrite.is_some()),
            ("request_headers", route.request_headers.is_some()),
        ] {
            if set {
                c.report(
                    path.key(k),
                    "a route with static sends nothing to a backend",
                );
            }
        }
    }
    if let Some(r) = &route.redirect {
        let at = path.key("redirect");
        if ![301, 302, 303, 307, 308].contains(&r.status) {
            c.report(at.key("status"), "must be 301, 302, 303, 307 or 308");
        }
        if r.to.bytes().any(|b| b.is_ascii_control() || b == b' ') {
            c.report(
                at.key("to"),
                "must not contain spaces or control characters",
            );
        } else if let Err(why) = Template::parse(&r.to, REDIRECT_VARS) {
            c.report(at.key("to"), why);
        }
        if !route.pool.is_empty() {
            c.report(
                path.key("pool"),
                "a route with redirect answers itself: leave pool out",
            );
        }
        for (k, set) in [
            ("strip_prefix", route.strip_prefix.is_some()),
            ("rewrite", route.rewrite.is_some()),
            ("request_headers", route.request_headers.is_some()),
        ] {
            if set {
                c.report(
                    path.key(k),
                    "a route with redirect sends nothing to a backend",
                );
            }
        }
    }
    for (k, d) in [
        ("upstream_timeout", route.upstream_timeout),
        ("per_try_timeout", route.per_try_timeout),
    ] {
        if d.is_some_and(|d| d.get().is_zero()) {
            c.report(path.key(k), "must be more than 0s");
        }
    }
}
