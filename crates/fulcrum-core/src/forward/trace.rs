//! Request IDs and W3C trace context (<https://www.w3.org/TR/trace-context/>): what
//! a client may bring, what Fulcrum keeps of it, and what it sends on.

/// A `traceparent`: the trace, the caller's span in it, and its flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceParent {
    /// The trace (never all zero).
    pub trace_id: [u8; 16],
    /// The span that sent the request (never all zero).
    pub parent_id: [u8; 8],
    /// Trace flags; bit 0 is "sampled".
    pub flags: u8,
}

/// Length of a version-00 `traceparent` value.
pub const TRACEPARENT_LEN: usize = 55;

impl TraceParent {
    /// Reads a `traceparent` value. A version other than 00 is read by its first
    /// four fields, as the specification asks; anything malformed is `None` (and a
    /// new trace is started, as if none had come).
    pub fn parse(v: &[u8]) -> Option<Self> {
        // Optional whitespace around a field value; httparse has refused CR and LF.
        let v = v.trim_ascii();
        let version = hex_array::<1>(v.get(0..2)?)?[0];
        if version == 0xff
            || (version == 0 && v.len() != TRACEPARENT_LEN)
            || v.len() < TRACEPARENT_LEN
            || (v.len() > TRACEPARENT_LEN && v.get(TRACEPARENT_LEN) != Some(&b'-'))
        {
            return None;
        }
        if v.get(2) != Some(&b'-') || v.get(35) != Some(&b'-') || v.get(52) != Some(&b'-') {
            return None;
        }
        let trace_id = hex_array::<16>(v.get(3..35)?)?;
        let parent_id = hex_array::<8>(v.get(36..52)?)?;
        let flags = hex_array::<1>(v.get(53..55)?)?[0];
        if trace_id == [0; 16] || parent_id == [0; 8] {
            return None;
        }
        Some(Self {
            trace_id,
            parent_id,
            flags,
        })
    }

    /// Whether the caller sampled (recorded) this trace.
    pub fn sampled(&self) -> bool {
        self.flags & 1 == 1
    }

    /// The version-00 value naming `span` as the parent, with `sampled`.
    pub fn child(&self, span: [u8; 8], sampled: bool) -> [u8; TRACEPARENT_LEN] {
        let mut out = [b'-'; TRACEPARENT_LEN];
        out[0..2].copy_from_slice(b"00");
        hex_into(&mut out[3..35], &self.trace_id);
        hex_into(&mut out[36..52], &span);
        let flags = (self.flags & !1) | u8::from(sampled);
        hex_into(&mut out[53..55], &[flags]);
        out
    }
}

/// Whether `trace_id` falls within `ppm` parts per million of all traces: decided
/// by the trace ID alone, so every instance of a fleet decides alike.
pub fn sampled_by_ratio(trace_id: &[u8; 16], ppm: u32) -> bool {
    let mut low = [0u8; 8];
    low.copy_from_slice(&trace_id[8..]);
    let x = u64::from_be_bytes(low);
    // x / 2^64 < ppm / 10^6, without overflow.
    u128::from(x) * 1_000_000 < u128::from(ppm) << 64
}

/// Longest request ID kept from a client.
pub const MAX_REQUEST_ID: usize = 128;

/// A client's request ID, when it is one worth keeping: 1 to 128 visible ASCII
/// bytes (no space, nothing a log or a header could read differently).
pub fn valid_request_id(v: &[u8]) -> bool {
    (1..=MAX_REQUEST_ID).contains(&v.len()) && v.iter().all(|b| b.is_ascii_graphic())
}

/// Lowercase hex of `bytes` into `out` (twice as long).
pub fn hex_into(out: &mut [u8], bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(b >> 4)];
        pair[1] = DIGITS[usize::from(b & 15)];
    }
}

fn hex_array<const N: usize>(text: &[u8]) -> Option<[u8; N]> {
    if text.len() != 2 * N {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; N];
    for (o, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        *o = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

/// A plain `http://host:port/path` URL (the OTLP endpoint): host, port and path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpUrl {
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    /// Port (80 when the URL names none).
    pub port: u16,
    /// Path, `/` at least.
    pub path: String,
}

/// Reads `http://host[:port][/path]`; a reason when it is not one.
pub fn parse_http_url(url: &str) -> Result<HttpUrl, String> {
    let rest = url.strip_prefix("http://").ok_or_else(|| {
        format!("{url:?}: expected an http:// URL such as \"http://127.0.0.1:4318\"")
    })?;
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("{url:?}: unclosed [ in the host"))?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() || host.contains(['@', ' ']) {
        return Err(format!("{url:?}: no host"));
    }
    let port = match port {
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("{url:?}: invalid port {p:?}"))?,
        None => 80,
    };
    if path.bytes().any(|b| !b.is_ascii_graphic()) {
        return Err(format!("{url:?}: invalid path"));
    }
    Ok(HttpUrl {
        host: host.to_owned(),
        port,
        path: path.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &[u8] = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn reads_the_specification_example() {
        let tp = TraceParent::parse(GOOD).expect("valid");
        assert_eq!(tp.trace_id[0], 0x4b);
        assert_eq!(tp.parent_id[7], 0xb7);
        assert!(tp.sampled());
        let again = tp.child(tp.parent_id, true);
        assert_eq!(&again[..], GOOD);
        let child = tp.child([1, 2, 3, 4, 5, 6, 7, 8], false);
        assert_eq!(
            &child[..],
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-0102030405060708-00"
        );
    }

    #[test]
    fn refuses_what_the_specification_refuses() {
        let bad: &[&[u8]] = &[
            b"",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
            b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            b"00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            b"00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
        ];
        for v in bad {
            assert_eq!(
                TraceParent::parse(v),
                None,
                "{}",
                String::from_utf8_lossy(v)
            );
        }
        // A later version may add fields after a dash.
        assert!(TraceParent::parse(
            b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes"
        )
        .is_some());
        assert!(
            TraceParent::parse(b" 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 ")
                .is_some()
        );
    }

    #[test]
    fn ratio_sampling_follows_the_share() {
        let ids = (0u64..10_000).map(|i| {
            let mut id = [7u8; 16];
            id[8..].copy_from_slice(&i.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_be_bytes());
            id
        });
        let kept = ids.filter(|id| sampled_by_ratio(id, 100_000)).count();
        assert!((800..1200).contains(&kept), "{kept} of 10,000 at 10%");
        assert!(sampled_by_ratio(&[0xff; 16], 1_000_000));
        assert!(!sampled_by_ratio(&[0; 16], 0));
    }

    #[test]
    fn request_ids() {
        assert!(valid_request_id(b"5f2b-aa"));
        assert!(!valid_request_id(b""));
        assert!(!valid_request_id(b"a b"));
        assert!(!valid_request_id(b"a\"\n"));
        assert!(!valid_request_id(&[b'a'; 129]));
    }

    #[test]
    fn otlp_urls() {
        let u = parse_http_url("http://127.0.0.1:4318").expect("valid");
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("127.0.0.1", 4318, "/")
        );
        let u = parse_http_url("http://[::1]:4318/v1/traces").expect("valid");
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("::1", 4318, "/v1/traces")
        );
        assert_eq!(parse_http_url("http://collector").map(|u| u.port), Ok(80));
        for bad in [
            "https://x:4318",
            "http://:4318",
            "http://x:0",
            "http://x:99999",
            "x",
        ] {
            assert!(parse_http_url(bad).is_err(), "{bad}");
        }
    }
}
