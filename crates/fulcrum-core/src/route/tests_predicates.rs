//! Unit tests for the predicates beyond host and path.
use super::*;
use crate::config::MethodsConfig;

fn pools() -> Vec<String> {
    ["a", "b", "c"].map(String::from).to_vec()
}

fn map(pairs: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
    pairs
        .iter()
        .map(|&(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn to(pool: &str) -> RouteConfig {
    RouteConfig {
        pool: pool.into(),
        ..RouteConfig::default()
    }
}

/// A request with fields given as `(name, value)` pairs.
struct Req<'a> {
    method: &'a str,
    host: Option<&'a str>,
    path: &'a str,
    fields: &'a [(&'a str, &'a str)],
}

impl Default for Req<'_> {
    fn default() -> Self {
        Self {
            method: "GET",
            host: None,
            path: "/",
            fields: &[],
        }
    }
}

fn find(t: &RouteTable, r: &Req<'_>) -> Option<usize> {
    let headers = Fields(r.fields.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())));
    let req = Request {
        method: r.method,
        host: r.host,
        path: r.path,
        headers: &headers,
    };
    t.find(&req).map(|r| r.index)
}

fn path(p: &str) -> Req<'_> {
    Req {
        path: p,
        ..Req::default()
    }
}

fn fields<'a>(fields: &'a [(&'a str, &'a str)]) -> Req<'a> {
    Req {
        fields,
        ..Req::default()
    }
}

#[test]
fn path_regex_matches_the_whole_path_without_query() {
    let routes = [RouteConfig {
        path_regex: Some(r"/users/\d+".into()),
        ..to("a")
    }];
    let t = RouteTable::build(&routes, "l", &pools());
    assert_eq!(find(&t, &path("/users/42")), Some(0));
    assert_eq!(find(&t, &path("/users/42?x=1")), Some(0));
    // Anchored at both ends.
    assert_eq!(find(&t, &path("/users/42/posts")), None);
    assert_eq!(find(&t, &path("/v1/users/42")), None);
    assert_eq!(find(&t, &path("/users/x")), None);
}

#[test]
fn path_regex_alternation_stays_anchored() {
    let routes = [RouteConfig {
        path_regex: Some("/a|/b".into()),
        ..to("a")
    }];
    let t = RouteTable::build(&routes, "l", &pools());
    assert_eq!(find(&t, &path("/a")), Some(0));
    assert_eq!(find(&t, &path("/b")), Some(0));
    assert_eq!(find(&t, &path("/ab")), None);
    assert_eq!(find(&t, &path("/xb")), None);
}

#[test]
fn path_regex_combines_with_prefix() {
    let routes = [RouteConfig {
        path_prefix: Some("/api/".into()),
        path_regex: Some(r".*\.json".into()),
        ..to("a")
    }];
    let t = RouteTable::build(&routes, "l", &pools());
    assert_eq!(find(&t, &path("/api/x.json")), Some(0));
    assert_eq!(find(&t, &path("/web/x.json")), None);
    assert_eq!(find(&t, &path("/api/x.xml")), None);
}

#[test]
fn bad_regex_route_is_skipped() {
    let routes = [
        RouteConfig {
            path_regex: Some("(".into()),
            ..to("a")
        },
        to("b"),
    ];
    let t = RouteTable::build(&routes, "l", &pools());
    assert_eq!(t.len(), 1);
    assert_eq!(find(&t, &path("/")), Some(1));
}

#[test]
fn method_one_or_list_case_sensitive() {
    let routes = [
        RouteConfig {
            method: Some(MethodsConfig(vec!["POST".into()])),
            ..to("a")
        },
        RouteConfig {
            method: Some(MethodsConfig(vec!["GET".into(), "HEAD".into()])),
            ..to("b")
        },
    ];
    let t = RouteTable::build(&routes, "l", &pools());
    let with = |method| Req {
        method,
        ..Req::default()
    };
    assert_eq!(find(&t, &with("POST")), Some(0));
    assert_eq!(find(&t, &with("GET")), Some(1));
    assert_eq!(find(&t, &with("HEAD")), Some(1));
    assert_eq!(find(&t, &with("get")), None);
    assert_eq!(find(&t, &with("PUT")), None);
}

#[test]
fn header_exact_and_regex_names_any_case() {
    let routes = [
        RouteConfig {
            header: map(&[("X-Version", "2")]),
            ..to("a")
        },
        RouteConfig {
            header: map(&[("x-client", "~mobile-(ios|android)")]),
            ..to("b")
        },
        to("c"),
    ];
    let t = RouteTable::build(&routes, "l", &pools());
    assert_eq!(find(&t, &fields(&[("x-version", "2")])), Some(0));
    assert_eq!(find(&t, &fields(&[("X-VERSION", "2")])), Some(0));
    // Surrounding whitespace is not part of a value.
    assert_eq!(find(&t, &fields(&[("x-version", " 2 ")])), Some(0));
    assert_eq!(find(&t, &fields(&[("x-version", "20")])), Some(2));
    assert_eq!(find(&t, &fields(&[("X-Client", "mobile-ios")])), Some(1));
    // Whole value: a regex is anchored too.
    assert_eq!(
        find(&t, &fields(&[("x-client", "mobile-ios-beta")])),
        Some(2)
    );
    assert_eq!(find(&t, &fields(&[])), Some(2));
}

#[test]
fn header_any_of_several_fields() {
    let routes = [RouteConfig {
        header: map(&[("x-tag", "b")]),
        ..to("a")
    }];
    let t = RouteTable::build(&routes, "l", &pools());
    assert_eq!(
        find(&t, &fields(&[("x-tag", "a"), ("x-tag", "b")])),
        Some(0)
    );
    assert_eq!(find(&t, &fields(&[("x-tag", "a"), ("x-other", "b")])), None);
}

