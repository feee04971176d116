//! CORS answered at the edge (the Fetch standard's CORS protocol): a preflight from
//! an allowed origin gets its 204 here and never costs a backend a request, and
//! actual responses carry the allow fields for allowed origins only. A backend's
//! own `Access-Control-*` fields on such a route are dropped, so the two can never
//! disagree (two `Access-Control-Allow-Origin` values fail in every browser).

use crate::config::CorsConfig;

/// One entry of `origins`.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Origin {
    /// `*`: any origin (never with credentials).
    Any,
    /// `https://app.example.com`, lowercase.
    Exact(Box<str>),
    /// `https://*.example.com`: the scheme and a host under the suffix (`.example.com`),
    /// with the port as written.
    Under { scheme: Box<str>, suffix: Box<str> },
}

/// A route's compiled CORS rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cors {
    origins: Vec<Origin>,
    methods: String,
    headers: String,
    expose: String,
    credentials: bool,
    max_age: Option<u64>,
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn origin(text: &str) -> Result<Origin, String> {
    if text == "*" {
        return Ok(Origin::Any);
    }
    let lower = text.to_ascii_lowercase();
    let Some((scheme, rest)) = lower.split_once("://") else {
        return Err(format!(
            "{text:?}: an origin is scheme://host[:port], or \"*\""
        ));
    };
    let bad = !matches!(scheme, "http" | "https")
        || rest.is_empty()
        || rest.ends_with('/')
        || rest
            .bytes()
            .any(|b| b"/?#@ ".contains(&b) || b.is_ascii_control());
    if bad {
        return Err(format!(
            "{text:?}: an origin is http(s)://host[:port], with no path"
        ));
    }
    match rest.strip_prefix('*') {
        Some(suffix) if suffix.starts_with('.') && !suffix.contains('*') && suffix.len() > 1 => {
            Ok(Origin::Under {
                scheme: format!("{scheme}://").into(),
                suffix: suffix.into(),
            })
        }
        Some(_) => Err(format!("{text:?}: a wildcard is one leading \"*.\"")),
        None if rest.contains('*') => Err(format!("{text:?}: a wildcard is one leading \"*.\"")),
        None => Ok(Origin::Exact(lower.into())),
    }
}

