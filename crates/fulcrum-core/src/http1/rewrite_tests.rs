use super::*;
use crate::forward::is_hop_by_hop;
use crate::http1::{parse_request, parse_response, Framing};

const FWD: Forwarded<'static> = Forwarded {
    original_host: None,
    keep_chain: true,
    client_ip: "10.0.0.1",
    proto: "https",
    via_version: "1.1",
};

type Fields = Vec<(String, String)>;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Parses `raw` (a client request), rewrites it with `body`, and parses the result as a
/// backend would: returns the rewritten bytes and its fields, names lowercased.
fn forward(raw: &str, body: Framing) -> (String, Fields) {
    let raw = raw.as_bytes();
    let head = parse_request(raw, 16 * 1024).unwrap().unwrap();
    let host = head.host.map_or(&b"fallback"[..], |h| h.get(raw));
    let mut out = Vec::new();
    write_request_head(
        &mut out,
        head.method.get(raw),
        head.target.get(raw),
        host,
        head.fields(raw),
        body,
        &FWD,
    );
    let again = parse_request(&out, 16 * 1024)
        .unwrap_or_else(|e| panic!("{}: {e}", text(&out)))
        .unwrap();
    assert_eq!(again.len, out.len());
    let same = match body {
        Framing::Length(0) => Framing::Empty,
        other => other,
    };
    assert_eq!(again.body, same, "{}", text(&out));
    assert_eq!(again.host.map(|h| h.get(&out)), Some(host));
    let fields = again
        .fields(&out)
        .map(|(n, v)| (text(n).to_ascii_lowercase(), text(v)))
        .collect();
    (text(&out), fields)
}

