//! Host names as routing compares them: port and one trailing dot removed,
//! ASCII case folded, wildcard patterns reduced to the suffix they require.
//!
//! Folding at lookup time never allocates: a host with uppercase letters is
//! copied into a caller's stack buffer and lowercased there.

/// Longest host name folded at lookup; DNS names are at most 253 bytes, so a
/// longer one cannot equal any sensible configured host.
pub(super) const MAX_HOST: usize = 255;

/// What a route's `host` requires, compiled from the config text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum HostPattern {
    /// The normalized name must equal this (lowercase).
    Exact(Box<str>),
    /// `*.example.com` stored as `example.com`: the name must end with `.`
    /// and this, with at least one label before it.
    Wildcard(Box<str>),
}

impl HostPattern {
    /// Compiles a config `host` value.
    pub(super) fn parse(pattern: &str) -> Self {
        match pattern.strip_prefix("*.") {
            Some(suffix) => Self::Wildcard(normalize(suffix).to_ascii_lowercase().into()),
            None => Self::Exact(normalize(pattern).to_ascii_lowercase().into()),
        }
    }
}

/// Drops a `:port` (any digits, possibly none) and one trailing dot.
/// `[::1]:8080` → `[::1]`, `Example.COM.:80` → `Example.COM`.
pub(super) fn normalize(host: &str) -> &str {
    let name = if host.starts_with('[') {
        // IPv6 literal: everything after `]` is the port.
        match host.find(']') {
            Some(end) => &host[..=end],
            None => host,
        }
    } else {
        match host.rfind(':') {
            Some(colon) if host[colon + 1..].bytes().all(|b| b.is_ascii_digit()) => &host[..colon],
            _ => host,
        }
    };
    name.strip_suffix('.').unwrap_or(name)
}

/// `host` in lowercase: `host` itself when it has no uppercase letter,
/// otherwise a lowercased copy in `buf`. `None` when it does not fit.
pub(super) fn fold<'a>(host: &'a str, buf: &'a mut [u8; MAX_HOST]) -> Option<&'a str> {
    // No early exit: a branch-free scan vectorizes, and hosts are short.
    let has_upper = host
        .bytes()
        .fold(false, |up, b| up | b.is_ascii_uppercase());
    if !has_upper {
        return Some(host);
    }
    let dst = buf.get_mut(..host.len())?;
    dst.copy_from_slice(host.as_bytes());
    dst.make_ascii_lowercase();
    // ASCII lowercasing keeps UTF-8 valid; the check cannot fail.
    std::str::from_utf8(dst).ok()
}

/// The suffixes a wildcard could require of `name`, shortest first, each with
/// its number of dots: `a.b.example.com` → (`com`, 0), (`example.com`, 1),
/// (`b.example.com`, 2). Each leaves at least one non-empty label in front.
pub(super) fn wildcard_suffixes(name: &str) -> impl Iterator<Item = (&str, usize)> {
    let bytes = name.as_bytes();
    let mut end = bytes.len();
    let mut dots = 0;
    std::iter::from_fn(move || loop {
        let at = bytes[..end].iter().rposition(|&b| b == b'.')?;
        end = at;
        let depth = dots;
        dots += 1;
        if at > 0 && at + 1 < bytes.len() {
            // `.` is ASCII, so `at + 1` is a char boundary.
            return Some((&name[at + 1..], depth));
        }
    })
}

/// One bit for a suffix of `dots` dots (63 and more share bit 63), so a
/// lookup can skip suffixes no wildcard has the depth of.
pub(super) fn depth_bit(dots: usize) -> u64 {
    1 << dots.min(63)
}

/// Number of dots in `name`.
pub(super) fn dots(name: &str) -> usize {
    name.bytes().filter(|&b| b == b'.').count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_strips_port_and_trailing_dot() {
        assert_eq!(normalize("example.com"), "example.com");
        assert_eq!(normalize("example.com:8080"), "example.com");
        assert_eq!(normalize("example.com:"), "example.com");
        assert_eq!(normalize("example.com."), "example.com");
        assert_eq!(normalize("example.com.:443"), "example.com");
        assert_eq!(normalize("[::1]:8080"), "[::1]");
        assert_eq!(normalize("[::1]"), "[::1]");
        assert_eq!(normalize("host:abc"), "host:abc");
    }

    #[test]
    fn fold_borrows_lowercase_and_copies_otherwise() {
        let mut buf = [0; MAX_HOST];
        let lower = "a.com";
        assert!(std::ptr::eq(fold(lower, &mut buf).unwrap(), lower));
        assert_eq!(fold("API.Example.com", &mut buf), Some("api.example.com"));
        let mut buf = [0; MAX_HOST];
        assert_eq!(fold(&"A".repeat(MAX_HOST + 1), &mut buf), None);
    }

    #[test]
    fn suffixes_leave_a_label_in_front() {
        let all: Vec<_> = wildcard_suffixes("a.b.example.com").collect();
        assert_eq!(all, [("com", 0), ("example.com", 1), ("b.example.com", 2)]);
        let all: Vec<_> = wildcard_suffixes(".a..b.").collect();
        assert_eq!(all, [("b.", 1), (".b.", 2)]);
        assert_eq!(wildcard_suffixes("localhost").count(), 0);
        assert_eq!(wildcard_suffixes(".com").count(), 0);
    }

    #[test]
    fn depth_bits() {
        assert_eq!(depth_bit(dots("com")), 1);
        assert_eq!(depth_bit(dots("example.com")), 2);
        assert_eq!(depth_bit(dots(&".".repeat(100))), 1 << 63);
    }

    #[test]
    fn patterns_are_lowercased() {
        assert_eq!(
            HostPattern::parse("*.Example.COM"),
            HostPattern::Wildcard("example.com".into())
        );
        assert_eq!(
            HostPattern::parse("API.example.com"),
            HostPattern::Exact("api.example.com".into())
        );
    }
}