impl Cors {
    /// Compiles a route's `cors`; an error names the key under it and the reason.
    pub fn compile(cfg: &CorsConfig) -> Result<Self, (&'static str, String)> {
        if cfg.origins.is_empty() {
            return Err(("origins", "list at least one origin, or \"*\"".into()));
        }
        let origins = cfg
            .origins
            .iter()
            .map(|o| origin(o))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|why| ("origins", why))?;
        if cfg.credentials && origins.contains(&Origin::Any) {
            return Err((
                "origins",
                "\"*\" cannot be used with credentials = true (browsers refuse it): list the origins".into(),
            ));
        }
        for m in &cfg.methods {
            if !is_token(m) || m.bytes().any(|b| b.is_ascii_lowercase()) {
                return Err((
                    "methods",
                    format!("{m:?}: methods are uppercase tokens (\"GET\")"),
                ));
            }
        }
        for (key, list) in [("headers", &cfg.headers), ("expose", &cfg.expose)] {
            for h in list {
                if !is_token(h) {
                    return Err((key, format!("{h:?}: must be a field name")));
                }
                if h == "*" && cfg.credentials {
                    return Err((
                        key,
                        "\"*\" means no field with credentials = true: list them".into(),
                    ));
                }
            }
        }
        Ok(Self {
            origins,
            methods: cfg.methods.join(", "),
            headers: cfg.headers.join(", "),
            expose: cfg.expose.join(", "),
            credentials: cfg.credentials,
            max_age: cfg.max_age.map(|d| d.get().as_secs()),
        })
    }

    /// Whether `origin` (an `Origin` field's value) is allowed.
    pub fn allows(&self, origin: &[u8]) -> bool {
        let Ok(origin) = std::str::from_utf8(origin) else {
            return false;
        };
        let origin = origin.trim();
        self.origins.iter().any(|o| match o {
            Origin::Any => true,
            Origin::Exact(e) => origin.eq_ignore_ascii_case(e),
            Origin::Under { scheme, suffix } => {
                let lower = origin.to_ascii_lowercase();
                // A name under the suffix, and the port only as the pattern has it.
                lower.strip_prefix(&**scheme).is_some_and(|host| {
                    host.strip_suffix(&**suffix).is_some_and(|sub| {
                        !sub.is_empty()
                            && sub
                                .bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
                    })
                })
            }
        })
    }

    /// The `Access-Control-Allow-Origin` value for an allowed `origin`.
    fn allow_origin(&self, origin: &str) -> String {
        if !self.credentials && self.origins == [Origin::Any] {
            "*".into()
        } else {
            origin.trim().to_owned()
        }
    }

    /// The answer fields of a preflight from `origin`, when it is allowed.
    pub fn preflight(&self, origin: &[u8]) -> Option<Vec<(&'static str, String)>> {
        if !self.allows(origin) {
            return None;
        }
        let origin = std::str::from_utf8(origin).ok()?;
        let mut fields = vec![
            ("access-control-allow-origin", self.allow_origin(origin)),
            ("access-control-allow-methods", self.methods.clone()),
        ];
        if !self.headers.is_empty() {
            fields.push(("access-control-allow-headers", self.headers.clone()));
        }
        if self.credentials {
            fields.push(("access-control-allow-credentials", "true".into()));
        }
        if let Some(age) = self.max_age {
            fields.push(("access-control-max-age", age.to_string()));
        }
        fields.push((
            "vary",
            "Origin, Access-Control-Request-Method, Access-Control-Request-Headers".into(),
        ));
        Some(fields)
    }

    /// The fields added to an actual response for `origin` (`Vary: Origin` always:
    /// the answer depends on it, and a cache must not give one origin's to another).
    pub fn actual(&self, origin: Option<&[u8]>) -> Vec<(&'static str, String)> {
        let mut fields = vec![("vary", "Origin".to_owned())];
        let Some(origin) = origin.filter(|o| self.allows(o)) else {
            return fields;
        };
        let Ok(origin) = std::str::from_utf8(origin) else {
            return fields;
        };
        fields.push(("access-control-allow-origin", self.allow_origin(origin)));
        if self.credentials {
            fields.push(("access-control-allow-credentials", "true".into()));
        }
        if !self.expose.is_empty() {
            fields.push(("access-control-expose-headers", self.expose.clone()));
        }
        fields
    }
}