fn values<'a>(fields: &'a Fields, name: &str) -> Vec<&'a str> {
    fields
        .iter()
        .filter(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

fn get(fields: &str) -> String {
    format!("GET /p?q=1 HTTP/1.1\r\nHost: Example.COM:8080\r\n{fields}\r\n")
}

// === requests ===

#[test]
fn request_line_and_host_first() {
    let (out, fields) = forward(&get("Accept: */*\r\n"), Framing::Empty);
    assert!(
        out.starts_with("GET /p?q=1 HTTP/1.1\r\nhost: Example.COM:8080\r\n"),
        "{out}"
    );
    assert_eq!(values(&fields, "host"), ["Example.COM:8080"]);
    assert_eq!(values(&fields, "accept"), ["*/*"]);
    assert!(out.ends_with("\r\n\r\n"));
}

#[test]
fn http10_request_goes_out_as_http11() {
    let (out, _) = forward("GET / HTTP/1.0\r\nHost: a\r\n\r\n", Framing::Empty);
    assert!(out.starts_with("GET / HTTP/1.1\r\nhost: a\r\n"), "{out}");
}

#[test]
fn other_fields_keep_order_case_and_value() {
    let (out, _) = forward(
        &get("X-B: 2\r\nx-a: 1\r\nCookie: a=b; c=d\r\nX-B: 3\r\n"),
        Framing::Empty,
    );
    let at = |s: &str| out.find(s).unwrap_or_else(|| panic!("{s} in {out}"));
    assert!(at("X-B: 2\r\n") < at("x-a: 1\r\n"));
    assert!(at("x-a: 1\r\n") < at("Cookie: a=b; c=d\r\n"));
    assert!(at("Cookie: a=b; c=d\r\n") < at("X-B: 3\r\n"));
}

#[test]
fn hop_by_hop_removed() {
    let (_, fields) = forward(
        &get(
            "Connection: keep-alive, X-Secret, x-other\r\nKeep-Alive: timeout=5\r\n\
             Proxy-Connection: keep-alive\r\nTE: trailers\r\nUpgrade: h2c\r\n\
             X-Secret: s\r\nX-OTHER: o\r\nX-Kept: k\r\n",
        ),
        Framing::Empty,
    );
    for gone in [
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "upgrade",
        "x-secret",
        "x-other",
        "transfer-encoding",
    ] {
        assert!(values(&fields, gone).is_empty(), "{gone}: {fields:?}");
    }
    assert_eq!(values(&fields, "x-kept"), ["k"]);
}

#[test]
fn transfer_encoding_replaced_by_framing() {
    let raw = get("Transfer-Encoding: chunked\r\n");
    let (_, fields) = forward(&raw, Framing::Chunked);
    assert_eq!(values(&fields, "transfer-encoding"), ["chunked"]);
    assert!(values(&fields, "content-length").is_empty());
    // The proxy may send a de-chunked body with a length instead.
    let (_, fields) = forward(&raw, Framing::Length(11));
    assert_eq!(values(&fields, "content-length"), ["11"]);
    assert!(values(&fields, "transfer-encoding").is_empty());
}

#[test]
fn framing_from_the_argument() {
    let raw = get("Content-Length: 5, 5\r\nContent-Length: 5\r\n");
    let (_, fields) = forward(&raw, Framing::Length(5));
    assert_eq!(values(&fields, "content-length"), ["5"]);
    let (_, fields) = forward(&raw, Framing::Length(0));
    assert_eq!(values(&fields, "content-length"), ["0"]);
    let (_, fields) = forward(&raw, Framing::Empty);
    assert!(values(&fields, "content-length").is_empty());
    assert!(values(&fields, "transfer-encoding").is_empty());
    let (_, fields) = forward(&raw, Framing::Chunked);
    assert!(values(&fields, "content-length").is_empty());
    assert_eq!(values(&fields, "transfer-encoding"), ["chunked"]);
}

#[test]
fn connection_naming_framing_or_forwarding_fields() {
    let raw = get(
        "Connection: content-length, transfer-encoding, host, x-forwarded-for, via\r\n\
         Content-Length: 3\r\nX-Forwarded-For: 1.1.1.1\r\nVia: 1.0 edge\r\n",
    );
    let (out, fields) = forward(&raw, Framing::Length(3));
    assert_eq!(values(&fields, "content-length"), ["3"], "{out}");
    assert_eq!(values(&fields, "host"), ["Example.COM:8080"]);
    assert_eq!(values(&fields, "x-forwarded-for"), ["1.1.1.1, 10.0.0.1"]);
    assert_eq!(values(&fields, "via"), ["1.0 edge, 1.1 fulcrum"]);
}

#[test]
fn x_forwarded_for_appended() {
    let (_, fields) = forward(&get(""), Framing::Empty);
    assert_eq!(values(&fields, "x-forwarded-for"), ["10.0.0.1"]);
    let (_, fields) = forward(
        &get("X-Forwarded-For: 1.1.1.1\r\nX-Other: x\r\nx-forwarded-for: 2.2.2.2, 3.3.3.3\r\n"),
        Framing::Empty,
    );
    assert_eq!(
        values(&fields, "x-forwarded-for"),
        ["1.1.1.1, 2.2.2.2, 3.3.3.3, 10.0.0.1"]
    );
    let (_, fields) = forward(&get("X-Forwarded-For:\r\n"), Framing::Empty);
    assert_eq!(values(&fields, "x-forwarded-for"), ["10.0.0.1"]);
}

#[test]
fn x_forwarded_proto_and_host_replaced() {
    let (_, fields) = forward(
        &get("X-Forwarded-Proto: http\r\nX-Forwarded-Host: evil.example\r\nx-forwarded-proto: ftp\r\n"),
        Framing::Empty,
    );
    assert_eq!(values(&fields, "x-forwarded-proto"), ["https"]);
    assert_eq!(values(&fields, "x-forwarded-host"), ["Example.COM:8080"]);
}

#[test]
fn via_appended() {
    let (_, fields) = forward(&get(""), Framing::Empty);
    assert_eq!(values(&fields, "via"), ["1.1 fulcrum"]);
    let (_, fields) = forward(&get("Via: 1.0 a, 1.1 b\r\nVia: 2 c\r\n"), Framing::Empty);
    assert_eq!(values(&fields, "via"), ["1.0 a, 1.1 b, 2 c, 1.1 fulcrum"]);
}

#[test]
fn expect_dropped() {
    let raw = get("Expect: 100-continue\r\nContent-Length: 2\r\n");
    let (_, fields) = forward(&raw, Framing::Length(2));
    assert!(values(&fields, "expect").is_empty());
}

#[test]
fn underscore_spellings_of_proxy_fields() {
    let (_, fields) = forward(
        &get(
            "X_Forwarded_For: 6.6.6.6\r\nX_Forwarded_Proto: http\r\nx_forwarded_host: evil\r\n\
             Content_Length: 99\r\nTransfer_Encoding: chunked\r\nProxy_Connection: close\r\n\
             X_Custom: kept\r\n",
        ),
        Framing::Empty,
    );
    let names: Vec<&str> = fields.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "host",
            "x_custom",
            "x-forwarded-for",
            "x-forwarded-proto",
            "x-forwarded-host",
            "via"
        ]
    );
    assert_eq!(values(&fields, "x-forwarded-for"), ["6.6.6.6, 10.0.0.1"]);
}

