//! The little of gRPC a proxy must speak: telling a gRPC request apart, reading its
//! `grpc-timeout`, answering its errors with a `grpc-status` its client understands
//! (as Envoy does), and the standard health-checking call (`grpc.health.v1.Health/
//! Check`) encoded and decoded by hand, so the proxy needs no protobuf library.

use std::time::Duration;

/// gRPC status codes Fulcrum answers with (a subset of the canonical codes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Code {
    /// The call's deadline passed.
    DeadlineExceeded = 4,
    /// Over a limit (body size, circuit limits).
    ResourceExhausted = 8,
    /// No such method here: no route matched.
    Unimplemented = 12,
    /// A proxy fault or a malformed request.
    Internal = 13,
    /// No backend could take the call; the client may retry.
    Unavailable = 14,
}

impl Code {
    /// The code for a response Fulcrum would have sent as HTTP `status`.
    pub fn for_http_status(status: u16) -> Self {
        match status {
            404 | 405 | 501 => Self::Unimplemented,
            413 | 429 | 431 => Self::ResourceExhausted,
            504 | 408 => Self::DeadlineExceeded,
            502 | 503 => Self::Unavailable,
            _ => Self::Internal,
        }
    }

    /// The decimal value for the `grpc-status` field.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DeadlineExceeded => "4",
            Self::ResourceExhausted => "8",
            Self::Unimplemented => "12",
            Self::Internal => "13",
            Self::Unavailable => "14",
        }
    }
}

/// Whether a request's `content-type` makes it a gRPC call.
pub fn is_grpc(content_type: &[u8]) -> bool {
    let ct = content_type.trim_ascii();
    ct.len() >= 16
        && ct[..16].eq_ignore_ascii_case(b"application/grpc")
        && matches!(ct.get(16), None | Some(b'+' | b';'))
}

/// A `grpc-timeout` value: at most 8 digits and a unit (`H`, `M`, `S`, `m`, `u`,
/// `n`). `None` for anything else, which the caller treats as no timeout.
pub fn parse_timeout(value: &[u8]) -> Option<Duration> {
    let (digits, unit) = value.split_at_checked(value.len().checked_sub(1)?)?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(match unit {
        b"H" => Duration::from_secs(n * 3600),
        b"M" => Duration::from_secs(n * 60),
        b"S" => Duration::from_secs(n),
        b"m" => Duration::from_millis(n),
        b"u" => Duration::from_micros(n),
        b"n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// The path of the standard health-checking call.
pub const HEALTH_CHECK_PATH: &str = "/grpc.health.v1.Health/Check";

/// A length-prefixed, uncompressed `HealthCheckRequest { service }`.
pub fn health_request(service: &str) -> Vec<u8> {
    let mut msg = Vec::with_capacity(service.len() + 8);
    if !service.is_empty() {
        msg.push(0x0a); // field 1, length-delimited
        put_varint(&mut msg, service.len() as u64);
        msg.extend_from_slice(service.as_bytes());
    }
    let mut framed = Vec::with_capacity(msg.len() + 5);
    framed.push(0);
    framed.extend_from_slice(&u32::try_from(msg.len()).unwrap_or(u32::MAX).to_be_bytes());
    framed.extend_from_slice(&msg);
    framed
}

/// Whether a length-prefixed `HealthCheckResponse` says `SERVING` (status 1).
/// `None` when the bytes are not one whole uncompressed message.
pub fn health_serving(body: &[u8]) -> Option<bool> {
    let (&flag, rest) = body.split_first()?;
    let (len, msg) = rest.split_at_checked(4)?;
    let len = u32::from_be_bytes(len.try_into().ok()?) as usize;
    if flag != 0 || msg.len() < len {
        return None;
    }
    let mut msg = msg.get(..len)?;
    let mut status = 0; // UNKNOWN when absent, as proto3 says
    while let Some((&key, rest)) = msg.split_first() {
        msg = rest;
        match key & 7 {
            0 => {
                let v = take_varint(&mut msg)?;
                if key >> 3 == 1 {
                    status = v;
                }
            }
            2 => {
                let n = usize::try_from(take_varint(&mut msg)?).ok()?;
                msg = msg.get(n..)?;
            }
            1 => msg = msg.get(8..)?,
            5 => msg = msg.get(4..)?,
            _ => return None,
        }
    }
    Some(status == 1)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn take_varint(buf: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = buf.split_first()?;
        *buf = rest;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_content_types() {
        assert!(is_grpc(b"application/grpc"));
        assert!(is_grpc(b"application/grpc+proto"));
        assert!(is_grpc(b"Application/GRPC; charset=x"));
        assert!(!is_grpc(b"application/grpc-web"));
        assert!(!is_grpc(b"application/json"));
        assert!(!is_grpc(b""));
    }

    #[test]
    fn timeouts() {
        assert_eq!(parse_timeout(b"100m"), Some(Duration::from_millis(100)));
        assert_eq!(parse_timeout(b"2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse_timeout(b"1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_timeout(b"5M"), Some(Duration::from_secs(300)));
        assert_eq!(
            parse_timeout(b"99999999n"),
            Some(Duration::from_nanos(99_999_999))
        );
        assert_eq!(parse_timeout(b"7u"), Some(Duration::from_micros(7)));
        for bad in [
            &b""[..],
            b"m",
            b"123456789m",
            b"10x",
            b"-1S",
            b"1.5S",
            b" 1S",
        ] {
            assert_eq!(parse_timeout(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn statuses_for_proxy_errors() {
        assert_eq!(Code::for_http_status(404), Code::Unimplemented);
        assert_eq!(Code::for_http_status(503), Code::Unavailable);
        assert_eq!(Code::for_http_status(502), Code::Unavailable);
        assert_eq!(Code::for_http_status(504), Code::DeadlineExceeded);
        assert_eq!(Code::for_http_status(413), Code::ResourceExhausted);
        assert_eq!(Code::for_http_status(400), Code::Internal);
        assert_eq!(Code::Unavailable.as_str(), "14");
    }

    #[test]
    fn health_messages() {
        assert_eq!(health_request(""), [0, 0, 0, 0, 0]);
        assert_eq!(
            health_request("a.B"),
            [0, 0, 0, 0, 5, 0x0a, 3, b'a', b'.', b'B']
        );
        // status = SERVING (1), NOT_SERVING (2), absent (UNKNOWN).
        assert_eq!(health_serving(&[0, 0, 0, 0, 2, 0x08, 1]), Some(true));
        assert_eq!(health_serving(&[0, 0, 0, 0, 2, 0x08, 2]), Some(false));
        assert_eq!(health_serving(&[0, 0, 0, 0, 0]), Some(false));
        // An unknown length-delimited field is skipped.
        assert_eq!(
            health_serving(&[0, 0, 0, 0, 5, 0x12, 1, b'x', 0x08, 1]),
            Some(true)
        );
        assert_eq!(health_serving(&[1, 0, 0, 0, 2, 0x08, 1]), None);
        assert_eq!(health_serving(&[0, 0, 0, 0, 3, 0x08, 1]), None);
        assert_eq!(health_serving(&[0, 0, 0]), None);
        assert_eq!(health_serving(&[0, 0, 0, 0, 2, 0x08, 0x80]), None);
    }
}
