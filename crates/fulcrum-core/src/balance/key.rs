//! What consistent hashing hashes: `hash_key = "client_ip" | "header:NAME" |
//! "cookie:NAME" | "query:NAME" | "jwt:CLAIM" | "path"`, read from a request
//! without copying (but for a JWT claim, which is decoded).
//!
//! The bytes hashed are specified so every Fulcrum agrees: the client address as its
//! 4 or 16 octets, a header's value as received (first occurrence), a cookie's value,
//! a query parameter's raw value (not percent-decoded), the path without its query,
//! a claim's text as [`crate::jwt::claim_text`] gives it (a string without quotes,
//! the JSON text of a number or boolean; other values count as no key).

use std::net::IpAddr;
use std::sync::Arc;

use crate::jwt::{claim_text, Claims};

use super::stable_hash;

/// The request attribute a pool hashes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HashKey {
    /// The client's IP address.
    ClientIp,
    /// A request header's value (name stored lowercase).
    Header(String),
    /// A cookie's value.
    Cookie(String),
    /// A query parameter's value.
    Query(String),
    /// A claim of the bearer token in `Authorization`.
    Jwt(String),
    /// The path, without the query.
    Path,
}

impl HashKey {
    /// Parses a `hash_key` value.
    pub fn parse(s: &str) -> Result<Self, String> {
        let named = |kind: &str, name: &str| {
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && b != b'=' && b != b';')
            {
                Err(format!("{kind} name missing or invalid in \"{s}\""))
            } else {
                Ok(name.to_owned())
            }
        };
        match s.split_once(':') {
            None if s == "client_ip" => Ok(Self::ClientIp),
            None if s == "path" => Ok(Self::Path),
            Some(("header", name)) => Ok(Self::Header(named("header", name)?.to_ascii_lowercase())),
            Some(("cookie", name)) => Ok(Self::Cookie(named("cookie", name)?)),
            Some(("query", name)) => Ok(Self::Query(named("query", name)?)),
            Some(("jwt", "")) => Err(format!("claim name missing in \"{s}\"")),
            Some(("jwt", claim)) => Ok(Self::Jwt(claim.to_owned())),
            _ => Err(format!(
                "unknown hash key \"{s}\" (expected client_ip, header:NAME, cookie:NAME, query:NAME, jwt:CLAIM or path)"
            )),
        }
    }

    /// The fleet-stable hash of this key in a request, `None` when the request lacks it.
    ///
    /// `target` is the origin-form target (path and query); `header` returns the first
    /// value of a header by lowercase name. A `jwt:CLAIM` key needs
    /// [`HashKey::hash_with_claims`]; here it is always missing.
    pub fn hash<'a>(
        &self,
        client: IpAddr,
        target: &'a str,
        header: impl Fn(&str) -> Option<&'a [u8]>,
    ) -> Option<u64> {
        self.hash_with_claims(client, target, header, || None)
    }

    /// As [`HashKey::hash`], with `claims` giving the request's token claims
    /// (called only for a `jwt:CLAIM` key; `None` when the token is missing or,
    /// with a key configured, does not verify).
    pub fn hash_with_claims<'a>(
        &self,
        client: IpAddr,
        target: &'a str,
        header: impl Fn(&str) -> Option<&'a [u8]>,
        claims: impl FnOnce() -> Option<Arc<Claims>>,
    ) -> Option<u64> {
        match self {
            Self::ClientIp => Some(match client {
                IpAddr::V4(v4) => stable_hash(&v4.octets()),
                IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                    Some(v4) => stable_hash(&v4.octets()),
                    None => stable_hash(&v6.octets()),
                },
            }),
            Self::Path => Some(stable_hash(
                target.split('?').next().unwrap_or(target).as_bytes(),
            )),
            Self::Header(name) => header(name).map(stable_hash),
            Self::Cookie(name) => cookie(header("cookie")?, name.as_bytes()).map(stable_hash),
            Self::Query(name) => {
                let query = target.split_once('?')?.1;
                query
                    .split('&')
                    .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
                    .find(|(k, _)| k.as_bytes() == name.as_bytes())
                    .map(|(_, v)| stable_hash(v.as_bytes()))
            }
            Self::Jwt(claim) => {
                let claims = claims()?;
                claim_text(claims.get(claim)?).map(|text| stable_hash(text.as_bytes()))
            }
        }
    }
}