#[test]
fn hop_by_hop_names() {
    for name in [
        &b"Connection"[..],
        b"KEEP-ALIVE",
        b"proxy-connection",
        b"TE",
        b"Transfer-Encoding",
        b"upgrade",
        b"transfer_encoding",
    ] {
        assert!(is_hop_by_hop(name), "{}", text(name));
    }
    for name in [
        &b"Content-Length"[..],
        b"Trailer",
        b"tes",
        b"t",
        b"",
        b"Host",
    ] {
        assert!(!is_hop_by_hop(name), "{}", text(name));
    }
}

// === responses ===

/// Parses a backend response, rewrites it, and parses the result as a client would.
fn back(raw: &str, head_request: bool, close: bool, ka10: bool) -> (String, Fields) {
    let raw = raw.as_bytes();
    let head = parse_response(raw, 16 * 1024, head_request)
        .unwrap()
        .unwrap();
    let mut out = Vec::new();
    write_response_head(
        &mut out,
        head.status,
        head.fields(raw),
        head.body,
        close,
        ka10,
    );
    let again = parse_response(&out, 16 * 1024, head_request)
        .unwrap_or_else(|e| panic!("{}: {e}", text(&out)))
        .unwrap();
    assert_eq!(again.len, out.len());
    assert_eq!(again.status, head.status);
    assert_eq!(again.body, head.body, "{}", text(&out));
    let fields = again
        .fields(&out)
        .map(|(n, v)| (text(n).to_ascii_lowercase(), text(v)))
        .collect();
    (text(&out), fields)
}

#[test]
fn response_status_line_and_fields() {
    let (out, fields) = back(
        "HTTP/1.0 404 Nope\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\n",
        false,
        true,
        false,
    );
    assert!(out.starts_with("HTTP/1.1 404 Not Found\r\n"), "{out}");
    assert_eq!(values(&fields, "content-type"), ["text/plain"]);
    assert_eq!(values(&fields, "content-length"), ["3"]);
}

#[test]
fn response_hop_by_hop_removed() {
    let (_, fields) = back(
        "HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Internal\r\nKeep-Alive: timeout=5\r\n\
         X-Internal: secret\r\nTransfer-Encoding: chunked\r\nUpgrade: h2c\r\nX-Kept: k\r\n\r\n",
        false,
        false,
        false,
    );
    assert_eq!(
        fields,
        [
            ("x-kept".to_owned(), "k".to_owned()),
            ("transfer-encoding".to_owned(), "chunked".to_owned())
        ]
    );
}

