use super::*;
use crate::http1::{Framing, Version};

const MAX: usize = 8 * 1024;

fn req(raw: &[u8]) -> Result<Option<RequestHead>, HeadError> {
    parse_request(raw, MAX)
}

fn ok_req(raw: &[u8]) -> RequestHead {
    match req(raw) {
        Ok(Some(h)) => h,
        other => panic!("{:?}: {other:?}", String::from_utf8_lossy(raw)),
    }
}

#[track_caller]
fn malformed(raw: &[u8]) {
    let got = req(raw);
    assert!(
        matches!(got, Err(HeadError::Malformed(_))),
        "{:?}: {got:?}",
        String::from_utf8_lossy(raw)
    );
}

/// A POST with the given field lines (each ending in CRLF) and Host.
fn post(fields: &str) -> Vec<u8> {
    format!("POST /up HTTP/1.1\r\nHost: example.com\r\n{fields}\r\n").into_bytes()
}

fn res(raw: &[u8], head: bool) -> Result<Option<ResponseHead>, HeadError> {
    parse_response(raw, MAX, head)
}

fn ok_res(raw: &[u8], head: bool) -> ResponseHead {
    match res(raw, head) {
        Ok(Some(h)) => h,
        other => panic!("{:?}: {other:?}", String::from_utf8_lossy(raw)),
    }
}

#[track_caller]
fn res_malformed(raw: &[u8]) {
    let got = res(raw, false);
    assert!(
        matches!(got, Err(HeadError::Malformed(_))),
        "{:?}: {got:?}",
        String::from_utf8_lossy(raw)
    );
}

// === requests: completeness and size ===

const GET: &[u8] =
    b"GET /a?b=c HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\nX-Empty:\r\nX-Pad:  v  \r\n\r\n";

#[test]
fn complete_request_spans() {
    let mut buf = GET.to_vec();
    buf.extend_from_slice(b"next bytes");
    let h = ok_req(&buf);
    assert_eq!(h.len, GET.len());
    assert_eq!(h.method.get(&buf), b"GET");
    assert_eq!(h.target.get(&buf), b"/a?b=c");
    assert_eq!(h.version, Version::Http11);
    assert_eq!(h.host.map(|s| s.get(&buf)), Some(&b"example.com"[..]));
    assert_eq!(h.body, Framing::Empty);
    assert!(h.keep_alive);
    assert!(!h.expect_continue);
    assert!(!h.upgrade);
    let fields: Vec<_> = h.fields(&buf).collect();
    assert_eq!(
        fields,
        vec![
            (&b"Host"[..], &b"example.com"[..]),
            (b"Accept", b"*/*"),
            (b"X-Empty", b""),
            (b"X-Pad", b"v"),
        ]
    );
}

#[test]
fn every_prefix_is_incomplete() {
    for n in 0..GET.len() {
        assert!(matches!(req(&GET[..n]), Ok(None)), "prefix {n}");
    }
}

#[test]
fn partial_at_max_is_too_large() {
    let partial = &GET[..GET.len() - 1];
    let n = partial.len();
    assert!(matches!(parse_request(partial, n + 1), Ok(None)));
    assert_eq!(parse_request(partial, n).err(), Some(HeadError::TooLarge));
    assert_eq!(
        parse_request(partial, n - 1).err(),
        Some(HeadError::TooLarge)
    );
}

#[test]
fn complete_head_over_max_is_too_large() {
    assert!(parse_request(GET, GET.len()).is_ok_and(|h| h.is_some()));
    assert_eq!(
        parse_request(GET, GET.len() - 1).err(),
        Some(HeadError::TooLarge)
    );
}

#[test]
fn too_many_headers() {
    let lines = |n: usize| (0..n).map(|i| format!("X-{i}: v\r\n")).collect::<String>();
    // Host plus 99 more is exactly the limit.
    assert!(req(&post(&lines(99))).is_ok_and(|h| h.is_some()));
    assert_eq!(req(&post(&lines(100))).err(), Some(HeadError::TooLarge));
    // Also while the head is still incomplete.
    let mut partial = post(&lines(150));
    partial.truncate(partial.len() - 2);
    assert_eq!(req(&partial).err(), Some(HeadError::TooLarge));
}

