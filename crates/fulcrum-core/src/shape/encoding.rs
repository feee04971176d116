//! Response compression decisions, pure: which coding a client's `Accept-Encoding`
//! takes (q-values honoured, ties to the route's order), and whether a response
//! may be compressed at all. The encoders themselves run in the runtime.

use std::borrow::Cow;

/// A content coding Fulcrum can apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coding {
    /// Zstandard (RFC 8878).
    Zstd,
    /// Brotli (RFC 7932).
    Br,
    /// gzip (RFC 1952).
    Gzip,
}

impl Coding {
    /// Its `Content-Encoding` token.
    pub fn token(self) -> &'static str {
        match self {
            Self::Zstd => "zstd",
            Self::Br => "br",
            Self::Gzip => "gzip",
        }
    }

    /// Its level when the route sets none: Caddy's defaults for gzip (5) and zstd
    /// (3); brotli at quality 4, a fast streaming setting (Caddy has no brotli).
    pub fn default_level(self) -> i32 {
        match self {
            Self::Zstd => 3,
            Self::Br => 4,
            Self::Gzip => 5,
        }
    }

    /// The levels a route may set: gzip 1 to 9, brotli 0 to 11, zstd 1 to 19.
    pub fn levels(self) -> std::ops::RangeInclusive<i32> {
        match self {
            Self::Zstd => 1..=19,
            Self::Br => 0..=11,
            Self::Gzip => 1..=9,
        }
    }

    /// The coding named `token` in a config.
    pub fn parse(token: &str) -> Option<Self> {
        match token {
            "zstd" => Some(Self::Zstd),
            "br" => Some(Self::Br),
            "gzip" => Some(Self::Gzip),
            _ => None,
        }
    }
}

/// A coding and its level, as a response is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Compression {
    /// The coding.
    pub coding: Coding,
    /// Its level.
    pub level: i32,
}

/// The q-value of one `coding;q=0.5` item (1 when absent, 0 when unreadable).
fn quality(params: &str) -> f32 {
    for p in params.split(';') {
        let p = p.trim();
        if let Some(q) = p.strip_prefix("q=").or_else(|| p.strip_prefix("Q=")) {
            return q
                .trim()
                .parse::<f32>()
                .ok()
                .filter(|q| (0.0..=1.0).contains(q))
                .unwrap_or(0.0);
        }
    }
    1.0
}

/// The coding of `offered` (in the route's order of preference) that the client's
/// `Accept-Encoding` fields rate highest, `None` when it takes none of them. A
/// coding the client names is rated by its q; one it does not name takes `*`'s q.
pub fn choose<'a>(accept: impl Iterator<Item = &'a [u8]>, offered: &[Coding]) -> Option<Coding> {
    let mut named: Vec<(Coding, f32)> = Vec::new();
    let mut star: Option<f32> = None;
    for value in accept {
        let Ok(value) = std::str::from_utf8(value) else {
            continue;
        };
        for item in value.split(',') {
            let (name, params) = item.split_once(';').unwrap_or((item, ""));
            let name = name.trim();
            let q = quality(params);
            if name == "*" {
                star = Some(q);
            } else if let Some(c) = offered
                .iter()
                .find(|c| c.token().eq_ignore_ascii_case(name))
            {
                named.push((*c, q));
            }
        }
    }
    let mut best: Option<(Coding, f32)> = None;
    for c in offered {
        let q = named
            .iter()
            .find(|(n, _)| n == c)
            .map(|(_, q)| *q)
            .or(star)
            .unwrap_or(0.0);
        if q > 0.0 && best.is_none_or(|(_, b)| q > b) {
            best = Some((*c, q));
        }
    }
    best.map(|(c, _)| c)
}

/// Content types compressed when a route lists none: text and the structured
/// formats that compress well; never images, video, archives or gRPC.
pub const DEFAULT_TYPES: &[&str] = &[
    "text/",
    "application/json",
    "application/javascript",
    "application/xml",
    "application/xhtml+xml",
    "application/rss+xml",
    "application/atom+xml",
    "application/wasm",
    "application/manifest+json",
    "application/ld+json",
    "application/x-ndjson",
    "image/svg+xml",
    "font/ttf",
    "font/otf",
];

/// What of a response decides whether it may be compressed.
#[derive(Clone, Copy, Debug, Default)]
pub struct Candidate<'a> {
    /// Its status.
    pub status: u16,
    /// `Content-Type`, when it has one.
    pub content_type: Option<&'a [u8]>,
    /// It has a `Content-Encoding` already.
    pub encoded: bool,
    /// It has `Content-Range` (a range response).
    pub ranged: bool,
    /// `Cache-Control: no-transform`.
    pub no_transform: bool,
    /// Its length, when known before the body.
    pub length: Option<u64>,
    /// A HEAD response (no body to compress).
    pub head: bool,
}

