use super::*;

/// A ClientHello body with `sni` (if any), padded with `extra` bytes of another
/// extension.
fn hello_body(sni: Option<&str>, extra: usize) -> Vec<u8> {
    let mut b = vec![3, 3];
    b.extend_from_slice(&[7; 32]); // random
    b.push(32);
    b.extend_from_slice(&[9; 32]); // session id
    b.extend_from_slice(&[0, 4, 0x13, 0x01, 0x13, 0x02]); // two suites
    b.extend_from_slice(&[1, 0]); // null compression
    let mut exts = Vec::new();
    // supported_versions, before the name: the parser walks past it.
    exts.extend_from_slice(&[0, 43, 0, 3, 2, 3, 4]);
    if let Some(name) = sni {
        let n = name.len() as u16;
        exts.extend_from_slice(&[0, 0]);
        exts.extend_from_slice(&(n + 5).to_be_bytes());
        exts.extend_from_slice(&(n + 3).to_be_bytes());
        exts.push(0);
        exts.extend_from_slice(&n.to_be_bytes());
        exts.extend_from_slice(name.as_bytes());
    }
    if extra > 0 {
        exts.extend_from_slice(&[0, 21]); // padding
        exts.extend_from_slice(&(extra as u16).to_be_bytes());
        exts.extend(std::iter::repeat_n(0, extra));
    }
    b.extend_from_slice(&(exts.len() as u16).to_be_bytes());
    b.extend_from_slice(&exts);
    b
}

/// The handshake message for `body`.
fn message(body: &[u8]) -> Vec<u8> {
    let mut m = vec![1];
    m.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    m.extend_from_slice(body);
    m
}

/// `msg` cut into handshake records of at most `size` bytes.
fn records(msg: &[u8], size: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in msg.chunks(size) {
        out.extend_from_slice(&[0x16, 3, 1]);
        out.extend_from_slice(&(chunk.len() as u16).to_be_bytes());
        out.extend_from_slice(chunk);
    }
    out
}

#[test]
fn finds_the_name_in_one_record() {
    let wire = records(&message(&hello_body(Some("API.Example.com"), 0)), 16384);
    assert_eq!(peek(&wire), Ok(Peek::Done(Some("api.example.com".into()))));
    // Bytes after the ClientHello (none expected, but harmless) do not matter.
    let mut more = wire.clone();
    more.extend_from_slice(b"\x14\x03\x03\x00\x01\x01");
    assert_eq!(peek(&more), Ok(Peek::Done(Some("api.example.com".into()))));
}

#[test]
fn every_prefix_needs_more_and_never_errs() {
    for records_of in [16384, 100, 7, 1] {
        let wire = records(&message(&hello_body(Some("a.example"), 300)), records_of);
        for cut in 0..wire.len() {
            assert_eq!(
                peek(&wire[..cut]),
                Ok(Peek::NeedMore),
                "records of {records_of}, cut {cut}"
            );
        }
        assert_eq!(
            peek(&wire),
            Ok(Peek::Done(Some("a.example".into()))),
            "records of {records_of}"
        );
    }
}

#[test]
fn no_name_is_a_done_without_one() {
    let wire = records(&message(&hello_body(None, 10)), 16384);
    assert_eq!(peek(&wire), Ok(Peek::Done(None)));
    // No extensions block at all.
    let mut body = hello_body(None, 0);
    body.truncate(body.len() - 2 - 7);
    assert_eq!(peek(&records(&message(&body), 16384)), Ok(Peek::Done(None)));
}

#[test]
fn garbage_is_refused_at_once() {
    assert_eq!(peek(b"GET / HTTP/1.1\r\n"), Err(ClientHelloError::NotTls));
    assert_eq!(peek(b"\x16\x02"), Err(ClientHelloError::NotTls));
    assert_eq!(peek(b"\x17"), Err(ClientHelloError::NotTls));
    // A handshake that is not a ClientHello (a ServerHello).
    assert_eq!(
        peek(&[0x16, 3, 3, 0, 4, 2, 0, 0, 0]),
        Err(ClientHelloError::NotClientHello)
    );
    assert_eq!(
        peek(&[0x16, 3, 3, 0, 0]),
        Err(ClientHelloError::Malformed("empty record"))
    );
    // A declared length past the cap is refused before it is read.
    assert_eq!(
        peek(&[0x16, 3, 1, 0, 4, 1, 0x01, 0x00, 0x00]),
        Err(ClientHelloError::TooLarge)
    );
}

#[test]
fn lengths_that_do_not_add_up_are_refused() {
    let body = hello_body(Some("a.example"), 0);
    // Cut the body short but declare it whole: the extensions overrun.
    let mut short = body.clone();
    short.truncate(body.len() - 3);
    assert!(matches!(
        peek(&records(&message(&short), 16384)),
        Err(ClientHelloError::Malformed(_))
    ));
    // A name with a space.
    let spaced = records(&message(&hello_body(Some("a b.example"), 0)), 16384);
    assert_eq!(
        peek(&spaced),
        Err(ClientHelloError::Malformed("server name"))
    );
    // Odd cipher suite bytes.
    let mut odd = hello_body(Some("a.example"), 0);
    odd[2 + 32 + 33 + 1] = 3;
    assert!(peek(&records(&message(&odd), 16384)).is_err());
}

#[test]
fn fuzzish_mutations_never_panic() {
    let wire = records(&message(&hello_body(Some("fuzz.example"), 64)), 50);
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..20_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let mut w = wire.clone();
        let i = (x % w.len() as u64) as usize;
        w[i] = (x >> 32) as u8;
        let cut = ((x >> 16) % (w.len() as u64 + 1)) as usize;
        let _ = peek(&w[..cut]);
    }
}
