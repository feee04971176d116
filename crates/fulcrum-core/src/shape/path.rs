//! The one normal form of a request path. Routes match it and the backend receives
//! it (after the route's own rewrite), so nothing between the two reads the path
//! differently: the gap that let `/api/../admin` or `/api/%2e%2e/admin` pass a rule
//! for `/api` in other proxies (Traefik CVE-2025-32431, CVE-2025-66490).
//!
//! The form, computed once per request:
//! - percent-encoded unreserved characters (RFC 3986 §2.3: letters, digits, `-`,
//!   `.`, `_`, `~`) are decoded, the other escapes written with uppercase hex
//!   (§6.2.2); so `%2e%2e` is `..` before dot-segments are looked at, and no byte
//!   is decoded twice;
//! - an encoded `/` or `\` (`%2F`, `%5C`) and a raw `\` are refused (400) unless the
//!   listener keeps them (`encoded_slashes = "keep"`), in which case they are
//!   ordinary characters, never separators;
//! - runs of `/` become one (nginx's `merge_slashes`);
//! - `.` and `..` segments are resolved (§5.2.4); `..` never climbs above `/`;
//! - case is kept: paths are case-sensitive, as in nginx and every route predicate;
//! - the query is left as it came.

use std::borrow::Cow;

/// What to do with `%2F` and `%5C` (an encoded `/` or `\`) in a path.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EncodedSlashes {
    /// Refuse the request (400): a backend that decodes them could see other
    /// segments than the route did.
    #[default]
    Reject,
    /// Keep them encoded, as ordinary characters (APIs that carry `a%2Fb` in a segment).
    Keep,
}

/// Why a path was refused (each is a 400).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// `%` not followed by two hex digits.
    #[error("bad percent-encoding in the path")]
    BadEscape,
    /// `%2F`, `%5C` or `\` in the path.
    #[error("encoded slash or backslash in the path")]
    EncodedSlash,
}

impl PathError {
    /// The reason as a static string.
    pub fn reason(self) -> &'static str {
        match self {
            Self::BadEscape => "bad percent-encoding in the path",
            Self::EncodedSlash => "encoded slash or backslash in the path",
        }
    }
}

/// Splits an origin-form target into its path and its query (with the `?`, or empty).
pub fn split_query(target: &str) -> (&str, &str) {
    match target.find('?') {
        Some(q) => target.split_at(q),
        None => (target, ""),
    }
}

/// The normal form of `target` (path and query); borrowed when it already is.
pub fn normalize(target: &str, slashes: EncodedSlashes) -> Result<Cow<'_, str>, PathError> {
    let (path, query) = split_query(target);
    if !path.starts_with('/') || is_normal(path.as_bytes()) {
        return Ok(Cow::Borrowed(target));
    }
    let clean = unescape(path, slashes)?;
    let out = resolve(&clean, query);
    Ok(if out == target {
        Cow::Borrowed(target)
    } else {
        Cow::Owned(out)
    })
}

/// No escape, backslash, empty segment or dot-segment can be in `path`: nothing to do.
fn is_normal(path: &[u8]) -> bool {
    !path.iter().any(|&b| b == b'%' || b == b'\\')
        && !path
            .windows(2)
            .any(|w| w[0] == b'/' && (w[1] == b'/' || w[1] == b'.'))
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Escapes decoded where unreserved, upper-cased elsewhere; slashes as `slashes` says.
fn unescape(path: &str, slashes: EncodedSlashes) -> Result<String, PathError> {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'%' => {
                let hi = bytes.get(i + 1).copied().and_then(hex);
                let lo = bytes.get(i + 2).copied().and_then(hex);
                let (Some(hi), Some(lo)) = (hi, lo) else {
                    return Err(PathError::BadEscape);
                };
                let c = hi << 4 | lo;
                if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~') {
                    out.push(c);
                } else if matches!(c, b'/' | b'\\') && slashes == EncodedSlashes::Reject {
                    return Err(PathError::EncodedSlash);
                } else {
                    out.extend_from_slice(&[b'%', HEX[usize::from(hi)], HEX[usize::from(lo)]]);
                }
                i += 3;
            }
            b'\\' if slashes == EncodedSlashes::Reject => return Err(PathError::EncodedSlash),
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    // Only ASCII bytes were added or removed, so the text stays UTF-8.
    String::from_utf8(out).map_err(|_| PathError::BadEscape)
}

/// `path` (starting with `/`) with empty and dot-segments resolved, then `query`.
fn resolve(path: &str, query: &str) -> String {
    let mut kept: Vec<&str> = Vec::new();
    let mut trailing = false;
    for seg in path.split('/').skip(1) {
        trailing = matches!(seg, "" | "." | "..");
        match seg {
            "" | "." => {}
            ".." => {
                kept.pop();
            }
            s => kept.push(s),
        }
    }
    let mut out = String::with_capacity(path.len() + query.len());
    for seg in &kept {
        out.push('/');
        out.push_str(seg);
    }
    if kept.is_empty() || trailing {
        out.push('/');
    }
    out.push_str(query);
    out
}

