//! Route predicates beyond host and path: `path_regex`, `method`, `header`,
//! `cookie`, `query` and `jwt_claim`, compiled once when the table is built.
//!
//! Matching never allocates: headers are read through [`Headers`], cookies are
//! split out of the `cookie` fields in place and the query out of the target.
//! Every regex is anchored at both ends (`\A(?:…)\z`): it must match the whole
//! path or value, as an exact value would.
//!
//! When a name occurs more than once (several header fields, cookies or query
//! parameters of that name), the predicate holds if any one of them matches.

use std::sync::Arc;

use regex::bytes::{Regex, RegexBuilder};
use serde_json::Value as Json;

use crate::config::RouteConfig;
use crate::jwt::{claim_text, JwtKey, RequestTokens};

/// Read access to a request's header fields, h1 or h2 alike, without allocating.
pub trait Headers {
    /// Calls `each` with the value of every field named `name` (given in
    /// lowercase; field names compare ASCII case-insensitively), in order,
    /// until it returns `true`. Returns whether one did.
    fn any(&self, name: &str, each: &mut dyn FnMut(&[u8]) -> bool) -> bool;
}

/// A request without header fields.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoHeaders;

impl Headers for NoHeaders {
    fn any(&self, _: &str, _: &mut dyn FnMut(&[u8]) -> bool) -> bool {
        false
    }
}

/// Fields as `(name, value)` byte pairs, as the HTTP/1.1 codec gives them:
/// `Fields(head.fields(buf))`. The iterator is cloned for each lookup.
#[derive(Clone, Debug)]
pub struct Fields<I>(pub I);

impl<'f, I> Headers for Fields<I>
where
    I: Iterator<Item = (&'f [u8], &'f [u8])> + Clone,
{
    fn any(&self, name: &str, each: &mut dyn FnMut(&[u8]) -> bool) -> bool {
        self.0
            .clone()
            .any(|(n, v)| n.eq_ignore_ascii_case(name.as_bytes()) && each(v))
    }
}

/// What a request must be for a route with extra predicates to match it.
#[derive(Clone, Debug)]
pub(super) struct Predicates {
    path_regex: Option<Regex>,
    /// Empty: any method.
    methods: Box<[Box<str>]>,
    /// Lowercase names.
    headers: Box<[(Box<str>, Value)]>,
    cookies: Box<[(Box<str>, Value)]>,
    query: Box<[(Box<str>, Value)]>,
    /// Claims of the verified bearer token.
    jwt: Box<[(Box<str>, Value)]>,
    /// Verifies tokens for `jwt`; without it no `jwt` predicate holds.
    jwt_key: Option<Arc<JwtKey>>,
    /// `jwt_required`: a token that does not verify matches `jwt` anyway, so the
    /// request stays on this route and is answered 401 there.
    jwt_required: bool,
}

/// The parts of a request the predicates read.
pub(super) struct Matching<'a> {
    pub(super) method: &'a str,
    /// Path without the query.
    pub(super) path: &'a str,
    /// Text after the first `?`, if any.
    pub(super) query: Option<&'a str>,
    pub(super) headers: &'a dyn Headers,
    /// The request's token, decoded on first use; `None`: no `jwt_claim` holds.
    pub(super) tokens: Option<&'a RequestTokens>,
}

impl Predicates {
    /// The extra predicates of `cfg`, or `None` when it has none. `Err` when a
    /// regex does not compile (validation reports it first). `jwt_key` verifies
    /// tokens for `jwt_claim` (built from `cfg.jwt_secret` when not given).
    pub(super) fn build(
        cfg: &RouteConfig,
        jwt_key: Option<Arc<JwtKey>>,
    ) -> Result<Option<Self>, regex::Error> {
        let none = cfg.path_regex.is_none()
            && cfg.method.is_none()
            && cfg.header.is_empty()
            && cfg.cookie.is_empty()
            && cfg.query.is_empty()
            && cfg.jwt_claim.is_empty()
            && !cfg.jwt_required;
        if none {
            return Ok(None);
        }
        let pairs = |map: &std::collections::BTreeMap<String, String>, lower: bool| {
            map.iter()
                .map(|(name, value)| {
                    let name = if lower {
                        name.to_ascii_lowercase()
                    } else {
                        name.clone()
                    };
                    Ok((name.into_boxed_str(), Value::parse(value)?))
                })
                .collect::<Result<Box<[_]>, regex::Error>>()
        };
        Ok(Some(Self {
            path_regex: cfg.path_regex.as_deref().map(full_regex).transpose()?,
            methods: cfg
                .method
                .iter()
                .flat_map(|m| &m.0)
                .map(|m| m.as_str().into())
                .collect(),
            headers: pairs(&cfg.header, true)?,
            cookies: pairs(&cfg.cookie, false)?,
            query: pairs(&cfg.query, false)?,
            jwt: pairs(&cfg.jwt_claim, false)?,
            jwt_required: cfg.jwt_required,
            jwt_key: jwt_key.or_else(|| {
                let secret = cfg.jwt_secret.as_ref()?;
                Some(Arc::new(JwtKey::hs256(secret.expose().as_bytes())))
            }),
        }))
    }