/// Whether a request is a CORS preflight: `OPTIONS` with `Origin` and
/// `Access-Control-Request-Method`.
pub fn is_preflight<'a>(
    method: &str,
    mut fields: impl Iterator<Item = (&'a [u8], &'a [u8])>,
) -> bool {
    method == "OPTIONS"
        && fields.any(|(n, _)| n.eq_ignore_ascii_case(b"access-control-request-method"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cors(origins: &[&str], credentials: bool) -> Cors {
        Cors::compile(&CorsConfig {
            origins: origins.iter().map(|s| (*s).to_owned()).collect(),
            methods: vec!["GET".into(), "PUT".into()],
            headers: vec!["Content-Type".into(), "X-Token".into()],
            expose: vec!["X-Total".into()],
            credentials,
            max_age: Some(crate::config::Duration(std::time::Duration::from_secs(600))),
        })
        .unwrap_or_else(|e| panic!("{e:?}"))
    }

    #[test]
    fn exact_and_wildcard_origins() {
        let c = cors(&["https://app.example.com", "https://*.example.org"], true);
        assert!(c.allows(b"https://app.example.com"));
        assert!(c.allows(b"HTTPS://APP.example.com"));
        assert!(!c.allows(b"http://app.example.com"));
        assert!(!c.allows(b"https://app.example.com.evil.test"));
        assert!(c.allows(b"https://a.example.org"));
        assert!(c.allows(b"https://a.b.example.org"));
        assert!(!c.allows(b"https://a.example.org:8443"));
        assert!(!c.allows(b"https://x/y.example.org"));
        assert!(!c.allows(b"https://example.org"));
        assert!(!c.allows(b"https://evilexample.org"));
        assert!(!c.allows(b"https://a.example.org.evil.test"));
        assert!(!c.allows(b"null"));
    }

    #[test]
    fn preflight_and_actual_fields() {
        let c = cors(&["https://app.example.com"], true);
        let p = c.preflight(b"https://app.example.com").unwrap_or_default();
        let get =
            |f: &[(&str, String)], n: &str| f.iter().find(|(k, _)| *k == n).map(|(_, v)| v.clone());
        assert_eq!(
            get(&p, "access-control-allow-origin").as_deref(),
            Some("https://app.example.com")
        );
        assert_eq!(
            get(&p, "access-control-allow-methods").as_deref(),
            Some("GET, PUT")
        );
        assert_eq!(
            get(&p, "access-control-allow-headers").as_deref(),
            Some("Content-Type, X-Token")
        );
        assert_eq!(
            get(&p, "access-control-allow-credentials").as_deref(),
            Some("true")
        );
        assert_eq!(get(&p, "access-control-max-age").as_deref(), Some("600"));
        assert_eq!(c.preflight(b"https://other.test"), None);
        let a = c.actual(Some(b"https://app.example.com"));
        assert_eq!(
            get(&a, "access-control-expose-headers").as_deref(),
            Some("X-Total")
        );
        assert_eq!(
            c.actual(Some(b"https://other.test")),
            vec![("vary", "Origin".to_owned())]
        );
        let any = Cors::compile(&CorsConfig {
            origins: vec!["*".into()],
            ..CorsConfig::default()
        })
        .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(
            get(
                &any.actual(Some(b"https://x.test")),
                "access-control-allow-origin"
            )
            .as_deref(),
            Some("*")
        );
    }

    #[test]
    fn bad_rules_are_refused() {
        let bad = |c: CorsConfig| Cors::compile(&c).err().map(|e| e.0);
        let base = CorsConfig {
            origins: vec!["https://a.test".into()],
            ..CorsConfig::default()
        };
        assert_eq!(
            bad(CorsConfig {
                origins: vec![],
                ..base.clone()
            }),
            Some("origins")
        );
        assert_eq!(
            bad(CorsConfig {
                origins: vec!["*".into()],
                credentials: true,
                ..base.clone()
            }),
            Some("origins")
        );
        for o in [
            "a.test",
            "ftp://a.test",
            "https://a.test/",
            "https://a.*.test",
            "https://*a.test",
        ] {
            assert_eq!(
                bad(CorsConfig {
                    origins: vec![o.into()],
                    ..base.clone()
                }),
                Some("origins"),
                "{o}"
            );
        }
        assert_eq!(
            bad(CorsConfig {
                methods: vec!["get".into()],
                ..base.clone()
            }),
            Some("methods")
        );
        assert_eq!(
            bad(CorsConfig {
                headers: vec!["a b".into()],
                ..base.clone()
            }),
            Some("headers")
        );
        assert_eq!(
            bad(CorsConfig {
                expose: vec!["*".into()],
                credentials: true,
                ..base
            }),
            Some("expose")
        );
    }

    #[test]
    fn preflights_are_options_with_a_request_method() {
        let f: &[(&[u8], &[u8])] = &[
            (b"origin", b"x"),
            (b"Access-Control-Request-Method", b"PUT"),
        ];
        assert!(is_preflight("OPTIONS", f.iter().copied()));
        assert!(!is_preflight("GET", f.iter().copied()));
        assert!(!is_preflight("OPTIONS", f[..1].iter().copied()));
    }
}
