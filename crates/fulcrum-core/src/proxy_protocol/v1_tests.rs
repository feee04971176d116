use super::super::tests::{addresses, error, header, prefixes_need_more, refused, v4, v6};
use super::super::{parse, Error, Version};

const V1: Version = Version::V1;

/// `PROXY UNKNOWN ` padded with `a` to `len` bytes, CRLF included.
fn unknown_of_len(len: usize) -> Vec<u8> {
    let mut raw = b"PROXY UNKNOWN ".to_vec();
    raw.resize(len - 2, b'a');
    raw.extend_from_slice(b"\r\n");
    raw
}

#[test]
fn spec_examples() {
    let max6 = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
    let cases: [(&[u8], _); 5] = [
        (
            b"PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n",
            Some((v4([255; 4], 65535), v4([255; 4], 65535))),
        ),
        (
            b"PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n",
            Some((v6(max6, 65535), v6(max6, 65535))),
        ),
        (b"PROXY UNKNOWN\r\n", None),
        (
            b"PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n",
            None,
        ),
        (
            b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n",
            Some((v4([192, 168, 0, 1], 56324), v4([192, 168, 0, 11], 443))),
        ),
    ];
    for (raw, want) in cases {
        assert_eq!(addresses(raw, V1), want, "{}", String::from_utf8_lossy(raw));
        prefixes_need_more(raw, V1);
    }
    // The spec's worst case is exactly the limit.
    assert_eq!(cases[3].0.len(), 107);
}

#[test]
fn unknown_ignores_everything_up_to_crlf() {
    for raw in [
        &b"PROXY UNKNOWN \r\n"[..],
        b"PROXY UNKNOWN  two  spaces\r\n",
        b"PROXY UNKNOWN TCP4 not-an-address x y z\r\n",
        b"PROXY UNKNOWN \x00\xff\t\r\n",
    ] {
        assert_eq!(addresses(raw, V1), None);
        prefixes_need_more(raw, V1);
    }
    // The header still ends at the first CR, which must be followed by LF.
    refused(b"PROXY UNKNOWN a\rb\r\n", V1, Error::V1LineEnd);
    refused(b"PROXY UNKNOWN a\nb\r\n", V1, Error::V1LineEnd);
    refused(b"PROXY UNKNOWNX\r\n", V1, Error::V1Protocol);
    refused(b"PROXY UNKNOWNX", V1, Error::V1Protocol);
}

#[test]
fn length_limit_is_107_bytes_crlf_included() {
    let fits = unknown_of_len(107);
    assert_eq!(header(&fits, V1).len, 107);
    refused(&unknown_of_len(108), V1, Error::V1TooLong);
    refused(&unknown_of_len(200), V1, Error::V1TooLong);
    // Without a CRLF: 105 bytes may still end at 107; from 106 on it cannot.
    assert_eq!(parse(&fits[..105], V1), Ok(None));
    refused(&unknown_of_len(108)[..106], V1, Error::V1TooLong);
    refused(&[b'a'; 500][..], V1, Error::V1Signature);
    // A CR at offset 106 would put the LF at 108.
    let mut late_cr = unknown_of_len(108);
    late_cr.truncate(107);
    assert_eq!(late_cr[106], b'\r');
    refused(&late_cr, V1, Error::V1TooLong);
}

#[test]
fn ports_are_strict_decimal() {
    for (sport, ok) in [
        ("0", true),
        ("1", true),
        ("65535", true),
        ("65536", false),
        ("99999", false),
        ("100000", false),
        ("00", false),
        ("01", false),
        ("0080", false),
        ("-1", false),
        ("+1", false),
        ("1a", false),
        ("0x10", false),
        ("１", false),
    ] {
        let raw = format!("PROXY TCP4 1.2.3.4 5.6.7.8 {sport} 80\r\n");
        let dport = format!("PROXY TCP4 1.2.3.4 5.6.7.8 80 {sport}\r\n");
        if ok {
            let port: u16 = sport.parse().unwrap();
            assert_eq!(
                addresses(raw.as_bytes(), V1).map(|a| a.0.port()),
                Some(port)
            );
            assert_eq!(
                addresses(dport.as_bytes(), V1).map(|a| a.1.port()),
                Some(port)
            );
        } else {
            refused(raw.as_bytes(), V1, Error::V1Port);
            refused(dport.as_bytes(), V1, Error::V1Port);
        }
    }
}