#[test]
fn leading_empty_lines_are_skipped() {
    let mut buf = b"\r\n\r\n".to_vec();
    buf.extend_from_slice(GET);
    let h = ok_req(&buf);
    assert_eq!(h.len, buf.len());
    assert_eq!(h.method.get(&buf), b"GET");
    malformed(b"\nGET / HTTP/1.1\r\nHost: a\r\n\r\n");
}

#[test]
fn span_outside_buffer_is_empty() {
    let h = ok_req(GET);
    assert_eq!(h.target.get(b"GE"), b"");
    assert_eq!(Span::default().get(GET), b"");
}

// === requests: framing and smuggling ===

#[test]
fn content_length() {
    assert_eq!(
        ok_req(&post("Content-Length: 5\r\n")).body,
        Framing::Length(5)
    );
    assert_eq!(ok_req(&post("content-LENGTH: 0\r\n")).body, Framing::Empty);
    assert_eq!(
        ok_req(&post("Content-Length: 007\r\n")).body,
        Framing::Length(7)
    );
    assert_eq!(
        ok_req(&post("Content-Length: 9999999999999999999\r\n")).body,
        Framing::Length(9_999_999_999_999_999_999)
    );
    assert_eq!(ok_req(&post("")).body, Framing::Empty);
}

#[test]
fn identical_content_lengths_are_one() {
    let two = post("Content-Length: 5\r\nContent-Length: 5\r\n");
    assert_eq!(ok_req(&two).body, Framing::Length(5));
    assert_eq!(
        ok_req(&post("Content-Length: 5, 5\r\n")).body,
        Framing::Length(5)
    );
    assert_eq!(
        ok_req(&post("Content-Length: 5,5\r\n")).body,
        Framing::Length(5)
    );
}

#[test]
fn conflicting_content_lengths() {
    malformed(&post("Content-Length: 5\r\nContent-Length: 6\r\n"));
    malformed(&post("Content-Length: 5, 6\r\n"));
    malformed(&post("Content-Length: 0\r\nContent-Length: 5\r\n"));
}

#[test]
fn invalid_content_length() {
    for v in [
        "+5",
        "-5",
        "5 5",
        "0x5",
        "5a",
        "a",
        "",
        "5,",
        ",5",
        "5;",
        "5.0",
        "1_000",
        "99999999999999999999",
        "18446744073709551616",
        "18446744073709551615",
        "\u{ff15}",
    ] {
        malformed(&post(&format!("Content-Length: {v}\r\n")));
    }
}

#[test]
fn chunked_request() {
    let h = ok_req(&post("Transfer-Encoding: chunked\r\n"));
    assert_eq!(h.body, Framing::Chunked);
    assert_eq!(
        ok_req(&post("transfer-encoding: Chunked\r\n")).body,
        Framing::Chunked
    );
}

#[test]
fn content_length_with_transfer_encoding() {
    malformed(&post("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n"));
    malformed(&post("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n"));
    malformed(&post("Transfer-Encoding: chunked\r\nContent-Length: 0\r\n"));
}

#[test]
fn transfer_encoding_other_than_chunked() {
    for te in [
        "gzip",
        "identity",
        "chunked, gzip",
        "gzip, chunked",
        "chunked, chunked",
        "chunked;q=1",
        "chunked\u{a0}",
        "",
        ",",
        " , ",
        "xchunked",
    ] {
        malformed(&post(&format!("Transfer-Encoding: {te}\r\n")));
    }
    malformed(&post(
        "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
    ));
    malformed(&post(
        "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
    ));
    malformed(&post(
        "Transfer-Encoding: chunked\r\nTransfer-Encoding:\r\n",
    ));
}

