//! The trailer section of a chunked body (RFC 9112 §7.1.2): every field parsed, none
//! dropped for lack of room (the chunked decoder already bounds the section's size),
//! a malformed line refused rather than skipped, and the fields that must not come
//! after a body (framing, routing, authentication, content metadata) kept out.

use super::chunked::ChunkError;
use crate::forward::{is_hop_by_hop, same_name};

/// One trailer field, borrowed from the section.
pub type Trailer<'a> = (&'a [u8], &'a [u8]);

/// Parses a trailer section (field lines, each ending in CRLF, without the final
/// empty line) into its fields, in order, forbidden ones removed.
pub fn parse_trailers(section: &[u8]) -> Result<Vec<Trailer<'_>>, ChunkError> {
    let mut out = Vec::new();
    let mut rest = section;
    while !rest.is_empty() {
        let end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or(ChunkError::Trailers)?;
        let (line, tail) = rest.split_at(end);
        rest = tail.get(2..).unwrap_or_default();
        let (name, value) = parse_line(line)?;
        if !is_forbidden_in_trailers(name) {
            out.push((name, value));
        }
    }
    Ok(out)
}

/// `name: value`, with a token name (no space before the colon, no obs-fold) and a
/// value of visible characters, spaces and tabs, trimmed.
fn parse_line(line: &[u8]) -> Result<Trailer<'_>, ChunkError> {
    let colon = line
        .iter()
        .position(|&b| b == b':')
        .ok_or(ChunkError::Trailers)?;
    let (name, value) = line.split_at(colon);
    let value = value.get(1..).unwrap_or_default();
    if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
        return Err(ChunkError::Trailers);
    }
    if value
        .iter()
        .any(|&b| !(b == b'\t' || b == b' ' || (0x21..=0x7e).contains(&b) || b >= 0x80))
    {
        return Err(ChunkError::Trailers);
    }
    Ok((name, super::head::trim(value)))
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Whether a field must not be taken from a trailer section: framing and
/// connection fields, routing (`Host`), and fields that describe how to read the
/// body, which has already been read (RFC 9110 §6.5.1).
pub fn is_forbidden_in_trailers(name: &[u8]) -> bool {
    const FORBIDDEN: [&[u8]; 8] = [
        b"content-length",
        b"transfer-encoding",
        b"host",
        b"connection",
        b"te",
        b"trailer",
        b"content-type",
        b"content-encoding",
    ];
    FORBIDDEN.iter().any(|f| same_name(name, f)) || is_hop_by_hop(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_is_kept_past_any_count() {
        let mut section = Vec::new();
        for i in 0..100 {
            section.extend_from_slice(format!("x-t{i}: v{i}\r\n").as_bytes());
        }
        let fields = parse_trailers(&section).unwrap();
        assert_eq!(fields.len(), 100);
        assert_eq!(fields[99], (&b"x-t99"[..], &b"v99"[..]));
    }

    #[test]
    fn values_are_trimmed_and_names_kept_as_sent() {
        let fields = parse_trailers(b"Grpc-Status:  0 \r\ngrpc-message:\r\n").unwrap();
        assert_eq!(
            fields,
            [
                (&b"Grpc-Status"[..], &b"0"[..]),
                (&b"grpc-message"[..], &b""[..])
            ]
        );
        assert!(parse_trailers(b"").unwrap().is_empty());
    }

    #[test]
    fn forbidden_fields_are_removed() {
        let fields = parse_trailers(
            b"content-length: 5\r\nHost: x\r\ntransfer_encoding: chunked\r\nx-ok: 1\r\n",
        )
        .unwrap();
        assert_eq!(fields, [(&b"x-ok"[..], &b"1"[..])]);
    }

    #[test]
    fn malformed_lines_are_refused() {
        for bad in [
            &b"no-colon\r\n"[..],
            b"x-a : 1\r\n",
            b": empty\r\n",
            b"x-a: 1\r\n folded\r\n",
            b"x-a: 1",
            b"x-a: a\x00b\r\n",
            b"x-a: a\rb\r\n",
            b"x-a: a\nb\r\n",
        ] {
            assert_eq!(parse_trailers(bad), Err(ChunkError::Trailers), "{bad:?}");
        }
    }
}
