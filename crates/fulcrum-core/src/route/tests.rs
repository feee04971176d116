//! Unit tests for [`RouteTable`].
use super::*;

fn route(host: Option<&str>, path: Option<&str>, prefix: Option<&str>, pool: &str) -> RouteConfig {
    RouteConfig {
        listener: None,
        host: host.map(Into::into),
        path: path.map(Into::into),
        path_prefix: prefix.map(Into::into),
        pool: pool.into(),
        ..RouteConfig::default()
    }
}

fn pools() -> Vec<String> {
    ["a", "b", "c", "d"].map(String::from).to_vec()
}

/// Config index of the route matching `host` and `path`, if any.
fn find(table: &RouteTable, host: Option<&str>, path: &str) -> Option<usize> {
    let req = Request {
        method: "GET",
        host,
        path,
        headers: &NoHeaders,
    };
    table.find(&req).map(|r| r.index)
}

#[test]
fn first_match_wins_in_config_order() {
    let routes = [
        route(None, None, Some("/api/"), "a"),
        route(Some("x.com"), None, None, "b"),
        route(None, None, None, "c"),
        route(Some("x.com"), None, Some("/api/"), "d"),
    ];
    let t = RouteTable::build(&routes, "l", &pools());
    assert_eq!(find(&t, Some("x.com"), "/api/v1"), Some(0));
    assert_eq!(find(&t, Some("x.com"), "/other"), Some(1));
    assert_eq!(find(&t, Some("y.com"), "/other"), Some(2));
    assert_eq!(find(&t, None, "/"), Some(2));
    let r = t
        .find(&Request {
            method: "GET",
            host: Some("x.com"),
            path: "/",
            headers: &NoHeaders,
        })
        .unwrap();
    assert_eq!(
        *r,
        Route {
            index: 1,
            pool: 1,
            has_host: true,
            jwt_required: false,
        }
    );
}

#[test]
fn host_route_before_catch_all_and_after_it() {
    let routes = [
        route(None, None, Some("/static/"), "a"),
        route(Some("x.com"), None, None, "b"),
        route(None, None, None, "c"),
        route(Some("late.com"), None, None, "d"),
    ];
    let t = RouteTable::build(&routes, "l", &pools());
    assert_eq!(find(&t, Some("x.com"), "/static/a.css"), Some(0));
    assert_eq!(find(&t, Some("x.com"), "/"), Some(1));
    // A catch-all earlier in the config shadows a later host route.
    assert_eq!(find(&t, Some("late.com"), "/"), Some(2));
}

#[test]
fn no_predicates_matches_everything() {
    let t = RouteTable::build(&[route(None, None, None, "a")], "l", &pools());
    assert_eq!(find(&t, None, "/"), Some(0));
    assert_eq!(find(&t, Some("anything:1"), "/x?y"), Some(0));
}

#[test]
fn empty_table_matches_nothing() {
    let t = RouteTable::build(&[], "l", &pools());
    assert!(t.is_empty());
    assert_eq!(find(&t, Some("x.com"), "/"), None);
    assert_eq!(RouteTable::default().len(), 0);
}

#[test]
fn host_exact_ignores_case_port_and_trailing_dot() {
    let routes = [route(Some("API.Example.com"), None, None, "a")];
    let t = RouteTable::build(&routes, "l", &pools());
    for host in [
        "api.example.com",
        "API.EXAMPLE.COM",
        "api.example.com:8080",
        "Api.Example.Com:443",
        "api.example.com.",
    ] {
        assert_eq!(find(&t, Some(host), "/"), Some(0), "{host}");
    }
    for host in ["example.com", "x.api.example.com", "api.example.co", ""] {
        assert_eq!(find(&t, Some(host), "/"), None, "{host}");
    }
    assert_eq!(find(&t, None, "/"), None);
}

#[test]
fn host_ipv6_literal() {
    let t = RouteTable::build(&[route(Some("[::1]"), None, None, "a")], "l", &pools());
    assert_eq!(find(&t, Some("[::1]:8080"), "/"), Some(0));
    assert_eq!(find(&t, Some("[::1]"), "/"), Some(0));
    assert_eq!(find(&t, Some("[::2]:8080"), "/"), None);
}

#[test]
fn host_wildcard_needs_one_more_label() {
    let routes = [route(Some("*.example.com"), None, None, "a")];
    let t = RouteTable::build(&routes, "l", &pools());
    for host in ["a.example.com", "A.B.Example.COM:81", "www.example.com."] {
        assert_eq!(find(&t, Some(host), "/"), Some(0), "{host}");
    }
    for host in [
        "example.com",
        "notexample.com",
        ".example.com",
        "example.com.evil",
    ] {
        assert_eq!(find(&t, Some(host), "/"), None, "{host}");
    }
}

