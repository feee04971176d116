//! Values with placeholders (`"{scheme}://{host}{path}"`), parsed once with the
//! config and filled per request. The set of placeholders is small and fixed, so
//! an unknown one is a config error rather than text sent on.

use std::fmt::Write as _;
use std::net::IpAddr;

/// A placeholder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Var {
    /// The client's address (after the PROXY protocol and trusted proxies).
    ClientIp,
    /// The request's host, port included when the client sent one.
    Host,
    /// The request ID (empty when the listener sets none).
    RequestId,
    /// `http` or `https`, as the client connected.
    Scheme,
    /// The matched route's name (its index when unnamed).
    Route,
    /// The normalized path, without the query.
    Path,
    /// The query with its `?`, or nothing.
    Query,
}

impl Var {
    fn name(self) -> &'static str {
        match self {
            Self::ClientIp => "client_ip",
            Self::Host => "host",
            Self::RequestId => "request_id",
            Self::Scheme => "scheme",
            Self::Route => "route",
            Self::Path => "path",
            Self::Query => "query",
        }
    }
}

/// The placeholders of header values.
pub const HEADER_VARS: &[Var] = &[
    Var::ClientIp,
    Var::Host,
    Var::RequestId,
    Var::Scheme,
    Var::Route,
];

/// The placeholders of a redirect's `to`.
pub const REDIRECT_VARS: &[Var] = &[
    Var::ClientIp,
    Var::Host,
    Var::RequestId,
    Var::Scheme,
    Var::Route,
    Var::Path,
    Var::Query,
];

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Text(Box<str>),
    Var(Var),
}

/// A parsed value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

/// What one request fills a template with.
#[derive(Clone, Copy, Debug)]
pub struct Vars<'a> {
    /// `{client_ip}`.
    pub client_ip: IpAddr,
    /// `{host}`.
    pub host: &'a str,
    /// `{request_id}`.
    pub request_id: &'a str,
    /// `{scheme}`.
    pub scheme: &'a str,
    /// `{route}`.
    pub route: &'a str,
    /// `{path}` and `{query}`: the normalized target, split at `?`.
    pub target: &'a str,
}

impl Template {
    /// Parses `text`, whose placeholders must be among `allowed`; `{{` and `}}`
    /// are literal braces.
    pub fn parse(text: &str, allowed: &[Var]) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut rest = text;
        while let Some(i) = rest.find(['{', '}']) {
            lit.push_str(&rest[..i]);
            let tail = &rest[i..];
            if let Some(t) = tail.strip_prefix("{{") {
                lit.push('{');
                rest = t;
            } else if let Some(t) = tail.strip_prefix("}}") {
                lit.push('}');
                rest = t;
            } else if tail.starts_with('}') {
                return Err("a lone \"}\": write \"}}\" for a literal brace".into());
            } else {
                let Some(end) = tail.find('}') else {
                    return Err("an unclosed \"{\": write \"{{\" for a literal brace".into());
                };
                let name = &tail[1..end];
                let Some(var) = allowed.iter().find(|v| v.name() == name) else {
                    let names: Vec<String> = allowed
                        .iter()
                        .map(|v| format!("{{{}}}", v.name()))
                        .collect();
                    return Err(format!(
                        "unknown placeholder {{{name}}} (placeholders: {})",
                        names.join(", ")
                    ));
                };
                if !lit.is_empty() {
                    parts.push(Part::Text(std::mem::take(&mut lit).into()));
                }
                parts.push(Part::Var(*var));
                rest = &tail[end + 1..];
            }
        }
        lit.push_str(rest);
        if !lit.is_empty() {
            parts.push(Part::Text(lit.into()));
        }
        Ok(Self { parts })
    }

    /// The text, when the template has no placeholder.
    pub fn fixed(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [] => Some(""),
            [Part::Text(t)] => Some(t),
            _ => None,
        }
    }

    /// Appends the value for `vars` to `out`.
    pub fn render_into(&self, vars: &Vars<'_>, out: &mut String) {
        let (path, query) = super::path::split_query(vars.target);
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Var(Var::ClientIp) => {
                    let _ = write!(out, "{}", vars.client_ip);
                }
                Part::Var(Var::Host) => out.push_str(vars.host),
                Part::Var(Var::RequestId) => out.push_str(vars.request_id),
                Part::Var(Var::Scheme) => out.push_str(vars.scheme),
                Part::Var(Var::Route) => out.push_str(vars.route),
                Part::Var(Var::Path) => out.push_str(path),
                Part::Var(Var::Query) => out.push_str(query),
            }
        }
    }

    /// The value for `vars`.
    pub fn render(&self, vars: &Vars<'_>) -> String {
        let mut out = String::new();
        self.render_into(vars, &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vars<'static> {
        Vars {
            client_ip: IpAddr::from([192, 0, 2, 7]),
            host: "www.example.com:8443",
            request_id: "r1",
            scheme: "https",
            route: "api",
            target: "/a/b?x=1",
        }
    }

    #[test]
    fn placeholders_are_filled() {
        let t = Template::parse(
            "{scheme}://example.com{path}{query} {client_ip} {route} {request_id} {host}",
            REDIRECT_VARS,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            t.render(&vars()),
            "https://example.com/a/b?x=1 192.0.2.7 api r1 www.example.com:8443"
        );
        let q = Template::parse("{path}|{query}|", REDIRECT_VARS).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            q.render(&Vars {
                target: "/p",
                ..vars()
            }),
            "/p||"
        );
    }

    #[test]
    fn braces_escape_and_fixed_values_are_known() {
        let t = Template::parse("{{\"a\": 1}}", HEADER_VARS).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.fixed(), Some("{\"a\": 1}"));
        assert_eq!(
            Template::parse("{host}", HEADER_VARS).map(|t| t.fixed().is_none()),
            Ok(true)
        );
    }

    #[test]
    fn unknown_and_unclosed_placeholders_are_refused() {
        assert_eq!(
            Template::parse("{path}", HEADER_VARS),
            Err("unknown placeholder {path} (placeholders: {client_ip}, {host}, {request_id}, {scheme}, {route})".into())
        );
        assert!(Template::parse("a{host", HEADER_VARS).is_err());
        assert!(Template::parse("a}b", HEADER_VARS).is_err());
    }
}
