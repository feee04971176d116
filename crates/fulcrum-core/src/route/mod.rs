//! Stage: request head → route → pool.
//!
//! Input: the routing view of a request head ([`Request`]), h1 or h2 alike.
//! Output: the first configured route that matches, by config order, with the
//! index of the pool that serves it.
//!
//! Owns the compiled route table of one listener. Never allocates while
//! matching and never scans every host route: exact hosts and wildcard
//! suffixes are hashed, so a lookup costs one hash probe per label of the
//! request's host plus a scan of the routes that share its host.
//!
//! Matching rules (every predicate a route sets must match; none = match all):
//! - `host`: exact, ASCII case-insensitive; the request's `:port` and one
//!   trailing dot are ignored (`[::1]:8080` is `[::1]`). `*.example.com`
//!   matches any name under `example.com` but not `example.com` itself.
//! - `path`: exact; `path_prefix`: byte prefix. Both ignore the query.
//! - `path_regex`: a regex the whole path (query excluded) must match, as if
//!   written `^(?:…)$`. It may be combined with `path` or `path_prefix`: all
//!   must match.
//! - `method`: one of a list, exact and case-sensitive (`GET` is not `get`).
//! - `header`, `cookie`, `query`: name → value, each exact or `~regex` (whole
//!   value). Header names are case-insensitive; cookie and query names are not.
//!   Cookies come from every `cookie` field (h2 may send several); query
//!   names and values are compared raw, not percent-decoded. A name present
//!   several times matches if any of its values does. See [`predicate`].
//! - `jwt_claim`: claim → value, exact or `~regex`, of the bearer token in
//!   `Authorization`, verified with the route's key (signature, `alg`, `exp`,
//!   `nbf`; see [`crate::jwt`]). A missing, invalid or expired token matches
//!   no such route. Only [`RouteTable::find_with_tokens`] evaluates it.
//!
//! Routes with extra predicates are indexed by host like the others and
//! filtered in config order, so the first match still wins.
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use crate::config::RouteConfig;
use crate::jwt::{JwtKey, RequestTokens};

mod hash;
mod host;

/// A Host value without its port and trailing dot, as routes match it
/// (`[::1]:8080` → `[::1]`).
pub fn host_name(host: &str) -> &str {
    host::normalize(host)
}
pub mod predicate;
mod sni;

use hash::FxBuild;
use host::HostPattern;
pub use predicate::{Fields, Headers, NoHeaders};
use predicate::{Matching, Predicates};
pub use sni::SniTable;

/// What routing looks at in a request head.
#[derive(Clone, Copy)]
pub struct Request<'a> {
    /// Method, as sent.
    pub method: &'a str,
    /// `Host` (h1) or `:authority` (h2), possibly with a port, any case.
    pub host: Option<&'a str>,
    /// Origin-form target, possibly with a query.
    pub path: &'a str,
    /// The header fields, for `header` and `cookie` predicates.
    pub headers: &'a dyn Headers,
}

impl fmt::Debug for Request<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("host", &self.host)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// A matched route: which config entry it was and which pool serves it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// Position in the config's `routes`.
    pub index: usize,
    /// Index into the `pools` given to [`RouteTable::build`].
    pub pool: usize,
    /// Whether the route names a host.
    pub has_host: bool,
    /// `jwt_required`: the request's token must verify (checked after the match,
    /// so that a bad token gets 401 rather than another route).
    pub jwt_required: bool,
}

/// One compiled route: its identity plus the predicates checked after the
/// host index has narrowed the candidates.
#[derive(Clone, Debug)]
struct Entry {
    route: Route,
    path: Option<Box<str>>,
    path_prefix: Option<Box<str>>,
    /// Boxed: most routes have none, and a small entry keeps scans in cache.
    more: Option<Box<Predicates>>,
}

impl Entry {
    fn matches(&self, m: &Matching<'_>) -> bool {
        self.path.as_deref().is_none_or(|p| p == m.path)
            && self
                .path_prefix
                .as_deref()
                .is_none_or(|p| m.path.starts_with(p))
            && self.more.as_deref().is_none_or(|more| more.matches(m))
    }
}

/// The routes of one listener, compiled for lookup.
///
/// Candidate lists hold positions in `entries`, which is in config order, so
/// each list is sorted and "first match wins" is "lowest position wins".
#[derive(Clone, Debug, Default)]
pub struct RouteTable {
    entries: Vec<Entry>,
    /// Lowercase exact host → its routes.
    exact: HashMap<Box<str>, Vec<usize>, FxBuild>,
    /// Lowercase wildcard suffix (`example.com` for `*.example.com`) → its routes.
    wildcard: HashMap<Box<str>, Vec<usize>, FxBuild>,
    /// Bit `d` set when some wildcard suffix has `d` dots (`d` ≥ 63 share
    /// bit 63): suffixes of other depths are not looked up.
    wildcard_depths: u64,
    /// Most dots in any wildcard suffix: deeper suffixes are not looked up.
    wildcard_max_dots: usize,
    /// Routes without a host predicate.
    any_host: Vec<usize>,
}