/// `target` with `prefix` taken off its path, on a segment boundary only: `/api`
/// takes `/api` and `/api/x` but leaves `/apix`, so what remains always starts a
/// segment and cannot become a dot-segment (Traefik CVE-2026-48020). `None` when
/// the path does not start with the prefix.
pub fn strip_prefix(target: &str, prefix: &str) -> Option<String> {
    let prefix = prefix.trim_end_matches('/');
    if prefix.is_empty() {
        return None;
    }
    let (path, query) = split_query(target);
    let rest = path.strip_prefix(prefix)?;
    if rest.is_empty() {
        return Some(format!("/{query}"));
    }
    rest.starts_with('/').then(|| format!("{rest}{query}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(t: &str) -> String {
        normalize(t, EncodedSlashes::Reject)
            .map(Cow::into_owned)
            .unwrap_or_else(|e| format!("ERR {e}"))
    }

    #[test]
    fn normal_paths_are_borrowed() {
        for t in ["/", "/a/b", "/a/b/", "/a.b/c..d?x=/../", "/~u/x-y_z"] {
            assert!(
                matches!(normalize(t, EncodedSlashes::Reject), Ok(Cow::Borrowed(_))),
                "{t}"
            );
        }
    }

    #[test]
    fn dot_segments_resolve_and_never_climb_above_root() {
        assert_eq!(norm("/api/../admin"), "/admin");
        assert_eq!(norm("/api/./x"), "/api/x");
        assert_eq!(norm("/../../etc/passwd"), "/etc/passwd");
        assert_eq!(norm("/a/b/.."), "/a/");
        assert_eq!(norm("/a/b/."), "/a/b/");
        assert_eq!(norm("/.."), "/");
        assert_eq!(norm("/.well-known/x"), "/.well-known/x");
        assert_eq!(norm("/a/..?q=/../x"), "/?q=/../x");
    }

    #[test]
    fn encoded_dots_are_dots() {
        assert_eq!(norm("/api/%2e%2e/admin"), "/admin");
        assert_eq!(norm("/api/%2E./admin"), "/admin");
        assert_eq!(norm("/api/.%2e/admin"), "/admin");
        assert_eq!(norm("/%61pi/x"), "/api/x");
        assert_eq!(norm("/a%7eb"), "/a~b");
    }

    #[test]
    fn other_escapes_are_kept_in_upper_case() {
        assert_eq!(norm("/a%20b"), "/a%20b");
        assert_eq!(norm("/a%c3%a9"), "/a%C3%A9");
        assert_eq!(norm("/a%252e%252e/b"), "/a%252e%252e/b");
        assert_eq!(norm("/%00"), "/%00");
    }

    #[test]
    fn slashes_merge() {
        assert_eq!(norm("//admin"), "/admin");
        assert_eq!(norm("/api//x///y/"), "/api/x/y/");
    }

    #[test]
    fn encoded_slashes_are_refused_or_kept_whole() {
        assert_eq!(
            norm("/api/..%2fadmin"),
            "ERR encoded slash or backslash in the path"
        );
        assert_eq!(norm("/a%5Cb"), "ERR encoded slash or backslash in the path");
        assert_eq!(
            norm("/a\\..\\b"),
            "ERR encoded slash or backslash in the path"
        );
        let keep = |t| normalize(t, EncodedSlashes::Keep).map(Cow::into_owned);
        // Kept, an encoded slash is no separator: `..%2Fadmin` is one segment.
        assert_eq!(keep("/api/..%2fadmin"), Ok("/api/..%2Fadmin".into()));
        assert_eq!(
            keep("/projects/a%2Fb/x/../y"),
            Ok("/projects/a%2Fb/y".into())
        );
    }

    #[test]
    fn bad_escapes_are_refused() {
        for t in ["/a%", "/a%2", "/a%zz", "/a%2g"] {
            assert_eq!(norm(t), "ERR bad percent-encoding in the path", "{t}");
        }
    }

    #[test]
    fn case_is_kept() {
        assert_eq!(norm("/API/./X"), "/API/X");
    }

    #[test]
    fn normalizing_twice_changes_nothing() {
        for t in ["/a/../b//c/./%2e%2E/d%7e?x", "/x/%41/..", "//", "/a%2x"] {
            if let Ok(once) = normalize(t, EncodedSlashes::Reject) {
                let twice = normalize(&once, EncodedSlashes::Reject);
                assert_eq!(twice.as_deref(), Ok(&*once), "{t}");
            }
        }
    }

    #[test]
    fn prefixes_strip_on_segment_boundaries() {
        assert_eq!(
            strip_prefix("/api/v1/x?q", "/api").as_deref(),
            Some("/v1/x?q")
        );
        assert_eq!(strip_prefix("/api", "/api").as_deref(), Some("/"));
        assert_eq!(strip_prefix("/api?q=1", "/api/").as_deref(), Some("/?q=1"));
        assert_eq!(strip_prefix("/apix/y", "/api"), None);
        assert_eq!(strip_prefix("/api..", "/api"), None);
        assert_eq!(strip_prefix("/other", "/api"), None);
    }
}