/// The value of cookie `name` in a `Cookie` header (`a=1; b=2`).
fn cookie<'a>(header: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    header.split(|&b| b == b';').find_map(|pair| {
        let pair = pair.trim_ascii();
        let eq = pair.iter().position(|&b| b == b'=')?;
        let (k, v) = pair.split_at(eq);
        (k.trim_ascii() == name).then(|| v.get(1..).unwrap_or_default().trim_ascii())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 1, 2, 3));

    fn none(_: &str) -> Option<&'static [u8]> {
        None
    }

    #[test]
    fn parses_every_form_and_refuses_others() {
        assert_eq!(HashKey::parse("client_ip"), Ok(HashKey::ClientIp));
        assert_eq!(HashKey::parse("path"), Ok(HashKey::Path));
        assert_eq!(
            HashKey::parse("header:X-User"),
            Ok(HashKey::Header("x-user".into()))
        );
        assert_eq!(
            HashKey::parse("cookie:sid"),
            Ok(HashKey::Cookie("sid".into()))
        );
        assert_eq!(HashKey::parse("query:u"), Ok(HashKey::Query("u".into())));
        assert_eq!(HashKey::parse("jwt:sub"), Ok(HashKey::Jwt("sub".into())));
        for bad in ["", "ip", "header:", "cookie:a b", "query:", "jwt", "jwt:"] {
            assert!(HashKey::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hashes_are_fixed_across_builds() {
        // Pinned: a change here breaks fleet agreement with running instances.
        assert_eq!(
            HashKey::ClientIp.hash(IP, "/", none),
            Some(stable_hash(&[10, 1, 2, 3]))
        );
        assert_eq!(
            stable_hash(b"fulcrum"),
            xxhash_rust::xxh3::xxh3_64_with_seed(b"fulcrum", 0x6675_6c63_7275_6d31)
        );
    }

    #[test]
    fn mapped_v6_hashes_as_v4() {
        let v6: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        assert_eq!(
            HashKey::ClientIp.hash(v6, "/", none),
            HashKey::ClientIp.hash(IP, "/", none)
        );
    }

    #[test]
    fn reads_path_query_header_and_cookie() {
        fn headers(n: &str) -> Option<&'static [u8]> {
            match n {
                "x-user" => Some(b"alice"),
                "cookie" => Some(b"theme=dark; sid=abc ; x=1"),
                _ => None,
            }
        }
        let h =
            |k: &str, target: &'static str| HashKey::parse(k).unwrap().hash(IP, target, headers);
        assert_eq!(h("path", "/a/b?x=1"), Some(stable_hash(b"/a/b")));
        assert_eq!(h("query:u", "/a?x=1&u=42"), Some(stable_hash(b"42")));
        assert_eq!(h("query:u", "/a?x=1"), None);
        assert_eq!(h("query:u", "/a"), None);
        assert_eq!(h("header:X-User", "/"), Some(stable_hash(b"alice")));
        assert_eq!(h("header:x-missing", "/"), None);
        assert_eq!(h("cookie:sid", "/"), Some(stable_hash(b"abc")));
        assert_eq!(h("cookie:nope", "/"), None);
    }

    #[test]
    fn hashes_claim_text() {
        let claims: Claims =
            serde_json::from_str(r#"{"sub":"alice","uid":42,"ok":true,"r":["a"]}"#).unwrap();
        let claims = Arc::new(claims);
        let h = |k: &str| {
            HashKey::parse(k)
                .unwrap()
                .hash_with_claims(IP, "/", none, || Some(claims.clone()))
        };
        assert_eq!(h("jwt:sub"), Some(stable_hash(b"alice")));
        assert_eq!(h("jwt:uid"), Some(stable_hash(b"42")));
        assert_eq!(h("jwt:ok"), Some(stable_hash(b"true")));
        assert_eq!(h("jwt:r"), None);
        assert_eq!(h("jwt:missing"), None);
        assert_eq!(HashKey::Jwt("sub".into()).hash(IP, "/", none), None);
    }
}