#[test]
fn transfer_encoding_in_http10() {
    malformed(b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n");
    malformed(b"POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n");
}

#[test]
fn whitespace_before_colon() {
    malformed(b"GET / HTTP/1.1\r\nHost : example.com\r\n\r\n");
    malformed(&post("Content-Length : 5\r\n"));
    malformed(&post("Transfer-Encoding\t: chunked\r\n"));
}

#[test]
fn obs_fold_and_leading_whitespace() {
    malformed(&post("X-A: one\r\n two\r\n"));
    malformed(&post("X-A: one\r\n\ttwo\r\n"));
    malformed(&post(" Transfer-Encoding: chunked\r\n"));
    malformed(b"GET / HTTP/1.1\r\n Host: example.com\r\n\r\n");
}

#[test]
fn bare_lf_line_endings() {
    malformed(b"GET / HTTP/1.1\nHost: a\r\n\r\n");
    malformed(b"GET / HTTP/1.1\r\nHost: a\n\r\n");
    malformed(b"GET / HTTP/1.1\r\nHost: a\r\n\n");
    malformed(b"GET / HTTP/1.1\nHost: a\n\n");
}

#[test]
fn cr_nul_and_controls_in_values() {
    for v in [&b"a\0b"[..], b"a\rb", b"a\x7fb", b"a\x0bb", b"a\x1bb"] {
        let mut raw = b"GET / HTTP/1.1\r\nHost: a\r\nX-V: ".to_vec();
        raw.extend_from_slice(v);
        raw.extend_from_slice(b"\r\n\r\n");
        malformed(&raw);
    }
    // obs-text and HTAB are allowed in values.
    assert!(req(b"GET / HTTP/1.1\r\nHost: a\r\nX-V: a\tb\xff\r\n\r\n").is_ok_and(|h| h.is_some()));
}

#[test]
fn invalid_request_line() {
    malformed(b"G@T / HTTP/1.1\r\nHost: a\r\n\r\n");
    malformed(b"G\0T / HTTP/1.1\r\nHost: a\r\n\r\n");
    malformed(b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n");
    malformed(b"GET / HTTP/1.2\r\nHost: a\r\n\r\n");
    malformed(b"GET / HTTP/2.0\r\nHost: a\r\n\r\n");
    malformed(b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n");
    malformed(b"GET /\x7f HTTP/1.1\r\nHost: a\r\n\r\n");
    malformed(b"GET / http/1.1\r\nHost: a\r\n\r\n");
    malformed(b"Bad-Name\x01: v\r\n\r\n");
    // Methods are tokens: case and unusual tokens are fine.
    assert!(req(b"get / HTTP/1.1\r\nHost: a\r\n\r\n").is_ok_and(|h| h.is_some()));
    assert!(req(b"M-SEARCH * HTTP/1.1\r\nHost: a\r\n\r\n").is_ok_and(|h| h.is_some()));
}

#[test]
fn invalid_header_name() {
    malformed(&post("X(A): v\r\n"));
    malformed(&post(": v\r\n"));
    malformed(&post("X-A\r\n"));
}

// === requests: Host ===

#[test]
fn host_required_in_http11() {
    malformed(b"GET / HTTP/1.1\r\n\r\n");
    malformed(b"GET / HTTP/1.1\r\nX-Host: a\r\n\r\n");
    let h = ok_req(b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(h.version, Version::Http10);
    assert_eq!(h.host, None);
}

#[test]
fn one_host_only() {
    malformed(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n");
    malformed(b"GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n");
    malformed(b"GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n");
}

#[test]
fn host_values() {
    for ok in [
        "example.com",
        "EXAMPLE.com:8080",
        "example.com:",
        "127.0.0.1",
        "[::1]",
        "[::1]:443",
        "[fe80::1%25eth0]:80",
        "xn--bcher-kva.example",
        "a_b~c!$&'()*+;=",
        "%65xample.com",
    ] {
        let raw = format!("GET / HTTP/1.1\r\nHost: {ok}\r\n\r\n");
        let h = ok_req(raw.as_bytes());
        assert_eq!(h.host.map(|s| s.get(raw.as_bytes())), Some(ok.as_bytes()));
    }
    for bad in [
        "",
        "a b",
        "user@example.com",
        "example.com/path",
        "example.com\\x",
        "a.com, b.com",
        "a.com,b.com",
        ":80",
        "a:b",
        "a:80:81",
        "a:-1",
        "[::1",
        "[]",
        "[::1]x",
        "[::1]:x",
        "a\"b",
        "a<b",
        "a{b}",
        "ex\u{e4}mple.com",
    ] {
        malformed(format!("GET / HTTP/1.1\r\nHost: {bad}\r\n\r\n").as_bytes());
    }
}

// === requests: connection handling ===

#[test]
fn keep_alive_http11() {
    let ka = |c: &str| ok_req(&post(c)).keep_alive;
    assert!(ka(""));
    assert!(ka("Connection: keep-alive\r\n"));
    assert!(!ka("Connection: close\r\n"));
    assert!(!ka("Connection: Close\r\n"));
    assert!(!ka("Connection: keep-alive, close\r\n"));
    assert!(!ka("Connection: foo,  CLOSE \r\n"));
    assert!(!ka("Connection: keep-alive\r\nConnection: close\r\n"));
    assert!(ka("Connection: closed\r\n"));
}

#[test]
fn keep_alive_http10() {
    let ka = |c: &str| {
        let raw = format!("GET / HTTP/1.0\r\n{c}\r\n");
        ok_req(raw.as_bytes()).keep_alive
    };
    assert!(!ka(""));
    assert!(ka("Connection: keep-alive\r\n"));
    assert!(ka("Connection: Keep-Alive\r\n"));
    assert!(!ka("Connection: keep-alive, close\r\n"));
    assert!(!ka("Connection: close\r\n"));
    assert!(!ka("Keep-Alive: timeout=5\r\n"));
}

#[test]
fn upgrade_detection() {
    let up = |c: &str| ok_req(&post(c)).upgrade;
    assert!(up("Connection: Upgrade\r\nUpgrade: websocket\r\n"));
    assert!(up(
        "Upgrade: websocket\r\nConnection: keep-alive, upgrade\r\n"
    ));
    assert!(!up("Connection: upgrade\r\n"));
    assert!(!up("Upgrade: websocket\r\n"));
    assert!(!up("Connection: upgraded\r\nUpgrade: websocket\r\n"));
    let raw = b"GET / HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n";
    assert!(!ok_req(raw).upgrade, "HTTP/1.0 cannot upgrade");
}

#[test]
fn expect_continue() {
    let ec = |c: &str| ok_req(&post(c)).expect_continue;
    assert!(ec("Expect: 100-continue\r\n"));
    assert!(ec("expect: 100-Continue\r\n"));
    assert!(!ec("Expect: 200-ok\r\n"));
    assert!(!ec(""));
    let raw = b"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n";
    assert!(!ok_req(raw).expect_continue, "ignored in HTTP/1.0");
}

// === responses ===

#[test]
fn response_with_length() {
    let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\nX-A: b\r\n\r\nhello world!";
    let h = ok_res(raw, false);
    assert_eq!(h.len, raw.len() - 12);
    assert_eq!(h.status, 200);
    assert_eq!(h.version, Version::Http11);
    assert_eq!(h.body, Framing::Length(12));
    assert!(h.keep_alive);
    let fields: Vec<_> = h.fields(raw).collect();
    assert_eq!(
        fields,
        vec![(&b"Content-Length"[..], &b"12"[..]), (b"X-A", b"b")]
    );
}

#[test]
fn responses_without_body() {
    for status in [100, 101, 103, 199, 204, 304] {
        let raw = format!("HTTP/1.1 {status} X\r\nContent-Length: 10\r\n\r\n");
        let h = ok_res(raw.as_bytes(), false);
        assert_eq!(h.body, Framing::Empty, "{status}");
        assert!(h.keep_alive, "{status}");
    }
    let head = ok_res(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", true);
    assert_eq!(head.body, Framing::Empty);
    let head = ok_res(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        true,
    );
    assert_eq!(head.body, Framing::Empty);
    let head = ok_res(b"HTTP/1.1 200 OK\r\n\r\n", true);
    assert_eq!(head.body, Framing::Empty);
    assert!(head.keep_alive);
    let zero = ok_res(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false);
    assert_eq!(zero.body, Framing::Empty);
}

#[test]
fn chunked_response() {
    let h = ok_res(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        false,
    );
    assert_eq!(h.body, Framing::Chunked);
    assert!(h.keep_alive);
}

#[test]
fn until_close_response() {
    let h = ok_res(b"HTTP/1.1 200 OK\r\n\r\n", false);
    assert_eq!(h.body, Framing::UntilClose);
    assert!(!h.keep_alive);
    let h = ok_res(b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\n\r\n", false);
    assert_eq!(h.body, Framing::UntilClose);
    assert!(!h.keep_alive);
    let h = ok_res(b"HTTP/1.0 200 OK\r\n\r\n", false);
    assert_eq!(h.body, Framing::UntilClose);
    assert!(!h.keep_alive);
}

#[test]
fn response_smuggling_set() {
    res_malformed(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n");
    res_malformed(b"HTTP/1.1 204 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n");
    res_malformed(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n");
    res_malformed(b"HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n");
    res_malformed(b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n");
    res_malformed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n");
    res_malformed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
    res_malformed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n");
    res_malformed(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
    );
    res_malformed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding:\r\n\r\n");
    res_malformed(b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
    res_malformed(b"HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\n");
    res_malformed(b"HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\n\r\n");
    res_malformed(b"HTTP/1.1 200 OK\nContent-Length: 5\n\n");
    res_malformed(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\n");
    let identical = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n";
    assert_eq!(ok_res(identical, false).body, Framing::Length(5));
}

#[test]
fn response_status_line() {
    res_malformed(b"HTTP/1.1 000 Zero\r\n\r\n");
    res_malformed(b"HTTP/1.1 099 Low\r\n\r\n");
    res_malformed(b"HTTP/1.1 2000 OK\r\n\r\n");
    res_malformed(b"HTTP/1.1 20 OK\r\n\r\n");
    res_malformed(b"HTTP/1.1 200 O\x01K\r\n\r\n");
    res_malformed(b"HTTP/2 200 OK\r\n\r\n");
    assert_eq!(
        ok_res(b"HTTP/1.1 599\r\nContent-Length: 0\r\n\r\n", false).status,
        599
    );
    assert_eq!(
        ok_res(b"HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n", false).status,
        200
    );
}

#[test]
fn response_keep_alive() {
    let ka = |raw: &[u8]| ok_res(raw, false).keep_alive;
    assert!(ka(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n"));
    assert!(!ka(
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n"
    ));
    assert!(!ka(b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n"));
    assert!(ka(
        b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n"
    ));
}

#[test]
fn response_partial_and_too_large() {
    let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n";
    for n in 0..raw.len() {
        assert!(matches!(res(&raw[..n], false), Ok(None)), "prefix {n}");
    }
    let partial = &raw[..raw.len() - 1];
    assert_eq!(
        parse_response(partial, partial.len(), false).err(),
        Some(HeadError::TooLarge)
    );
    assert_eq!(
        parse_response(raw, raw.len() - 1, false).err(),
        Some(HeadError::TooLarge)
    );
    let many: String = (0..120).map(|i| format!("X-{i}: v\r\n")).collect();
    let raw = format!("HTTP/1.1 200 OK\r\n{many}\r\n");
    assert_eq!(res(raw.as_bytes(), false).err(), Some(HeadError::TooLarge));
}

#[test]
fn length_parser() {
    assert_eq!(parse_length(b"0"), Some(0));
    assert_eq!(parse_length(b"1234"), Some(1234));
    assert_eq!(parse_length(b""), None);
    assert_eq!(parse_length(b" 1"), None);
    assert_eq!(parse_length(b"99999999999999999999"), None);
}

#[test]
fn bare_lf_detector() {
    assert!(!has_bare_lf(b"a\r\nb\r\n\r\n"));
    assert!(has_bare_lf(b"\n"));
    assert!(has_bare_lf(b"a\r\n\n"));
    assert!(!has_bare_lf(b""));
}
