//! Rules for the route predicates beyond host and path: regexes compile exactly as
//! the route table will compile them, methods and names are tokens.

use super::Checker;
use crate::config::locate::KeyPath;
use crate::config::RouteConfig;
use crate::route::predicate;

/// Checks `path_regex`, `method`, `header`, `cookie` and `query` of one route.
pub(super) fn check(c: &mut Checker<'_>, path: &KeyPath, route: &RouteConfig) {
    if let Some(pattern) = &route.path_regex {
        if let Err(e) = predicate::full_regex(pattern) {
            c.report(path.key("path_regex"), regex_reason(&e));
        }
    }
    if let Some(methods) = &route.method {
        if methods.0.is_empty() {
            c.report(path.key("method"), "must name at least one method");
        }
        for method in &methods.0 {
            if !is_token(method) {
                c.report(path.key("method"), format!("invalid method {method:?}"));
            } else if method.bytes().any(|b| b.is_ascii_lowercase()) {
                // Methods are case-sensitive (RFC 9110 §9.1): uppercasing "get" would
                // quietly stop it matching a client that really sends "get".
                c.report(
                    path.key("method"),
                    format!(
                        "methods are case-sensitive: write {:?}",
                        method.to_ascii_uppercase()
                    ),
                );
            }
        }
    }
    for (kind, map) in [
        ("header", &route.header),
        ("cookie", &route.cookie),
        ("query", &route.query),
    ] {
        for (name, value) in map {
            let at = path.key(kind).key(name);
            if let Some(why) = name_problem(kind, name) {
                c.report(at.clone(), why);
            }
            if let Err(e) = predicate::check_value(value) {
                c.report(at, regex_reason(&e));
            }
        }
    }
}

/// Why `name` cannot be a `kind` predicate's name, if it cannot.
fn name_problem(kind: &str, name: &str) -> Option<String> {
    match kind {
        "header" if name.eq_ignore_ascii_case("host") => {
            Some("use the route's host key to match the host".into())
        }
        "header" | "cookie" if !is_token(name) => Some(format!("invalid {kind} name {name:?}")),
        "query"
            if name.is_empty()
                || name
                    .chars()
                    .any(|ch| matches!(ch, '&' | '=' | '#') || ch.is_whitespace() || ch.is_control()) =>
        {
            Some(format!(
                "invalid query parameter name {name:?}: must be non-empty, without &, =, # or spaces"
            ))
        }
        _ => None,
    }
}

/// An RFC 9110 token: the syntax of methods, header names and cookie names.
pub(super) fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A one-line reason: the regex crate's syntax errors span several lines (the
/// pattern, a caret, then the message), of which the message is kept.
pub(super) fn regex_reason(e: &regex::Error) -> String {
    if let regex::Error::CompiledTooBig(limit) = e {
        return format!("invalid regex: larger than {limit} bytes once compiled");
    }
    let text = e.to_string();
    let message = text
        .lines()
        .find_map(|line| line.strip_prefix("error: "))
        .unwrap_or(&text);
    format!("invalid regex: {message}")
}
