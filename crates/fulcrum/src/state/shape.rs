//! Each route's shaping, compiled with the snapshot: its header rules (the
//! listener's with the route's on top), rewrite, redirect and its own limits.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use fulcrum_core::config::{Config, HeaderOpsConfig, ListenerConfig, RouteConfig};
use fulcrum_core::shape::cors::Cors;
use fulcrum_core::shape::encoding::Coding;
use fulcrum_core::shape::headers::{HeaderOps, Side};
use fulcrum_core::shape::rewrite::Rewrite;
use fulcrum_core::shape::template::{Template, REDIRECT_VARS};

use super::build::BuildError;
use crate::http::error::Page;

/// A `static` route's settings, its root resolved at load.
#[derive(Debug)]
pub struct StaticFiles {
    /// The real path of `root`.
    pub root: PathBuf,
    /// `index`.
    pub index: String,
    /// `fallback`, relative to the root.
    pub fallback: Option<String>,
    /// `list`.
    pub list: bool,
    /// `follow_symlinks`.
    pub follow_symlinks: bool,
}

impl StaticFiles {
    /// Resolves `cfg.root`; an error says why it cannot be served.
    pub fn load(cfg: &fulcrum_core::config::StaticConfig) -> Result<Self, String> {
        let root = std::fs::canonicalize(&cfg.root).map_err(|e| format!("{}: {e}", cfg.root))?;
        if !root.is_dir() {
            return Err(format!("{}: not a directory", cfg.root));
        }
        Ok(Self {
            root,
            index: cfg.index.clone(),
            fallback: cfg
                .fallback
                .as_deref()
                .and_then(|f| fulcrum_core::shape::files::relative_path(f).ok()),
            list: cfg.list,
            follow_symlinks: cfg.follow_symlinks,
        })
    }
}

/// A route's redirect.
#[derive(Debug)]
pub struct Redirect {
    /// The `Location`.
    pub to: Template,
    /// Its status.
    pub status: u16,
}

/// What a route changes, on one listener.
#[derive(Debug, Default)]
pub struct RouteShape {
    /// Rules for the request to the backend.
    pub request: Option<HeaderOps>,
    /// Rules for the response to the client (shared with the responses that carry them).
    pub response: Option<Arc<HeaderOps>>,
    /// `strip_prefix` and `rewrite`.
    pub rewrite: Option<Rewrite>,
    /// The answer of a redirect route.
    pub redirect: Option<Redirect>,
    /// `max_body_bytes`, over the listener's.
    pub max_body_bytes: Option<u64>,
    /// `upstream_timeout`, over the pool's.
    pub upstream_timeout: Option<Duration>,
    /// `per_try_timeout`, over the pool's retries'.
    pub per_try_timeout: Option<Duration>,
    /// CORS answered at the edge.
    pub cors: Option<Cors>,
    /// `error_pages`, over the listener's.
    pub error_pages: Pages,
    /// `compress`: the codings offered, in order.
    pub compress: Vec<Coding>,
    /// `compress_level`, by coding (unset: the coding's default).
    pub compress_level: Vec<(Coding, i32)>,
    /// `compress_min_bytes`.
    pub compress_min_bytes: u64,
    /// `compress_types` (empty: the defaults).
    pub compress_types: Vec<String>,
    /// `static`: files served from disk.
    pub files: Option<Arc<StaticFiles>>,
}

/// Error pages by status.
pub type Pages = HashMap<u16, Arc<Page>>;

/// Reads the files of an `error_pages` table (at `at`).
pub fn pages(at: &str, table: &BTreeMap<String, String>) -> Result<Pages, BuildError> {
    table
        .iter()
        .filter_map(|(status, file)| Some((status.parse::<u16>().ok()?, status, file)))
        .map(|(code, status, file)| {
            let page = Page::load(file).map_err(|reason| BuildError::Edge {
                at: format!("{at}.error_pages.{status}"),
                reason,
            })?;
            Ok((code, Arc::new(page)))
        })
        .collect()
}

