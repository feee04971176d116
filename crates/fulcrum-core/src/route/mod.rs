//! Request → route → pool. STUB: replaced by the routing work.
use crate::config::RouteConfig;

/// What routing looks at.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    /// Method.
    pub method: &'a str,
    /// Host, possibly with a port, any case.
    pub host: Option<&'a str>,
    /// Origin-form target, possibly with a query.
    pub path: &'a str,
}

/// A compiled route.
#[derive(Clone, Debug)]
pub struct Route {
    /// Index in the config's routes.
    pub index: usize,
    /// Index of the pool.
    pub pool: usize,
    /// Whether the route names a host.
    pub has_host: bool,
}

/// Routes of one listener.
#[derive(Clone, Debug, Default)]
pub struct RouteTable {
    routes: Vec<Route>,
}

impl RouteTable {
    /// Builds.
    pub fn build(routes: &[RouteConfig], listener: &str, pools: &[String]) -> Self {
        let routes = routes
            .iter()
            .enumerate()
            .filter(|(_, r)| r.listener.as_deref().is_none_or(|l| l == listener))
            .filter_map(|(index, r)| {
                let pool = pools.iter().position(|p| *p == r.pool)?;
                Some(Route { index, pool, has_host: r.host.is_some() })
            })
            .collect();
        Self { routes }
    }
    /// Finds.
    pub fn find(&self, _req: &Request<'_>) -> Option<&Route> {
        self.routes.first()
    }
}