#[test]
fn wildcard_and_exact_keep_config_order() {
    let routes = [
        route(Some("*.example.com"), None, Some("/w/"), "a"),
        route(Some("api.example.com"), None, None, "b"),
        route(Some("*.api.example.com"), None, None, "c"),
        route(Some("*.example.com"), None, None, "d"),
    ];
    let t = RouteTable::build(&routes, "l", &pools());
    assert_eq!(find(&t, Some("api.example.com"), "/w/x"), Some(0));
    assert_eq!(find(&t, Some("api.example.com"), "/"), Some(1));
    assert_eq!(find(&t, Some("v1.api.example.com"), "/"), Some(2));
    assert_eq!(find(&t, Some("www.example.com"), "/"), Some(3));
}

#[test]
fn long_uppercase_host_matches_no_host_route() {
    let routes = [
        route(Some("x.com"), None, None, "a"),
        route(None, None, None, "b"),
    ];
    let t = RouteTable::build(&routes, "l", &pools());
    let long = format!("{}.X.COM", "A".repeat(300));
    assert_eq!(find(&t, Some(&long), "/"), Some(1));
}

#[test]
fn path_exact_and_prefix() {
    let routes = [
        route(None, Some("/exact"), None, "a"),
        route(None, None, Some("/api/"), "b"),
        route(None, Some("/api/both"), Some("/api/"), "c"),
    ];
    let t = RouteTable::build(&routes, "l", &pools());
    assert_eq!(find(&t, None, "/exact"), Some(0));
    assert_eq!(find(&t, None, "/exact/"), None);
    assert_eq!(find(&t, None, "/exactly"), None);
    assert_eq!(find(&t, None, "/api/"), Some(1));
    assert_eq!(find(&t, None, "/api/users"), Some(1));
    assert_eq!(find(&t, None, "/api"), None);

    // Both predicates set: both must match.
    let t = RouteTable::build(&routes[2..], "l", &pools());
    assert_eq!(find(&t, None, "/api/both"), Some(0));
    assert_eq!(find(&t, None, "/api/other"), None);
}

#[test]
fn query_ignored() {
    let routes = [
        route(None, Some("/exact"), None, "a"),
        route(None, None, Some("/api/"), "b"),
    ];
    let t = RouteTable::build(&routes, "l", &pools());
    assert_eq!(find(&t, None, "/exact?a=1"), Some(0));
    assert_eq!(find(&t, None, "/exact?"), Some(0));
    assert_eq!(find(&t, None, "/api/?x"), Some(1));
    // A prefix inside the query does not count.
    assert_eq!(find(&t, None, "/?/api/"), None);
}

#[test]
fn listener_filter() {
    let mut routes = [
        route(None, None, Some("/a"), "a"),
        route(None, None, Some("/b"), "b"),
        route(None, None, None, "c"),
    ];
    routes[0].listener = Some("public".into());
    routes[1].listener = Some("internal".into());
    let public = RouteTable::build(&routes, "public", &pools());
    assert_eq!(find(&public, None, "/a"), Some(0));
    assert_eq!(find(&public, None, "/b"), Some(2));
    let internal = RouteTable::build(&routes, "internal", &pools());
    assert_eq!(find(&internal, None, "/a"), Some(2));
    assert_eq!(find(&internal, None, "/b"), Some(1));
    assert_eq!(public.len(), 2);
}

#[test]
fn unknown_pool_skipped_and_pool_index_resolved() {
    let routes = [
        route(None, None, Some("/gone"), "missing"),
        route(None, None, None, "c"),
    ];
    let t = RouteTable::build(&routes, "l", &pools());
    let r = t
        .find(&Request {
            method: "GET",
            host: None,
            path: "/gone",
            headers: &NoHeaders,
        })
        .unwrap();
    assert_eq!((r.index, r.pool, r.has_host), (1, 2, false));
}

#[test]
fn many_routes_per_host_scan_in_order() {
    let routes: Vec<_> = (0..50)
        .map(|i| route(Some("x.com"), Some(&format!("/{i}")), None, "a"))
        .collect();
    let t = RouteTable::build(&routes, "l", &pools());
    assert_eq!(find(&t, Some("x.com"), "/37"), Some(37));
    assert_eq!(find(&t, Some("x.com"), "/50"), None);
}
