//! Request and response heads from untrusted bytes: parsing never panics, whatever it
//! accepts stays inside the buffer, and a request it accepts is rewritten into a head
//! that parses again with the same method, target, Host and body framing (so what a
//! backend reads is what was checked here). Responses likewise, status and framing.
#![no_main]

use fulcrum_core::http1::{
    parse_request, parse_response, write_request_head, write_response_head, Forwarded, Framing,
    HeadError, RequestHead, ResponseHead, Span, Version,
};
use libfuzzer_sys::fuzz_target;

const MAX: usize = 16 * 1024;
/// httparse's slots in head.rs; a rewritten head adds up to six fields, so one near
/// the limit may go over it on the way back, which is not a bug.
const MAX_FIELDS: usize = 100;

const FWD: Forwarded<'static> = Forwarded {
    original_host: None,
    keep_chain: true,
    client_ip: "192.0.2.1",
    proto: "https",
    via_version: "1.1",
};

fuzz_target!(|data: &[u8]| {
    request(data);
    response(data, false);
    response(data, true);
});

fn within(span: Span, buf: &[u8], len: usize) -> &[u8] {
    let bytes = span.get(buf);
    if !bytes.is_empty() {
        let start = bytes.as_ptr() as usize - buf.as_ptr() as usize;
        assert!(start + bytes.len() <= len, "span beyond the head");
    }
    bytes
}

fn field_lines(out: &[u8]) -> usize {
    out.windows(2)
        .filter(|w| w == b"\r\n")
        .count()
        .saturating_sub(2)
}

fn request(data: &[u8]) {
    let head = match parse_request(data, MAX) {
        Ok(Some(head)) => head,
        Ok(None) => {
            assert!(data.len() < MAX);
            return;
        }
        Err(_) => return,
    };
    check_request(data, &head);
    // A strict prefix of a complete head is never complete.
    assert!(matches!(
        parse_request(&data[..head.len - 1], MAX),
        Ok(None)
    ));

    let host = head.host.map_or(&b"fallback.example"[..], |h| h.get(data));
    let body = match head.body {
        Framing::Empty if head.method.get(data) == b"POST" => Framing::Length(0),
        other => other,
    };
    let mut out = Vec::new();
    write_request_head(
        &mut out,
        head.method.get(data),
        head.target.get(data),
        host,
        head.fields(data),
        body,
        &FWD,
    );
    let again = match parse_request(&out, out.len()) {
        Ok(Some(again)) => again,
        Err(HeadError::TooLarge) if field_lines(&out) > MAX_FIELDS => return,
        other => panic!(
            "rewritten head refused: {other:?}\n{}",
            String::from_utf8_lossy(&out)
        ),
    };
    check_request(&out, &again);
    assert_eq!(again.len, out.len());
    assert_eq!(again.version, Version::Http11);
    assert_eq!(again.method.get(&out), head.method.get(data));
    assert_eq!(again.target.get(&out), head.target.get(data));
    assert_eq!(again.host.map(|h| h.get(&out)), Some(host));
    let framing = match body {
        Framing::Length(0) => Framing::Empty,
        other => other,
    };
    assert_eq!(again.body, framing);
    assert!(again.keep_alive);
    assert!(!again.expect_continue && !again.upgrade);
}

fn check_request(buf: &[u8], head: &RequestHead) {
    assert!(head.len <= buf.len() && head.len <= MAX.max(buf.len()));
    assert_ne!(head.body, Framing::UntilClose);
    assert!(!within(head.method, buf, head.len).is_empty());
    assert!(!within(head.target, buf, head.len).is_empty());
    for f in &head.fields {
        assert!(!within(f.name, buf, head.len).is_empty());
        within(f.value, buf, head.len);
    }
    if let Some(h) = head.host {
        assert!(!within(h, buf, head.len).is_empty());
    } else {
        assert_eq!(head.version, Version::Http10);
    }
}

fn response(data: &[u8], head_request: bool) {
    let head = match parse_response(data, MAX, head_request) {
        Ok(Some(head)) => head,
        _ => return,
    };
    check_response(data, &head, head_request);
    let close = !head.keep_alive;
    let mut out = Vec::new();
    write_response_head(
        &mut out,
        head.status,
        head.fields(data),
        head.body,
        close,
        false,
    );
    let again = match parse_response(&out, out.len(), head_request) {
        Ok(Some(again)) => again,
        Err(HeadError::TooLarge) if field_lines(&out) > MAX_FIELDS => return,
        other => panic!(
            "rewritten head refused: {other:?}\n{}",
            String::from_utf8_lossy(&out)
        ),
    };
    check_response(&out, &again, head_request);
    assert_eq!(again.len, out.len());
    assert_eq!(again.status, head.status);
    assert_eq!(again.body, head.body);
    assert_eq!(again.keep_alive, head.keep_alive);
}

fn check_response(buf: &[u8], head: &ResponseHead, head_request: bool) {
    assert!(head.len <= buf.len());
    assert!((100..=999).contains(&head.status));
    if head_request || head.status < 200 || head.status == 204 || head.status == 304 {
        assert_eq!(head.body, Framing::Empty);
    }
    if head.body == Framing::UntilClose {
        assert!(!head.keep_alive);
    }
    for f in &head.fields {
        assert!(!within(f.name, buf, head.len).is_empty());
        within(f.value, buf, head.len);
    }
}