    /// Whether every predicate holds for `m`; cheap ones are checked first.
    pub(super) fn matches(&self, m: &Matching<'_>) -> bool {
        (self.methods.is_empty() || self.methods.iter().any(|x| **x == *m.method))
            && self
                .query
                .iter()
                .all(|(name, v)| query_values(m.query, name).any(|q| v.matches(q)))
            && self
                .headers
                .iter()
                .all(|(name, v)| m.headers.any(name, &mut |h| v.matches(h.trim_ascii())))
            && self.cookies.iter().all(|(name, v)| {
                m.headers.any("cookie", &mut |h| {
                    cookie_values(h, name.as_bytes()).any(|c| v.matches(c))
                })
            })
            && self
                .path_regex
                .as_ref()
                .is_none_or(|r| r.is_match(m.path.as_bytes()))
            && (self.jwt.is_empty()
                || self.jwt_matches(m)
                || (self.jwt_required && !self.token_verifies(m)))
    }

    /// Whether the request's token verifies with this route's key.
    fn token_verifies(&self, m: &Matching<'_>) -> bool {
        let (Some(tokens), Some(key)) = (m.tokens, &self.jwt_key) else {
            return false;
        };
        tokens.claims(m.headers, Some(key)).is_some()
    }

    /// Whether the request's token verifies with this route's key and every
    /// `jwt_claim` holds. A claim that is an array holds if one element does.
    fn jwt_matches(&self, m: &Matching<'_>) -> bool {
        let (Some(tokens), Some(key)) = (m.tokens, &self.jwt_key) else {
            return false;
        };
        let Some(claims) = tokens.claims(m.headers, Some(key)) else {
            return false;
        };
        let holds = |v: &Value, claim: &Json| {
            claim_text(claim).is_some_and(|text| v.matches(text.as_bytes()))
        };
        self.jwt.iter().all(|(name, v)| match claims.get(&**name) {
            Some(Json::Array(items)) => items.iter().any(|item| holds(v, item)),
            Some(claim) => holds(v, claim),
            None => false,
        })
    }
}

/// A value predicate: exact bytes, or `~regex` over the whole value.
#[derive(Clone, Debug)]
enum Value {
    Exact(Box<[u8]>),
    Regex(Regex),
}

impl Value {
    fn parse(text: &str) -> Result<Self, regex::Error> {
        Ok(match text.strip_prefix('~') {
            Some(pattern) => Self::Regex(full_regex(pattern)?),
            None => Self::Exact(text.as_bytes().into()),
        })
    }

    fn matches(&self, value: &[u8]) -> bool {
        match self {
            Self::Exact(want) => **want == *value,
            Self::Regex(r) => r.is_match(value),
        }
    }
}

/// Compiles `pattern` to match whole inputs only. Also used by validation, so
/// what it accepts is exactly what the table compiles.
pub(crate) fn full_regex(pattern: &str) -> Result<Regex, regex::Error> {
    // A group keeps `a|b` from binding to the anchors; flags set inside the
    // user's pattern stay inside it.
    RegexBuilder::new(&format!(r"\A(?:{pattern})\z"))
        .size_limit(1 << 20)
        .build()
}

/// Whether `value` of a `header`, `cookie` or `query` predicate is a valid
/// exact value or `~regex`; the regex error otherwise.
pub(crate) fn check_value(value: &str) -> Result<(), regex::Error> {
    Value::parse(value).map(drop)
}

/// Values of the cookies named `name` in one `cookie` field (`a=1; b=2`), raw:
/// surrounding spaces trimmed, quotes kept.
pub(super) fn cookie_values<'h>(
    field: &'h [u8],
    name: &'h [u8],
) -> impl Iterator<Item = &'h [u8]> + 'h {
    field.split(|&b| b == b';').filter_map(move |pair| {
        let pair = pair.trim_ascii();
        let eq = pair.iter().position(|&b| b == b'=')?;
        let (k, v) = pair.split_at(eq);
        (k.trim_ascii() == name).then(|| v.get(1..).unwrap_or_default().trim_ascii())
    })
}

/// Raw (not percent-decoded) values of the parameters named `name` in a query
/// string; a parameter without `=` has the empty value.
pub(super) fn query_values<'q>(
    query: Option<&'q str>,
    name: &'q str,
) -> impl Iterator<Item = &'q [u8]> + 'q {
    query
        .unwrap_or_default()
        .split('&')
        .filter(|pair| !pair.is_empty())
        .filter_map(move |pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k == name).then_some(v.as_bytes())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_parsing() {
        let all = |field: &'static str, name: &'static str| -> Vec<&'static [u8]> {
            cookie_values(field.as_bytes(), name.as_bytes()).collect()
        };
        assert_eq!(all("a=1; b=2", "b"), [b"2"]);
        assert_eq!(all(" a = 1 ;b=2;", "a"), [b"1"]);
        assert_eq!(all("a=1; a=2", "a"), [b"1", b"2"]);
        assert_eq!(all("a=\"q\"", "a"), [b"\"q\""]);
        assert_eq!(all("a=x=y", "a"), [b"x=y"]);
        assert_eq!(all("a", "a"), Vec::<&[u8]>::new());
        assert_eq!(all("a=", "a"), [b""]);
        assert_eq!(all("ab=1", "a"), Vec::<&[u8]>::new());
    }

    #[test]
    fn query_parsing() {
        let all = |q: Option<&'static str>, name: &'static str| -> Vec<&'static [u8]> {
            query_values(q, name).collect()
        };
        assert_eq!(all(Some("a=1&b=2"), "b"), [b"2"]);
        assert_eq!(all(Some("a&a=2&&"), "a"), [&b""[..], b"2"]);
        assert_eq!(all(Some("a=x=y"), "a"), [b"x=y"]);
        assert_eq!(all(Some("A=1"), "a"), Vec::<&[u8]>::new());
        assert_eq!(all(None, "a"), Vec::<&[u8]>::new());
    }
}