#[test]
fn exact_value_starting_with_tilde_via_regex() {
    let routes = [RouteConfig {
        header: map(&[("x", "~~v")]),
        ..to("a")
    }];
    let t = RouteTable::build(&routes, "l", &pools());
    assert_eq!(find(&t, &fields(&[("x", "~v")])), Some(0));
    assert_eq!(find(&t, &fields(&[("x", "v")])), None);
}

#[test]
fn cookie_exact_and_regex_across_fields() {
    let routes = [
        RouteConfig {
            cookie: map(&[("canary", "1")]),
            ..to("a")
        },
        RouteConfig {
            cookie: map(&[("session", "~[0-9a-f]{4}")]),
            ..to("b")
        },
    ];
    let t = RouteTable::build(&routes, "l", &pools());
    assert_eq!(find(&t, &fields(&[("cookie", "a=x; canary=1")])), Some(0));
    // HTTP/2 may split cookies over several fields.
    assert_eq!(
        find(&t, &fields(&[("cookie", "a=x"), ("Cookie", "canary=1")])),
        Some(0)
    );
    assert_eq!(find(&t, &fields(&[("cookie", "canary=10")])), None);
    // Cookie names are case-sensitive.
    assert_eq!(find(&t, &fields(&[("cookie", "Canary=1")])), None);
    assert_eq!(find(&t, &fields(&[("cookie", "session=beef")])), Some(1));
    assert_eq!(find(&t, &fields(&[("cookie", "session=beefy")])), None);
    // Not a cookie: a header of the same name.
    assert_eq!(find(&t, &fields(&[("canary", "1")])), None);
}

#[test]
fn query_raw_exact_and_regex() {
    let routes = [
        RouteConfig {
            query: map(&[("debug", "")]),
            ..to("a")
        },
        RouteConfig {
            query: map(&[("q", "a%20b")]),
            ..to("b")
        },
        RouteConfig {
            query: map(&[("page", r"~\d+")]),
            ..to("c")
        },
    ];
    let t = RouteTable::build(&routes, "l", &pools());
    assert_eq!(find(&t, &path("/?debug")), Some(0));
    assert_eq!(find(&t, &path("/?x=1&debug=")), Some(0));
    assert_eq!(find(&t, &path("/?debug=1")), None);
    // Raw, not percent-decoded.
    assert_eq!(find(&t, &path("/?q=a%20b")), Some(1));
    assert_eq!(find(&t, &path("/?q=a b")), None);
    assert_eq!(find(&t, &path("/x?page=12")), Some(2));
    assert_eq!(find(&t, &path("/x?page=1x")), None);
    assert_eq!(find(&t, &path("/x")), None);
    assert_eq!(find(&t, &path("/x?")), None);
}

#[test]
fn all_predicates_must_match_and_order_wins() {
    let routes = [
        RouteConfig {
            host: Some("x.com".into()),
            path_prefix: Some("/api/".into()),
            method: Some(MethodsConfig(vec!["POST".into()])),
            header: map(&[("x-v", "2")]),
            cookie: map(&[("c", "1")]),
            query: map(&[("q", "1")]),
            ..to("a")
        },
        RouteConfig {
            host: Some("x.com".into()),
            ..to("b")
        },
        RouteConfig {
            header: map(&[("x-v", "2")]),
            ..to("c")
        },
    ];
    let t = RouteTable::build(&routes, "l", &pools());
    let all = [("x-v", "2"), ("cookie", "c=1")];
    let full = Req {
        method: "POST",
        host: Some("X.com:80"),
        path: "/api/x?q=1",
        fields: &all,
    };
    assert_eq!(find(&t, &full), Some(0));
    assert_eq!(
        find(
            &t,
            &Req {
                method: "GET",
                ..full
            }
        ),
        Some(1)
    );
    assert_eq!(
        find(
            &t,
            &Req {
                path: "/api/x",
                ..full
            }
        ),
        Some(1)
    );
    assert_eq!(
        find(
            &t,
            &Req {
                path: "/x?q=1",
                ..full
            }
        ),
        Some(1)
    );
    let no_cookie = [("x-v", "2")];
    assert_eq!(
        find(
            &t,
            &Req {
                fields: &no_cookie,
                ..full
            }
        ),
        Some(1)
    );
    // Another host: the host route is out, the header-only catch-all is next.
    assert_eq!(
        find(
            &t,
            &Req {
                host: Some("y.com"),
                ..full
            }
        ),
        Some(2)
    );
    assert_eq!(
        find(
            &t,
            &Req {
                host: None,
                fields: &[],
                ..full
            }
        ),
        None
    );
}

#[test]
fn earlier_predicate_route_shadows_later_host_route() {
    let routes = [
        RouteConfig {
            header: map(&[("x-canary", "1")]),
            ..to("a")
        },
        RouteConfig {
            host: Some("x.com".into()),
            ..to("b")
        },
    ];
    let t = RouteTable::build(&routes, "l", &pools());
    let canary = [("x-canary", "1")];
    let req = Req {
        host: Some("x.com"),
        fields: &canary,
        ..Req::default()
    };
    assert_eq!(find(&t, &req), Some(0));
    assert_eq!(find(&t, &Req { fields: &[], ..req }), Some(1));
}

#[test]
fn no_headers_never_match_header_predicates() {
    let routes = [RouteConfig {
        header: map(&[("x", "~.*")]),
        ..to("a")
    }];
    let t = RouteTable::build(&routes, "l", &pools());
    let req = Request {
        method: "GET",
        host: None,
        path: "/",
        headers: &NoHeaders,
    };
    assert!(t.find(&req).is_none());
    assert!(format!("{req:?}").starts_with("Request { method: \"GET\""));
}