#[test]
fn response_connection_flags() {
    let raw = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    let (_, f) = back(raw, false, true, false);
    assert_eq!(values(&f, "connection"), ["close"]);
    let (_, f) = back(raw, false, false, true);
    assert_eq!(values(&f, "connection"), ["keep-alive"]);
    let (_, f) = back(raw, false, true, true);
    assert_eq!(values(&f, "connection"), ["close"], "close wins");
    let (_, f) = back(raw, false, false, false);
    assert!(values(&f, "connection").is_empty());
}

#[test]
fn until_close_says_close() {
    let (_, f) = back("HTTP/1.1 200 OK\r\nX-A: b\r\n\r\n", false, false, false);
    assert_eq!(values(&f, "connection"), ["close"]);
    assert!(values(&f, "content-length").is_empty());
    assert!(values(&f, "transfer-encoding").is_empty());
    let (_, f) = back("HTTP/1.1 200 OK\r\n\r\n", false, false, true);
    assert_eq!(values(&f, "connection"), ["close"]);
}

#[test]
fn response_framing_from_the_argument() {
    let fields = [(&b"Content-Length"[..], &b"10"[..]), (b"X-A", b"b")];
    let write = |body| {
        let mut out = Vec::new();
        write_response_head(&mut out, 200, fields.iter().copied(), body, false, false);
        text(&out)
    };
    assert_eq!(
        write(Framing::Length(4)),
        "HTTP/1.1 200 OK\r\nX-A: b\r\ncontent-length: 4\r\n\r\n"
    );
    assert_eq!(
        write(Framing::Chunked),
        "HTTP/1.1 200 OK\r\nX-A: b\r\ntransfer-encoding: chunked\r\n\r\n"
    );
}

#[test]
fn empty_body_keeps_the_backend_length() {
    // A response to HEAD describes the GET representation.
    let (_, f) = back(
        "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n",
        true,
        false,
        false,
    );
    assert_eq!(values(&f, "content-length"), ["1234"]);
    let (_, f) = back(
        "HTTP/1.1 304 Not Modified\r\nContent-Length: 77, 77\r\n\r\n",
        false,
        false,
        false,
    );
    assert_eq!(values(&f, "content-length"), ["77"]);
    // Without it a client would read a 200 until close.
    let (_, f) = back(
        "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        false,
        false,
        false,
    );
    assert_eq!(values(&f, "content-length"), ["0"]);
    // Never on 1xx or 204.
    for status in ["100 Continue", "103 Early Hints", "204 No Content"] {
        let raw = format!("HTTP/1.1 {status}\r\nContent-Length: 5\r\n\r\n");
        let (_, f) = back(&raw, false, false, false);
        assert!(values(&f, "content-length").is_empty(), "{status}");
    }
    // A HEAD response to a chunked GET gets no invented length.
    let (_, f) = back(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        true,
        false,
        false,
    );
    assert!(values(&f, "content-length").is_empty());
    assert!(values(&f, "transfer-encoding").is_empty());
}

#[test]
fn reason_phrases() {
    assert_eq!(reason(200), "OK");
    assert_eq!(reason(101), "Switching Protocols");
    assert_eq!(reason(404), "Not Found");
    assert_eq!(reason(413), "Content Too Large");
    assert_eq!(reason(502), "Bad Gateway");
    assert_eq!(reason(599), "Status");
    for status in 100..=999 {
        let r = reason(status);
        assert!(!r.is_empty());
        assert!(
            r.bytes().all(|b| b == b' ' || b.is_ascii_graphic()),
            "{status}"
        );
    }
}

#[test]
fn unknown_status_written_with_a_phrase() {
    let (out, _) = back(
        "HTTP/1.1 599 Whatever\r\nContent-Length: 0\r\n\r\n",
        false,
        false,
        false,
    );
    assert!(out.starts_with("HTTP/1.1 599 Status\r\n"), "{out}");
}
