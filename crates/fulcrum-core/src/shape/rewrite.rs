//! A route's path rewrite: `strip_prefix` then `rewrite = { regex, to }`, on the
//! normalized path, the result normalized again, so a capture or a replacement
//! cannot bring back a dot-segment or an empty one.

use regex::Regex;

use super::path::{self, EncodedSlashes};

/// A route's compiled rewrite.
#[derive(Clone, Debug)]
pub struct Rewrite {
    strip: Option<Box<str>>,
    regex: Option<(Regex, Box<str>)>,
}

impl Rewrite {
    /// Compiles a route's `strip_prefix` and `rewrite`; `None` when it has neither.
    /// An error names the key (`strip_prefix`, `rewrite.regex`, `rewrite.to`).
    pub fn compile(
        strip: Option<&str>,
        rewrite: Option<(&str, &str)>,
    ) -> Result<Option<Self>, (&'static str, String)> {
        if let Some(p) = strip {
            if !p.starts_with('/') || p.trim_end_matches('/').is_empty() {
                return Err((
                    "strip_prefix",
                    "must start with \"/\" and name at least one segment".into(),
                ));
            }
        }
        let regex = match rewrite {
            None => None,
            Some((re, to)) => {
                let re = Regex::new(re).map_err(|e| ("rewrite.regex", e.to_string()))?;
                if !to.starts_with('/') && !to.starts_with('$') {
                    return Err((
                        "rewrite.to",
                        "must start with \"/\" (or a capture that does)".into(),
                    ));
                }
                if to.contains('?') {
                    return Err((
                        "rewrite.to",
                        "the query is kept as the client sent it; write a path only".into(),
                    ));
                }
                Some((re, to.into()))
            }
        };
        Ok((strip.is_some() || regex.is_some()).then(|| Self {
            strip: strip.map(Into::into),
            regex,
        }))
    }

    /// The target (path and query) to send for the normalized `target`, when the
    /// rewrite changes it.
    pub fn apply(&self, target: &str) -> Option<String> {
        let mut out: Option<String> = None;
        if let Some(prefix) = &self.strip {
            out = path::strip_prefix(target, prefix);
        }
        if let Some((re, to)) = &self.regex {
            let current = out.as_deref().unwrap_or(target);
            let (p, query) = path::split_query(current);
            if re.is_match(p) {
                let mut new = re.replace(p, &**to).into_owned();
                if !new.starts_with('/') {
                    new.insert(0, '/');
                }
                new.push_str(query);
                out = Some(new);
            }
        }
        // Config text and captures of a normal path: only dot and empty segments
        // (a capture of `..`, a `to` of `/a//$1`) can need resolving.
        out.map(|t| match path::normalize(&t, EncodedSlashes::Keep) {
            Ok(n) => n.into_owned(),
            Err(_) => t,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rw(strip: Option<&str>, re: Option<(&str, &str)>) -> Rewrite {
        Rewrite::compile(strip, re)
            .unwrap_or_else(|e| panic!("{e:?}"))
            .unwrap_or_else(|| panic!("no rewrite"))
    }

    #[test]
    fn strip_then_regex() {
        let r = rw(Some("/api"), Some(("^/old/(.*)$", "/new/$1")));
        assert_eq!(r.apply("/api/old/x?q=1").as_deref(), Some("/new/x?q=1"));
        assert_eq!(r.apply("/api/y").as_deref(), Some("/y"));
        assert_eq!(r.apply("/apiy"), None);
        assert_eq!(r.apply("/old/z").as_deref(), Some("/new/z"));
    }

    #[test]
    fn a_capture_cannot_bring_back_a_dot_segment() {
        let r = rw(None, Some(("^/old(.*)$", "/new/$1")));
        // `/old..` is a normal path; its capture `..` would climb out of /new.
        assert_eq!(r.apply("/old..").as_deref(), Some("/"));
        assert_eq!(r.apply("/old/a").as_deref(), Some("/new/a"));
    }

    #[test]
    fn bad_rewrites_are_refused() {
        assert_eq!(
            Rewrite::compile(Some("api"), None).err().map(|e| e.0),
            Some("strip_prefix")
        );
        assert_eq!(
            Rewrite::compile(Some("/"), None).err().map(|e| e.0),
            Some("strip_prefix")
        );
        assert_eq!(
            Rewrite::compile(None, Some(("(", "/x"))).err().map(|e| e.0),
            Some("rewrite.regex")
        );
        assert_eq!(
            Rewrite::compile(None, Some(("a", "x"))).err().map(|e| e.0),
            Some("rewrite.to")
        );
        assert_eq!(
            Rewrite::compile(None, Some(("a", "/x?y")))
                .err()
                .map(|e| e.0),
            Some("rewrite.to")
        );
        assert!(matches!(Rewrite::compile(None, None), Ok(None)));
    }
}
