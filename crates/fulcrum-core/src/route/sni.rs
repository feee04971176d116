//! SNI → pool for `tls-passthrough` listeners: the routes that name the listener,
//! matched on the ClientHello's server name with the same host index (exact names,
//! then `*.` suffixes, in config order) as HTTP routes use for `Host`.

use super::{Request, Route, RouteTable};
use crate::config::RouteConfig;
use crate::route::NoHeaders;

/// The compiled SNI routes of one `tls-passthrough` listener.
#[derive(Debug, Default)]
pub struct SniTable(RouteTable);

impl SniTable {
    /// Compiles the routes naming `listener`; a route's `sni` plays the part of
    /// `host`, and `Route::index` stays its place in `routes`.
    pub fn build(routes: &[RouteConfig], listener: &str, pools: &[String]) -> Self {
        let as_hosts: Vec<RouteConfig> = routes
            .iter()
            .map(|r| {
                // A route of another listener keeps its slot but can never match.
                let mine = r.listener.as_deref() == Some(listener);
                RouteConfig {
                    listener: Some(if mine {
                        listener.to_owned()
                    } else {
                        String::new()
                    }),
                    host: r.sni.clone(),
                    pool: r.pool.clone(),
                    ..RouteConfig::default()
                }
            })
            .collect();
        Self(RouteTable::build(&as_hosts, listener, pools))
    }

    /// The first route whose `sni` matches `name` (any case); a ClientHello without
    /// a name only matches a route without `sni`.
    pub fn find(&self, name: Option<&str>) -> Option<&Route> {
        self.0.find(&Request {
            method: "",
            host: name,
            path: "/",
            headers: &NoHeaders,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(listener: &str, sni: Option<&str>, pool: &str) -> RouteConfig {
        RouteConfig {
            listener: Some(listener.into()),
            sni: sni.map(Into::into),
            pool: pool.into(),
            ..RouteConfig::default()
        }
    }

    #[test]
    fn names_route_like_hosts() {
        let routes = [
            route("web", Some("other.example.com"), "a"),
            route("tls", Some("api.example.com"), "a"),
            route("tls", Some("*.example.com"), "b"),
            route("tls", None, "c"),
        ];
        let pools = ["a".to_owned(), "b".to_owned(), "c".to_owned()];
        let t = SniTable::build(&routes, "tls", &pools);
        let pick = |n: Option<&str>| t.find(n).map(|r| (r.index, r.pool));
        assert_eq!(pick(Some("api.example.com")), Some((1, 0)));
        assert_eq!(pick(Some("API.Example.COM")), Some((1, 0)));
        assert_eq!(pick(Some("www.example.com")), Some((2, 1)));
        // Another listener's route never matches here.
        assert_eq!(pick(Some("other.example.com")), Some((2, 1)));
        assert_eq!(pick(Some("example.org")), Some((3, 2)));
        assert_eq!(pick(None), Some((3, 2)));
        let strict = SniTable::build(&routes[..3], "tls", &pools);
        assert_eq!(strict.find(None).map(|r| r.index), None);
        assert_eq!(strict.find(Some("example.org")).map(|r| r.index), None);
    }
}
