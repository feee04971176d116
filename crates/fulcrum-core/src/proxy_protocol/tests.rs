//! Version selection, the writers and their round trips, and the helpers that
//! `v1_tests.rs` and `v2_tests.rs` share for the byte-level rules.

use super::*;
use std::net::{Ipv4Addr, SocketAddrV6};

/// The header parsed from exactly `raw`, which must be complete and consume all of it.
pub(super) fn header(raw: &[u8], version: Version) -> Header {
    match parse(raw, version) {
        Ok(Some(h)) => {
            assert_eq!(h.len, raw.len(), "{:?}", String::from_utf8_lossy(raw));
            h
        }
        other => panic!("{:?}: {other:?}", String::from_utf8_lossy(raw)),
    }
}

/// The addresses of a complete header.
pub(super) fn addresses(raw: &[u8], version: Version) -> Option<(SocketAddr, SocketAddr)> {
    header(raw, version).addresses
}

/// The error for `raw`, which must be refused.
pub(super) fn error(raw: &[u8], version: Version) -> Error {
    match parse(raw, version) {
        Err(e) => e,
        other => panic!("{:?} accepted: {other:?}", String::from_utf8_lossy(raw)),
    }
}

/// `raw` is refused with `want`, and stays refused (with some error) however many
/// bytes follow: an error never turns into "need more" or a header.
pub(super) fn refused(raw: &[u8], version: Version, want: Error) {
    assert_eq!(
        error(raw, version),
        want,
        "{:?}",
        String::from_utf8_lossy(raw)
    );
    for tail in [&b"\r\n"[..], b" 1 2\r\n", &[0; 300]] {
        let mut more = raw.to_vec();
        more.extend_from_slice(tail);
        assert!(
            parse(&more, version).is_err(),
            "{:?} + {tail:?}",
            String::from_utf8_lossy(raw)
        );
    }
}

/// Every strict prefix of the valid header `raw` is "need more", never an error and
/// never a header, and the whole parses to `raw.len()`; payload after it is left alone.
pub(super) fn prefixes_need_more(raw: &[u8], version: Version) {
    for end in 0..raw.len() {
        assert_eq!(
            parse(&raw[..end], version),
            Ok(None),
            "{:?} cut at {end}",
            String::from_utf8_lossy(raw)
        );
    }
    let h = header(raw, version);
    let mut with_payload = raw.to_vec();
    with_payload.extend_from_slice(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(parse(&with_payload, version), Ok(Some(h)));
}

pub(super) fn v4(a: [u8; 4], port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::from(a)), port)
}

pub(super) fn v6(text: &str, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V6(text.parse().unwrap()), port)
}

#[test]
fn empty_input_needs_more() {
    assert_eq!(parse(b"", Version::V1), Ok(None));
    assert_eq!(parse(b"", Version::V2), Ok(None));
}

#[test]
fn a_listener_refuses_the_other_version_from_its_first_byte() {
    let mut v2 = Vec::new();
    write_v2(&mut v2, v4([1, 2, 3, 4], 1), v4([5, 6, 7, 8], 2), false);
    let mut v1 = Vec::new();
    write_v1(&mut v1, v4([1, 2, 3, 4], 1), v4([5, 6, 7, 8], 2));
    let on_v1 = Error::WrongVersion {
        expected: Version::V1,
        found: Version::V2,
    };
    let on_v2 = Error::WrongVersion {
        expected: Version::V2,
        found: Version::V1,
    };
    for end in 1..=v2.len() {
        refused(&v2[..end], Version::V1, on_v1.clone());
    }
    for end in 1..=v1.len() {
        refused(&v1[..end], Version::V2, on_v2.clone());
    }
    assert_eq!(
        on_v2.to_string(),
        "PROXY protocol v1 header on a listener configured for v2"
    );
}

#[test]
fn max_len_bounds_every_header() {
    assert_eq!(Version::V1.max_len(), 107);
    assert_eq!(Version::V2.max_len(), 65_551);
}

