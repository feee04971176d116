use super::super::tests::{addresses, header, prefixes_need_more, refused, v4, v6};
use super::super::{parse, Error, Version};
use super::SIGNATURE;

const V2: Version = Version::V2;

/// A header with the given version/command and family bytes, length field and body.
fn raw(ver_cmd: u8, family: u8, len: u16, body: &[u8]) -> Vec<u8> {
    let mut out = SIGNATURE.to_vec();
    out.extend_from_slice(&[ver_cmd, family]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// A header whose length field matches its body.
fn whole(ver_cmd: u8, family: u8, body: &[u8]) -> Vec<u8> {
    raw(ver_cmd, family, u16::try_from(body.len()).unwrap(), body)
}

/// The spec's IPv4 block: 192.168.0.1:56324 → 192.168.0.11:443.
const INET: [u8; 12] = [192, 168, 0, 1, 192, 168, 0, 11, 0xdc, 0x04, 0x01, 0xbb];

fn inet6_block() -> Vec<u8> {
    let mut body = "2001:db8::1"
        .parse::<std::net::Ipv6Addr>()
        .unwrap()
        .octets()
        .to_vec();
    body.extend_from_slice(&std::net::Ipv6Addr::LOCALHOST.octets());
    body.extend_from_slice(&[0x30, 0x39, 0x00, 0x50]);
    body
}

#[test]
fn tcp_and_udp_over_ipv4_and_ipv6() {
    let want4 = Some((v4([192, 168, 0, 1], 56324), v4([192, 168, 0, 11], 443)));
    let want6 = Some((v6("2001:db8::1", 12345), v6("::1", 80)));
    for (family, body, want) in [
        (0x11, INET.to_vec(), want4),
        (0x12, INET.to_vec(), want4),
        (0x21, inet6_block(), want6),
        (0x22, inet6_block(), want6),
    ] {
        let raw = whole(0x21, family, &body);
        assert_eq!(addresses(&raw, V2), want, "{family:#x}");
        prefixes_need_more(&raw, V2);
    }
}

#[test]
fn tlvs_after_the_addresses_are_skipped() {
    // ALPN "h2", then a NOOP with three bytes: skipped unparsed, within the length.
    let mut body = INET.to_vec();
    body.extend_from_slice(&[0x01, 0x00, 0x02, b'h', b'2', 0x04, 0x00, 0x03, 0, 0, 0]);
    let raw = whole(0x21, 0x11, &body);
    assert_eq!(header(&raw, V2).len, 16 + 12 + 11);
    assert_eq!(
        addresses(&raw, V2),
        Some((v4([192, 168, 0, 1], 56324), v4([192, 168, 0, 11], 443)))
    );
    prefixes_need_more(&raw, V2);
    // Bytes that are not TLVs at all are skipped just the same: the length rules.
    let mut junk = INET.to_vec();
    junk.extend_from_slice(&[0xff; 5]);
    assert_eq!(header(&whole(0x21, 0x11, &junk), V2).len, 16 + 17);
}

#[test]
fn local_ignores_family_and_body() {
    let plain = whole(0x20, 0x00, &[]);
    assert_eq!(header(&plain, V2).len, 16);
    assert_eq!(addresses(&plain, V2), None);
    // The spec says the family is ignored along with the block, whatever they hold.
    for family in [0x11, 0x21, 0x31, 0xff] {
        let raw = whole(0x20, family, &[7; 3]);
        assert_eq!(addresses(&raw, V2), None, "{family:#x}");
        prefixes_need_more(&raw, V2);
    }
    let with_inet = whole(0x20, 0x11, &INET);
    assert_eq!(addresses(&with_inet, V2), None);
}

#[test]
fn unspec_and_unix_families_give_no_addresses() {
    assert_eq!(addresses(&whole(0x21, 0x00, &[]), V2), None);
    assert_eq!(addresses(&whole(0x21, 0x00, &[1, 2, 3]), V2), None);
    for family in [0x31, 0x32] {
        let raw = whole(0x21, family, &[b'/'; 216]);
        assert_eq!(addresses(&raw, V2), None);
        prefixes_need_more(&raw, V2);
    }
}

#[test]
fn length_must_hold_the_address_block() {
    for (family, need) in [(0x11, 12), (0x12, 12), (0x21, 36), (0x22, 36), (0x31, 216)] {
        let short = need - 1;
        let want = Error::V2Length { len: short, need };
        // Refused as soon as the length field arrives, before any body.
        refused(&raw(0x21, family, short, &[]), V2, want.clone());
        refused(&whole(0x21, family, &vec![0; usize::from(short)]), V2, want);
        refused(
            &whole(0x21, family, &[]),
            V2,
            Error::V2Length { len: 0, need },
        );
    }
}

#[test]
fn largest_length_is_accepted() {
    let mut body = INET.to_vec();
    body.resize(usize::from(u16::MAX), 0);
    let raw = whole(0x21, 0x11, &body);
    assert_eq!(header(&raw, V2).len, Version::V2.max_len());
    assert_eq!(parse(&raw[..raw.len() - 1], V2), Ok(None));
}

#[test]
fn signature_must_match_byte_for_byte() {
    let good = whole(0x21, 0x11, &INET);
    for at in 0..SIGNATURE.len() {
        let mut bad = good.clone();
        bad[at] ^= 0x80;
        refused(&bad, V2, Error::V2Signature);
        refused(&bad[..=at], V2, Error::V2Signature);
    }
    refused(b"\r\n\r\n\0\r\nquit\n", V2, Error::V2Signature);
    refused(b"GET / HTTP/1.1\r\n\r\n", V2, Error::V2Signature);
}

#[test]
fn version_must_be_2() {
    for ver_cmd in [0x01, 0x11, 0x31, 0xf1] {
        let want = Error::V2Version(ver_cmd >> 4);
        refused(&whole(ver_cmd, 0x11, &INET), V2, want.clone());
        refused(
            &SIGNATURE
                .iter()
                .chain(&[ver_cmd])
                .copied()
                .collect::<Vec<_>>(),
            V2,
            want,
        );
    }
}

#[test]
fn command_must_be_local_or_proxy() {
    for cmd in 2..16 {
        let want = Error::V2Command(cmd);
        refused(&whole(0x20 | cmd, 0x11, &INET), V2, want.clone());
        refused(&whole(0x20 | cmd, 0x11, &INET)[..13], V2, want);
    }
}

#[test]
fn family_and_transport_must_be_defined() {
    for family in [0x01, 0x02, 0x10, 0x13, 0x20, 0x23, 0x30, 0x33, 0x41, 0xff] {
        refused(&whole(0x21, family, &INET), V2, Error::V2Family(family));
        refused(
            &whole(0x21, family, &INET)[..14],
            V2,
            Error::V2Family(family),
        );
    }
}

#[test]
fn partial_fixed_part_waits() {
    let good = whole(0x21, 0x11, &INET);
    for end in [1, 11, 12, 13, 14, 15, 16, 27] {
        assert_eq!(parse(&good[..end], V2), Ok(None), "{end}");
    }
}
