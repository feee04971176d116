//! The request target (RFC 9112 §3.2) and the one rule that keeps Fulcrum from being
//! an open forward proxy.

/// Where a request goes, from its target and Host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target<'a> {
    /// Host to route by and send as `Host` (empty when the client sent none).
    pub host: &'a str,
    /// Origin-form path and query.
    pub path: &'a str,
    /// The client sent absolute-form; only routes naming a host may take it.
    pub absolute: bool,
    /// The client's connection is TLS: `X-Forwarded-Proto: https`.
    pub secure: bool,
}

/// Why a request target was refused (each is a 400).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// The target is not UTF-8.
    #[error("target is not UTF-8")]
    NotUtf8,
    /// Neither origin-form nor an `http`/`https` absolute-form.
    #[error("unsupported request target")]
    Unsupported,
    /// Absolute-form with an empty authority or one carrying userinfo.
    #[error("invalid authority")]
    Authority,
}

impl TargetError {
    /// The reason as a static string, for an error that carries one.
    pub fn reason(self) -> &'static str {
        match self {
            Self::NotUtf8 => "target is not UTF-8",
            Self::Unsupported => "unsupported request target",
            Self::Authority => "invalid authority",
        }
    }
}

impl Target<'_> {
    /// `X-Forwarded-Proto` for this request.
    pub fn proto(&self) -> &'static str {
        if self.secure {
            "https"
        } else {
            "http"
        }
    }

    /// Whether a route may take this request: a full URL is only honoured by a route
    /// that names its host, so no configuration makes Fulcrum forward to a host the
    /// client chose.
    pub fn allowed_by(&self, route_names_host: bool) -> bool {
        !self.absolute || route_names_host
    }
}

/// Splits a request target; absolute-form's authority replaces the Host field
/// (RFC 9112 §3.2.2). `host` is the Host field's value, when there is one.
pub fn parse_target<'a>(raw: &'a [u8], host: Option<&'a [u8]>) -> Result<Target<'a>, TargetError> {
    let raw = std::str::from_utf8(raw).map_err(|_| TargetError::NotUtf8)?;
    if raw.starts_with('/') {
        let host = host.and_then(|h| std::str::from_utf8(h).ok()).unwrap_or("");
        return Ok(Target {
            host,
            path: raw,
            absolute: false,
            secure: false,
        });
    }
    let scheme_len = if starts_with_ignore_case(raw, "http://") {
        7
    } else if starts_with_ignore_case(raw, "https://") {
        8
    } else {
        return Err(TargetError::Unsupported);
    };
    let rest = raw.get(scheme_len..).unwrap_or("");
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    if authority.is_empty() || authority.contains('@') {
        return Err(TargetError::Authority);
    }
    if path.starts_with('?') {
        return Err(TargetError::Unsupported);
    }
    let path = if path.is_empty() { "/" } else { path };
    Ok(Target {
        host: authority,
        path,
        absolute: true,
        secure: false,
    })
}

fn starts_with_ignore_case(s: &str, prefix: &str) -> bool {
    s.as_bytes()
        .get(..prefix.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(prefix.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(raw: &str, host: Option<&str>) -> Target<'static> {
        let raw: &'static str = Box::leak(raw.to_owned().into_boxed_str());
        let host = host.map(|h| &*Box::leak(h.to_owned().into_boxed_str()));
        parse_target(raw.as_bytes(), host.map(str::as_bytes)).unwrap()
    }

    #[test]
    fn origin_form_takes_the_host_field() {
        let t = ok("/a?b=1", Some("example.com"));
        assert_eq!(
            (t.host, t.path, t.absolute),
            ("example.com", "/a?b=1", false)
        );
        assert_eq!(ok("/", None).host, "");
    }

    #[test]
    fn absolute_form_authority_replaces_host() {
        let t = ok("http://api.example.com:8080/x?y", Some("other"));
        assert_eq!(
            (t.host, t.path, t.absolute),
            ("api.example.com:8080", "/x?y", true)
        );
        assert_eq!(ok("HTTPS://a.example", None).path, "/");
        assert_eq!(ok("Http://a.example/p", None).host, "a.example");
    }

    #[test]
    fn refused_targets() {
        let err = |raw: &[u8]| parse_target(raw, None).unwrap_err();
        assert_eq!(err(b"*"), TargetError::Unsupported);
        assert_eq!(err(b"example.com:443"), TargetError::Unsupported);
        assert_eq!(err(b"ftp://x/"), TargetError::Unsupported);
        assert_eq!(err(b"http://"), TargetError::Authority);
        assert_eq!(err(b"http:///path"), TargetError::Authority);
        assert_eq!(err(b"http://user@host/"), TargetError::Authority);
        assert_eq!(err(b"http://host?q"), TargetError::Unsupported);
        assert_eq!(err(b"/\xff"), TargetError::NotUtf8);
        assert_eq!(err(b"http"), TargetError::Unsupported);
    }

    #[test]
    fn no_open_proxy() {
        let absolute = ok("http://anywhere.example/", None);
        assert!(!absolute.allowed_by(false));
        assert!(absolute.allowed_by(true));
        assert!(ok("/", Some("x")).allowed_by(false));
    }

    #[test]
    fn proto_follows_the_connection() {
        let mut t = ok("/", None);
        assert_eq!(t.proto(), "http");
        t.secure = true;
        assert_eq!(t.proto(), "https");
    }
}