#[test]
fn addresses_must_match_the_protocol() {
    let bad = [
        ("TCP4", "1.2.3"),
        ("TCP4", "1.2.3.4.5"),
        ("TCP4", "256.1.1.1"),
        ("TCP4", "01.2.3.4"),
        ("TCP4", "1.2.3.4."),
        ("TCP4", "1..3.4"),
        ("TCP4", "1.2.3.-4"),
        ("TCP4", "::1"),
        ("TCP4", "::ffff:1.2.3.4"),
        ("TCP4", "localhost"),
        ("TCP6", "1.2.3.4"),
        ("TCP6", "[::1]"),
        ("TCP6", "fe80::1%eth0"),
        ("TCP6", "1:2:3:4:5:6:7:8:9"),
        ("TCP6", "12345::"),
        ("TCP6", "::g"),
        ("TCP6", "fe80::1%25"),
    ];
    for (proto, addr) in bad {
        let src = format!("PROXY {proto} {addr} {addr} 1 2\r\n");
        assert_eq!(
            error(src.as_bytes(), V1),
            Error::V1Address,
            "{proto} {addr}"
        );
    }
    let mapped = b"PROXY TCP6 ::ffff:1.2.3.4 ::1 1 2\r\n";
    assert_eq!(
        addresses(mapped, V1),
        Some((v6("::ffff:1.2.3.4", 1), v6("::1", 2)))
    );
    let upper = b"PROXY TCP6 2001:DB8::A ::1 1 2\r\n";
    assert_eq!(
        addresses(upper, V1).map(|a| a.0),
        Some(v6("2001:db8::a", 1))
    );
}

#[test]
fn keywords_are_case_sensitive() {
    refused(
        b"proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
        V1,
        Error::V1Signature,
    );
    refused(b"Proxy", V1, Error::V1Signature);
    refused(b"PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n", V1, Error::V1Protocol);
    refused(b"PROXY unknown\r\n", V1, Error::V1Protocol);
}

#[test]
fn fields_take_exactly_one_space() {
    let cases: [(&[u8], Error); 12] = [
        (b" PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n", Error::V1Signature),
        (b"PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n", Error::V1Protocol),
        (b"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n", Error::V1Address),
        (b"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n", Error::V1Address),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8  1 2\r\n", Error::V1Port),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1  2\r\n", Error::V1Port),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", Error::V1Fields),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", Error::V1Fields),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", Error::V1Fields),
        (b"PROXY TCP4 1.2.3.4\r\n", Error::V1Fields),
        (b"PROXY TCP4\r\n", Error::V1Fields),
        (b"PROXY\tTCP4 1.2.3.4 5.6.7.8 1 2\r\n", Error::V1Signature),
    ];
    for (raw, want) in cases {
        refused(raw, V1, want);
    }
    refused(b"PROXY\r\n", V1, Error::V1Fields);
    refused(b"PROXY \r\n", V1, Error::V1Protocol);
    refused(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 ", V1, Error::V1Fields);
}

#[test]
fn line_must_end_in_crlf() {
    refused(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", V1, Error::V1LineEnd);
    refused(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX", V1, Error::V1LineEnd);
    refused(
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n",
        V1,
        Error::V1LineEnd,
    );
    // A bad field is reported before the line end, as it says more.
    refused(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 02\n", V1, Error::V1Port);
    // Only a CR so far: the LF may still come.
    assert_eq!(parse(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r", V1), Ok(None));
}

#[test]
fn garbage_is_refused_at_its_first_impossible_byte() {
    let cases: [(&[u8], Error); 13] = [
        (b"G", Error::V1Signature),
        (b"GET / HTTP/1.1\r\n", Error::V1Signature),
        (b"PROXX", Error::V1Signature),
        (b"PROXY X", Error::V1Protocol),
        (b"PROXY TCP5", Error::V1Protocol),
        (b"PROXY TCP4 3:", Error::V1Address),
        (b"PROXY TCP4 300", Error::V1Address),
        (b"PROXY TCP4 1.2.3.4.", Error::V1Address),
        (b"PROXY TCP6 ::1 x", Error::V1Address),
        (
            b"PROXY TCP6 0123456789012345678901234567890123456789abcdef",
            Error::V1Address,
        ),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 65536", Error::V1Port),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 01", Error::V1Port),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 012", Error::V1Port),
    ];
    for (raw, want) in cases {
        refused(raw, V1, want);
    }
}

#[test]
fn valid_prefixes_of_partial_fields_wait() {
    for raw in [
        &b"P"[..],
        b"PROXY",
        b"PROXY ",
        b"PROXY T",
        b"PROXY TCP",
        b"PROXY UNK",
        b"PROXY TCP4 ",
        b"PROXY TCP4 1",
        b"PROXY TCP4 1.",
        b"PROXY TCP4 255.255.255.25",
        b"PROXY TCP4 0.0.0.0 ",
        b"PROXY TCP6 ::",
        b"PROXY TCP6 ::ffff:1.2.",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 ",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 0",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 6553",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 65535 ",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 65535 6",
    ] {
        assert_eq!(parse(raw, V1), Ok(None), "{}", String::from_utf8_lossy(raw));
    }
}
