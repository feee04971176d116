//! Tests of the route predicates' rules: forms, regexes, methods and names.

use super::tests::{errors, parse_ok, BASE};
use super::MethodsConfig;

/// `BASE` plus one more route with `body` (then `pool = "api"`), which starts on line 10.
fn route(body: &str) -> String {
    format!("{BASE}[[routes]]\n{body}\npool = \"api\"\n")
}

#[test]
fn every_predicate_parses() {
    let text = route(
        "path_regex = '/u/\\d+'\nmethod = [\"GET\", \"HEAD\"]\n\
         header = { X-Version = \"2\", x-client = \"~mobile-.*\" }\n\
         cookie = { canary = \"1\" }\nquery = { debug = \"\" }",
    );
    let config = parse_ok(&text);
    let r = &config.routes[1];
    assert_eq!(r.path_regex.as_deref(), Some("/u/\\d+"));
    assert_eq!(
        r.method,
        Some(MethodsConfig(vec!["GET".into(), "HEAD".into()]))
    );
    assert_eq!(r.header["X-Version"], "2");
    assert_eq!(r.header["x-client"], "~mobile-.*");
    assert_eq!(r.cookie["canary"], "1");
    assert_eq!(r.query["debug"], "");
    let config = parse_ok(&route(
        "method = \"POST\"\npath = \"/x\"\npath_regex = \"/x\"",
    ));
    assert_eq!(
        config.routes[1].method,
        Some(MethodsConfig(vec!["POST".into()]))
    );
}

#[test]
fn bad_regexes_are_reported_on_their_key() {
    let text = route(
        "path_regex = \"(\"\nheader = { x-a = \"~[\" }\ncookie = { c = \"~a{99999999}\" }\n\
         query = { q = \"~)\" }",
    );
    assert_eq!(
        errors(&text),
        [
            "f.toml:10: routes[1].path_regex: invalid regex: unclosed group",
            "f.toml:11: routes[1].header.x-a: invalid regex: unclosed character class",
            "f.toml:12: routes[1].cookie.c: invalid regex: larger than 1048576 bytes \
             once compiled",
            "f.toml:13: routes[1].query.q: invalid regex: unopened group",
        ]
    );
}

#[test]
fn methods_are_uppercase_tokens() {
    assert_eq!(
        errors(&route("method = [\"get\", \"GE T\", \"PATCH\"]")),
        [
            "f.toml:10: routes[1].method: methods are case-sensitive: write \"GET\"",
            "f.toml:10: routes[1].method: invalid method \"GE T\"",
        ]
    );
    assert_eq!(
        errors(&route("method = []")),
        ["f.toml:10: routes[1].method: must name at least one method"]
    );
    let wrong = errors(&route("method = 5"));
    assert_eq!(wrong.len(), 1, "{wrong:#?}");
    assert!(wrong[0].contains("a list of methods"), "{wrong:#?}");
}

#[test]
fn names_are_checked() {
    let text = route(
        "header = { \"x y\" = \"1\", Host = \"a\" }\ncookie = { \"a;b\" = \"1\" }\n\
         query = { \"a&b\" = \"1\" }",
    );
    assert_eq!(
        errors(&text),
        [
            "f.toml:10: routes[1].header.Host: use the route's host key to match the host",
            "f.toml:10: routes[1].header.\"x y\": invalid header name \"x y\"",
            "f.toml:11: routes[1].cookie.\"a;b\": invalid cookie name \"a;b\"",
            "f.toml:12: routes[1].query.\"a&b\": invalid query parameter name \"a&b\": \
             must be non-empty, without &, =, # or spaces",
        ]
    );
}