fn compile(cfg: Option<&HeaderOpsConfig>, side: Side, at: &str) -> Result<HeaderOps, BuildError> {
    cfg.map_or(Ok(HeaderOps::default()), |c| {
        HeaderOps::compile(c, side).map_err(|e| BuildError::Edge {
            at: format!("{at}.{}", e.kind),
            reason: e.reason,
        })
    })
}

/// The listener's rules with the route's applied after; `None` when both are empty.
fn combined(base: &HeaderOps, route: &HeaderOps) -> Option<HeaderOps> {
    let both = HeaderOps::then(base, route);
    (!both.is_empty()).then_some(both)
}

fn route_shape(
    i: usize,
    rc: &RouteConfig,
    request: &HeaderOps,
    response: &HeaderOps,
) -> Result<Option<RouteShape>, BuildError> {
    let at = format!("routes[{i}]");
    let rewrite = rc
        .rewrite
        .as_ref()
        .map(|r| (r.regex.as_str(), r.to.as_str()));
    let rewrite =
        Rewrite::compile(rc.strip_prefix.as_deref(), rewrite).map_err(|(k, reason)| {
            BuildError::Edge {
                at: format!("{at}.{k}"),
                reason,
            }
        })?;
    let redirect = match &rc.redirect {
        None => None,
        Some(r) => Some(Redirect {
            to: Template::parse(&r.to, REDIRECT_VARS).map_err(|reason| BuildError::Edge {
                at: format!("{at}.redirect.to"),
                reason,
            })?,
            status: r.status,
        }),
    };
    let cors = match &rc.cors {
        None => None,
        Some(c) => Some(Cors::compile(c).map_err(|(k, reason)| BuildError::Edge {
            at: format!("{at}.cors.{k}"),
            reason,
        })?),
    };
    let files = match &rc.static_files {
        None => None,
        Some(st) => Some(Arc::new(StaticFiles::load(st).map_err(|reason| {
            BuildError::Edge {
                at: format!("{at}.static.root"),
                reason,
            }
        })?)),
    };
    let shape = RouteShape {
        files,
        compress: rc
            .compress
            .iter()
            .filter_map(|c| Coding::parse(c))
            .collect(),
        compress_level: rc
            .compress_level
            .iter()
            .filter_map(|(c, l)| Some((Coding::parse(c)?, *l)))
            .collect(),
        compress_min_bytes: rc.compress_min_bytes,
        compress_types: rc.compress_types.clone(),
        error_pages: pages(&at, &rc.error_pages)?,
        cors,
        request: combined(
            request,
            &compile(rc.request_headers.as_ref(), Side::Request, &at)?,
        ),
        response: combined(
            response,
            &compile(rc.response_headers.as_ref(), Side::Response, &at)?,
        )
        .map(Arc::new),
        rewrite,
        redirect,
        max_body_bytes: rc.max_body_bytes,
        upstream_timeout: rc.upstream_timeout.map(|d| d.get()),
        per_try_timeout: rc.per_try_timeout.map(|d| d.get()),
    };
    let empty = shape.request.is_none()
        && shape.response.is_none()
        && shape.rewrite.is_none()
        && shape.redirect.is_none()
        && shape.max_body_bytes.is_none()
        && shape.upstream_timeout.is_none()
        && shape.per_try_timeout.is_none()
        && shape.cors.is_none()
        && shape.error_pages.is_empty()
        && shape.compress.is_empty()
        && shape.files.is_none();
    Ok((!empty).then_some(shape))
}

/// Every route's shaping on listener `name`, by route index (`None`: nothing to do).
pub fn build(
    config: &Config,
    name: &str,
    l: &ListenerConfig,
) -> Result<Vec<Option<Arc<RouteShape>>>, BuildError> {
    let at = format!("listeners.{name}");
    let request = compile(l.request_headers.as_ref(), Side::Request, &at)?;
    let response = compile(l.response_headers.as_ref(), Side::Response, &at)?;
    config
        .routes
        .iter()
        .enumerate()
        .map(|(i, rc)| Ok(route_shape(i, rc, &request, &response)?.map(Arc::new)))
        .collect()
}