#[test]
fn error_messages_name_the_version() {
    assert_eq!(
        Error::V1Port.to_string(),
        "bad PROXY v1 header: port is not a decimal 0-65535 without leading zeros"
    );
    assert_eq!(
        Error::V2Length { len: 11, need: 12 }.to_string(),
        "bad PROXY v2 header: length 11 is shorter than the 12-byte address block"
    );
    assert_eq!(
        Error::V2Family(0x13).to_string(),
        "bad PROXY v2 header: unknown address family and transport 0x13"
    );
}

#[test]
fn v1_writer_output_is_the_spec_text() {
    let mut out = b"kept".to_vec();
    write_v1(
        &mut out,
        v4([192, 0, 2, 1], 56324),
        v4([198, 51, 100, 2], 443),
    );
    assert_eq!(out, b"keptPROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n");

    let mut out = Vec::new();
    write_v1(&mut out, v6("2001:db8::1", 0), v6("::1", 65535));
    assert_eq!(out, b"PROXY TCP6 2001:db8::1 ::1 0 65535\r\n");
}

#[test]
fn v2_writer_output_is_the_spec_layout() {
    let mut out = b"kept".to_vec();
    write_v2(
        &mut out,
        v4([192, 0, 2, 1], 56324),
        v4([10, 0, 0, 2], 443),
        false,
    );
    let mut want = b"kept\r\n\r\n\0\r\nQUIT\n".to_vec();
    want.extend_from_slice(&[0x21, 0x11, 0, 12, 192, 0, 2, 1, 10, 0, 0, 2]);
    want.extend_from_slice(&56324u16.to_be_bytes());
    want.extend_from_slice(&443u16.to_be_bytes());
    assert_eq!(out, want);

    let mut out = Vec::new();
    write_v2(&mut out, v6("::1", 1), v6("::2", 2), true);
    assert_eq!(&out[12..16], &[0x21, 0x22, 0, 36]);
    assert_eq!(out.len(), 16 + 36);
}

#[test]
fn round_trips_keep_addresses_and_ports() {
    let pairs = [
        (v4([192, 0, 2, 1], 56324), v4([198, 51, 100, 2], 443)),
        (v4([0, 0, 0, 0], 0), v4([255, 255, 255, 255], 65535)),
        (v6("2001:db8::1", 1234), v6("2001:db8::2", 80)),
        (
            v6("::", 0),
            v6("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535),
        ),
        (v6("::ffff:1.2.3.4", 7), v6("fe80::1", 8)),
    ];
    for (src, dst) in pairs {
        let mut out = Vec::new();
        write_v1(&mut out, src, dst);
        assert_eq!(
            addresses(&out, Version::V1),
            Some((src, dst)),
            "{src} {dst}"
        );
        prefixes_need_more(&out, Version::V1);
        for datagram in [false, true] {
            let mut out = Vec::new();
            write_v2(&mut out, src, dst, datagram);
            assert_eq!(
                addresses(&out, Version::V2),
                Some((src, dst)),
                "{src} {dst}"
            );
            prefixes_need_more(&out, Version::V2);
        }
    }
}

#[test]
fn mixed_families_are_written_v4_mapped() {
    let (src, dst) = (v4([192, 0, 2, 1], 1000), v6("2001:db8::2", 443));
    let mapped = v6("::ffff:192.0.2.1", 1000);
    let mut out = Vec::new();
    write_v1(&mut out, src, dst);
    assert_eq!(out, b"PROXY TCP6 ::ffff:192.0.2.1 2001:db8::2 1000 443\r\n");
    assert_eq!(addresses(&out, Version::V1), Some((mapped, dst)));

    let mut out = Vec::new();
    write_v2(&mut out, dst, src, false);
    let v6_src = v6("::ffff:192.0.2.1", 1000);
    assert_eq!(addresses(&out, Version::V2), Some((dst, v6_src)));
    // The caller folds them back if it wants IPv4.
    assert_eq!(v6_src.ip().to_canonical(), src.ip());
}

#[test]
fn writers_drop_scope_and_flow_info() {
    let src = SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::LOCALHOST, 1, 7, 3));
    let plain = v6("::1", 1);
    let mut out = Vec::new();
    write_v1(&mut out, src, plain);
    assert_eq!(addresses(&out, Version::V1), Some((plain, plain)));
    let mut out = Vec::new();
    write_v2(&mut out, src, plain, false);
    assert_eq!(addresses(&out, Version::V2), Some((plain, plain)));
}