/// Whether the response may be compressed: a 200-class status with a body, not
/// encoded, not a range, not marked no-transform, of a listed type, and not known
/// to be smaller than `min_bytes`.
pub fn eligible(r: &Candidate<'_>, types: &[String], min_bytes: u64) -> bool {
    let status_ok = (200..300).contains(&r.status) && !matches!(r.status, 204 | 206);
    let Some(ct) = r.content_type.and_then(|c| std::str::from_utf8(c).ok()) else {
        return false;
    };
    let media = ct
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let listed = if types.is_empty() {
        DEFAULT_TYPES.iter().any(|t| media.starts_with(t))
            || media.ends_with("+json")
            || media.ends_with("+xml")
    } else {
        types.iter().any(|t| {
            let t = t.to_ascii_lowercase();
            if t.ends_with('/') {
                media.starts_with(&t)
            } else {
                media == t
            }
        })
    };
    status_ok
        && listed
        && !r.encoded
        && !r.ranged
        && !r.no_transform
        && !r.head
        && r.length.is_none_or(|n| n >= min_bytes)
}

/// An `ETag` for a compressed body: weak, since the bytes differ from the
/// backend's (RFC 9110 §8.8.3); a weak one stays as it is.
pub fn weaken_etag(value: &str) -> Cow<'_, str> {
    if value.starts_with("W/") {
        Cow::Borrowed(value)
    } else {
        Cow::Owned(format!("W/{value}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: &[Coding] = &[Coding::Zstd, Coding::Br, Coding::Gzip];

    fn pick(accept: &str, offered: &[Coding]) -> Option<Coding> {
        choose(std::iter::once(accept.as_bytes()), offered)
    }

    #[test]
    fn q_values_and_the_route_order_decide() {
        assert_eq!(pick("gzip, deflate, br, zstd", ALL), Some(Coding::Zstd));
        assert_eq!(pick("gzip, br", ALL), Some(Coding::Br));
        assert_eq!(pick("gzip;q=1, br;q=0.5", ALL), Some(Coding::Gzip));
        assert_eq!(pick("zstd;q=0, gzip;q=0.1", ALL), Some(Coding::Gzip));
        assert_eq!(pick("identity", ALL), None);
        assert_eq!(pick("", ALL), None);
        assert_eq!(pick("*", ALL), Some(Coding::Zstd));
        assert_eq!(pick("*;q=0.5, zstd;q=0", ALL), Some(Coding::Br));
        assert_eq!(pick("GZIP", &[Coding::Gzip]), Some(Coding::Gzip));
        assert_eq!(pick("br", &[Coding::Gzip]), None);
        assert_eq!(pick("gzip;q=2", ALL), None);
        let two = [b"gzip".as_slice(), b"br;q=0.9".as_slice()];
        assert_eq!(
            choose(two.into_iter(), &[Coding::Br, Coding::Gzip]),
            Some(Coding::Gzip)
        );
    }

    #[test]
    fn only_plain_whole_responses_of_listed_types_are_compressed() {
        let json = Candidate {
            status: 200,
            content_type: Some(b"application/json; charset=utf-8"),
            length: Some(20_000),
            ..Candidate::default()
        };
        assert!(eligible(&json, &[], 512));
        assert!(!eligible(
            &Candidate {
                length: Some(100),
                ..json
            },
            &[],
            512
        ));
        assert!(eligible(
            &Candidate {
                length: None,
                ..json
            },
            &[],
            512
        ));
        assert!(!eligible(
            &Candidate {
                encoded: true,
                ..json
            },
            &[],
            512
        ));
        assert!(!eligible(
            &Candidate {
                ranged: true,
                ..json
            },
            &[],
            512
        ));
        assert!(!eligible(
            &Candidate {
                status: 206,
                ..json
            },
            &[],
            512
        ));
        assert!(!eligible(
            &Candidate {
                status: 304,
                ..json
            },
            &[],
            512
        ));
        assert!(!eligible(
            &Candidate {
                no_transform: true,
                ..json
            },
            &[],
            512
        ));
        assert!(!eligible(&Candidate { head: true, ..json }, &[], 512));
        assert!(!eligible(
            &Candidate {
                content_type: Some(b"image/png"),
                ..json
            },
            &[],
            512
        ));
        assert!(!eligible(
            &Candidate {
                content_type: Some(b"application/grpc"),
                ..json
            },
            &[],
            512
        ));
        assert!(!eligible(
            &Candidate {
                content_type: None,
                ..json
            },
            &[],
            512
        ));
        assert!(eligible(
            &Candidate {
                content_type: Some(b"text/event-stream"),
                ..json
            },
            &[],
            512
        ));
        assert!(eligible(
            &Candidate {
                content_type: Some(b"application/problem+json"),
                ..json
            },
            &[],
            512
        ));
        let only_csv = ["text/csv".to_owned()];
        assert!(!eligible(&json, &only_csv, 512));
        assert!(eligible(
            &Candidate {
                content_type: Some(b"text/csv"),
                ..json
            },
            &only_csv,
            512
        ));
    }

    #[test]
    fn etags_are_weakened() {
        assert_eq!(weaken_etag("\"abc\""), "W/\"abc\"");
        assert_eq!(weaken_etag("W/\"abc\""), "W/\"abc\"");
    }
}