impl RouteTable {
    /// Compiles the routes that apply to `listener` (theirs is unset or equal).
    /// Routes naming a pool absent from `pools`, or with a regex that does not
    /// compile, are skipped: validation reports them.
    pub fn build(routes: &[RouteConfig], listener: &str, pools: &[String]) -> Self {
        Self::build_with_keys(routes, listener, pools, &[])
    }

    /// As [`RouteTable::build`], with `keys[i]` the key that verifies tokens for
    /// `jwt_claim` of route `i` (loaded by the caller; a route with `jwt_secret`
    /// and no entry here gets an HS256 key from it).
    pub fn build_with_keys(
        routes: &[RouteConfig],
        listener: &str,
        pools: &[String],
        keys: &[Option<Arc<JwtKey>>],
    ) -> Self {
        let mut table = Self::default();
        for (index, cfg) in routes.iter().enumerate() {
            if cfg.listener.as_deref().is_some_and(|l| l != listener) {
                continue;
            }
            // A redirect or static route answers itself: its pool index names no pool.
            let pool = match pools.iter().position(|p| *p == cfg.pool) {
                Some(pool) => pool,
                None if cfg.pool.is_empty()
                    && (cfg.redirect.is_some() || cfg.static_files.is_some()) =>
                {
                    usize::MAX
                }
                None => continue,
            };
            let key = keys.get(index).cloned().flatten();
            let Ok(more) = Predicates::build(cfg, key) else {
                continue;
            };
            let position = table.entries.len();
            table.entries.push(Entry {
                route: Route {
                    index,
                    pool,
                    has_host: cfg.host.is_some(),
                    jwt_required: cfg.jwt_required,
                },
                path: cfg.path.as_deref().map(Into::into),
                path_prefix: cfg.path_prefix.as_deref().map(Into::into),
                more: more.map(Box::new),
            });
            let list = match cfg.host.as_deref().map(HostPattern::parse) {
                None => &mut table.any_host,
                Some(HostPattern::Exact(name)) => table.exact.entry(name).or_default(),
                Some(HostPattern::Wildcard(suffix)) => {
                    let dots = host::dots(&suffix);
                    table.wildcard_depths |= host::depth_bit(dots);
                    table.wildcard_max_dots = table.wildcard_max_dots.max(dots);
                    table.wildcard.entry(suffix).or_default()
                }
            };
            list.push(position);
        }
        table
    }

    /// The first route, in config order, that matches `req`; routes with
    /// `jwt_claim` never do (see [`RouteTable::find_with_tokens`]).
    pub fn find(&self, req: &Request<'_>) -> Option<&Route> {
        self.find_inner(req, None)
    }

    /// The first route, in config order, that matches `req`, reading its bearer
    /// token through `tokens` if a `jwt_claim` route is tried.
    pub fn find_with_tokens(&self, req: &Request<'_>, tokens: &RequestTokens) -> Option<&Route> {
        self.find_inner(req, Some(tokens))
    }

    fn find_inner(&self, req: &Request<'_>, tokens: Option<&RequestTokens>) -> Option<&Route> {
        let query = req.path.bytes().position(|b| b == b'?');
        // `?` is ASCII, so its position is a char boundary.
        let (path, query) = match query {
            Some(q) => (&req.path[..q], req.path.get(q + 1..)),
            None => (req.path, None),
        };
        let m = Matching {
            method: req.method,
            path,
            query,
            headers: req.headers,
            tokens,
        };
        let best = req.host.and_then(|host| self.find_by_host(host, &m));
        // Last: a catch-all usually sits at the end, and `best` cuts its scan short.
        let best = self.first_match(&self.any_host, &m, best)?;
        self.entries.get(best).map(|e| &e.route)
    }

    /// The first route with a host predicate that matches `host` and `m`.
    fn find_by_host(&self, host: &str, m: &Matching<'_>) -> Option<usize> {
        if self.exact.is_empty() && self.wildcard.is_empty() {
            return None;
        }
        let mut buf = [0; host::MAX_HOST];
        let name = host::fold(host::normalize(host), &mut buf)?;
        let mut best = None;
        if let Some(list) = self.exact.get(name) {
            best = self.first_match(list, m, best);
        }
        if self.wildcard.is_empty() {
            return best;
        }
        let suffixes = host::wildcard_suffixes(name);
        for (suffix, dots) in suffixes.take_while(|&(_, d)| d <= self.wildcard_max_dots) {
            if self.wildcard_depths & host::depth_bit(dots) == 0 {
                continue;
            }
            if let Some(list) = self.wildcard.get(suffix) {
                best = self.first_match(list, m, best);
            }
        }
        best
    }

    /// The lowest position in `list` below `bound` whose other predicates
    /// match, or `bound` when none does.
    fn first_match(&self, list: &[usize], m: &Matching<'_>, bound: Option<usize>) -> Option<usize> {
        list.iter()
            .copied()
            .take_while(|&p| bound.is_none_or(|b| p < b))
            .find(|&p| self.entries.get(p).is_some_and(|e| e.matches(m)))
            .or(bound)
    }

    /// Number of routes compiled for this listener.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no route applies to this listener (every request is a 404).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_predicates;