#[test]
fn local_headers_carry_no_addresses() {
    let mut out = Vec::new();
    write_local(&mut out, Version::V1);
    assert_eq!(out, b"PROXY UNKNOWN\r\n");
    assert_eq!(addresses(&out, Version::V1), None);

    let mut out = Vec::new();
    write_local(&mut out, Version::V2);
    assert_eq!(out, b"\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00");
    assert_eq!(addresses(&out, Version::V2), None);
    prefixes_need_more(&out, Version::V2);
}

/// What must hold for any input, however the bytes are split: a header stays inside the
/// input and is "need more" at every strict prefix, "need more" stays below the limit
/// and at every prefix, and an error stays an error whatever follows.
fn check_invariants(buf: &[u8], version: Version) {
    match parse(buf, version) {
        Ok(Some(h)) => {
            assert!(0 < h.len && h.len <= buf.len() && h.len <= version.max_len());
            assert_eq!(parse(&buf[..h.len], version), Ok(Some(h)));
            for end in 0..h.len {
                assert_eq!(parse(&buf[..end], version), Ok(None), "{buf:?} at {end}");
            }
        }
        Ok(None) => {
            assert!(buf.len() < version.max_len());
            for end in 0..buf.len() {
                assert_eq!(parse(&buf[..end], version), Ok(None), "{buf:?} at {end}");
            }
        }
        Err(_) => {
            for tail in [&b"\r\n"[..], b"0 1\r\n", &[0; 20]] {
                let more = [buf, tail].concat();
                assert!(parse(&more, version).is_err(), "{buf:?} + {tail:?}");
            }
        }
    }
}

#[test]
fn mutated_headers_keep_the_invariants() {
    let mut seeds = Vec::new();
    for (src, dst) in [
        (v4([192, 0, 2, 1], 56324), v4([10, 0, 0, 2], 443)),
        (v6("2001:db8::1", 0), v6("::ffff:1.2.3.4", 65535)),
    ] {
        let mut out = Vec::new();
        write_v1(&mut out, src, dst);
        seeds.push(out);
        let mut out = Vec::new();
        write_v2(&mut out, src, dst, false);
        seeds.push(out);
    }
    seeds.push(b"PROXY UNKNOWN x y\r\n".to_vec());
    let mut local = Vec::new();
    write_local(&mut local, Version::V2);
    seeds.push(local);

    // Bytes that matter to the grammar, so mutations hit the interesting branches.
    const ALPHABET: &[u8] = b"0159af:. \r\nPTU\x00\x0c\x11\x20\x21\x31\xff";
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = |below: usize| {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) as usize % below.max(1)
    };
    for round in 0..4000 {
        let mut buf = seeds[round % seeds.len()].clone();
        for _ in 0..=next(3) {
            let at = next(buf.len() + 1);
            let byte = ALPHABET[next(ALPHABET.len())];
            match next(4) {
                0 if at < buf.len() => buf[at] = byte,
                1 => buf.insert(at, byte),
                2 if at < buf.len() => {
                    buf.remove(at);
                }
                _ => buf.truncate(at),
            }
        }
        check_invariants(&buf, Version::V1);
        check_invariants(&buf, Version::V2);
    }
}
