use super::*;

/// What a caller ends with after feeding a body in pieces.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    body: Vec<u8>,
    /// Trailer fields once the body has ended.
    trailers: Option<Vec<u8>>,
    /// Input left unconsumed (bytes after the body, or a partial frame).
    rest: Vec<u8>,
}

/// Feeds `pieces` one after the other the way the I/O side does: append to a buffer,
/// decode until `NeedMore`, drop what was consumed.
fn feed<'a>(pieces: impl IntoIterator<Item = &'a [u8]>) -> Result<Outcome, ChunkError> {
    let mut dec = ChunkedDecoder::new();
    let mut buf = Vec::new();
    let mut body = Vec::new();
    let mut trailers = None;
    for piece in pieces {
        buf.extend_from_slice(piece);
        while trailers.is_none() {
            let (used, ev) = dec.decode(&buf)?;
            assert!(used <= buf.len(), "consumed beyond the input");
            match ev {
                Decoded::Data { start, len } => {
                    assert!(len > 0, "empty data event");
                    assert!(start + len <= used, "data beyond what was consumed");
                    body.extend_from_slice(&buf[start..start + len]);
                }
                Decoded::Done { start, end } => {
                    assert!(start <= end && end <= used);
                    trailers = Some(buf[start..end].to_vec());
                    assert!(dec.is_done());
                }
                Decoded::NeedMore => {
                    buf.drain(..used);
                    break;
                }
            }
            buf.drain(..used);
        }
    }
    Ok(Outcome {
        body,
        trailers,
        rest: buf,
    })
}

fn whole(input: &[u8]) -> Result<Outcome, ChunkError> {
    feed([input])
}

fn bytewise(input: &[u8]) -> Result<Outcome, ChunkError> {
    feed(input.chunks(1))
}

/// xorshift64*: deterministic, so a failure names its seed and replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn split_randomly<'a>(input: &'a [u8], rng: &mut Rng) -> Vec<&'a [u8]> {
    let mut pieces = Vec::new();
    let mut rest = input;
    while !rest.is_empty() {
        let n = 1 + rng.below(rest.len().min(64));
        let (a, b) = rest.split_at(n);
        pieces.push(a);
        rest = b;
    }
    pieces
}

const BODY: &[u8] =
    b"5;name=value\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0000006 ; x=\"y;z\"\r\n world\r\n0\r\nX-Sum: 42\r\nX-B: b\r\n\r\n";

fn expected() -> Outcome {
    Outcome {
        body: b"helloabcdefghijklmnopqrstuvwxyz world".to_vec(),
        trailers: Some(b"X-Sum: 42\r\nX-B: b\r\n".to_vec()),
        rest: Vec::new(),
    }
}

// === decoding ===

#[test]
fn simple_body() {
    let out = whole(b"5\r\nhello\r\n0\r\n\r\n").unwrap();
    assert_eq!(out.body, b"hello");
    assert_eq!(out.trailers, Some(Vec::new()));
    assert!(out.rest.is_empty());
}

#[test]
fn empty_body() {
    let out = whole(b"0\r\n\r\n").unwrap();
    assert!(out.body.is_empty());
    assert_eq!(out.trailers, Some(Vec::new()));
}

#[test]
fn whole_body_with_extensions_and_trailers() {
    assert_eq!(whole(BODY).unwrap(), expected());
}

#[test]
fn byte_by_byte() {
    assert_eq!(bytewise(BODY).unwrap(), expected());
}

#[test]
fn every_split_point() {
    for i in 0..=BODY.len() {
        let (a, b) = BODY.split_at(i);
        assert_eq!(feed([a, b]).unwrap(), expected(), "split at {i}");
    }
    for i in 0..=BODY.len() {
        for j in i..=BODY.len() {
            let out = feed([&BODY[..i], &BODY[i..j], &BODY[j..]]).unwrap();
            assert_eq!(out, expected(), "split at {i} and {j}");
        }
    }
}

#[test]
fn random_bodies_random_splits() {
    for seed in 1..300u64 {
        let mut rng = Rng(seed);
        let mut data = vec![0u8; rng.below(3000)];
        data.iter_mut().for_each(|b| *b = rng.next() as u8);
        let mut wire = Vec::new();
        let mut at = 0;
        while at < data.len() {
            let n = 1 + rng.below(700).min(data.len() - at - 1);
            write_chunk(&mut wire, &data[at..at + n]);
            at += n;
        }
        write_last_chunk(&mut wire, b"");
        wire.extend_from_slice(b"GET / HTTP/1.1\r\n");
        let out = feed(split_randomly(&wire, &mut rng)).unwrap();
        assert_eq!(out.body, data, "seed {seed}");
        assert_eq!(out.rest, b"GET / HTTP/1.1\r\n", "seed {seed}");
    }
}

#[test]
fn stops_at_the_end_of_the_body() {
    let mut dec = ChunkedDecoder::new();
    let input = b"0\r\n\r\nGET / HTTP/1.1\r\n";
    assert_eq!(
        dec.decode(input),
        Ok((5, Decoded::Done { start: 3, end: 3 }))
    );
    assert!(dec.is_done());
    // Once done, nothing more is consumed.
    assert_eq!(
        dec.decode(b"more"),
        Ok((0, Decoded::Done { start: 0, end: 0 }))
    );
}

#[test]
fn events_and_offsets() {
    let mut dec = ChunkedDecoder::new();
    assert_eq!(dec.decode(b""), Ok((0, Decoded::NeedMore)));
    assert_eq!(dec.decode(b"3\r"), Ok((0, Decoded::NeedMore)));
    assert_eq!(
        dec.decode(b"3\r\nab"),
        Ok((5, Decoded::Data { start: 3, len: 2 }))
    );
    assert_eq!(dec.decode(b""), Ok((0, Decoded::NeedMore)));
    assert_eq!(
        dec.decode(b"c\r"),
        Ok((1, Decoded::Data { start: 0, len: 1 }))
    );
    // The CRLF after data is consumed with the next event.
    assert_eq!(dec.decode(b"\r"), Ok((0, Decoded::NeedMore)));
    assert_eq!(dec.decode(b"\r\n1"), Ok((2, Decoded::NeedMore)));
    assert!(!dec.is_done());
}

#[test]
fn sizes_and_hex() {
    let out = whole(b"A\r\n0123456789\r\nf\r\n0123456789abcde\r\n0\r\n\r\n").unwrap();
    assert_eq!(out.body.len(), 25);
    let out = whole(b"00000000000000a\r\n0123456789\r\n0\r\n\r\n").unwrap();
    assert_eq!(out.body, b"0123456789");
    // Sixteen hex digits still fit in a u64.
    let mut dec = ChunkedDecoder::new();
    assert_eq!(
        dec.decode(b"ffffffffffffffff\r\nab"),
        Ok((20, Decoded::Data { start: 18, len: 2 }))
    );
}

#[test]
fn extensions() {
    for line in [
        "5;a",
        "5;a=b",
        "5;a=\"b c\"",
        "5 ;a",
        "5\t;a",
        "5; a = b ;c",
        "5;",
        "5;a=\u{e9}",
    ] {
        let input = format!("{line}\r\nhello\r\n0;last=1\r\n\r\n");
        assert_eq!(
            whole(input.as_bytes()).map(|o| o.body),
            Ok(b"hello".to_vec()),
            "{line:?}"
        );
    }
}

#[test]
fn bad_sizes() {
    for line in [
        "",
        "g",
        "-1",
        "+5",
        " 5",
        "5 ",
        "5\t",
        "5 5",
        "0x5",
        "5g",
        "5,",
        "10000000000000000",
        "fffffffffffffffff",
        "00000000000000005",
        "5;a\u{1}",
        "5;a\u{7f}",
        "5;a\0",
    ] {
        let input = format!("{line}\r\nhello\r\n0\r\n\r\n");
        assert_eq!(whole(input.as_bytes()), Err(ChunkError::Size), "{line:?}");
        assert_eq!(
            bytewise(input.as_bytes()),
            Err(ChunkError::Size),
            "{line:?}"
        );
    }
}

#[test]
fn bare_cr_or_lf_in_size_line() {
    assert_eq!(whole(b"5\nhello\r\n0\r\n\r\n"), Err(ChunkError::Size));
    assert_eq!(whole(b"5\rhello\r\n0\r\n\r\n"), Err(ChunkError::Size));
    assert_eq!(
        whole(b"5;a\nb\r\nhello\r\n0\r\n\r\n"),
        Err(ChunkError::Size)
    );
    assert_eq!(whole(b"5\r\nhello\r\n0\n\r\n"), Err(ChunkError::Size));
    assert_eq!(bytewise(b"5\nhello\r\n0\r\n\r\n"), Err(ChunkError::Size));
}

#[test]
fn size_line_too_long() {
    let line = |n: usize| format!("5;{}\r\nhello\r\n0\r\n\r\n", "a".repeat(n - 2));
    assert!(whole(line(MAX_SIZE_LINE).as_bytes()).is_ok());
    assert!(bytewise(line(MAX_SIZE_LINE).as_bytes()).is_ok());
    assert_eq!(
        whole(line(MAX_SIZE_LINE + 1).as_bytes()),
        Err(ChunkError::Size)
    );
    assert_eq!(
        bytewise(line(MAX_SIZE_LINE + 1).as_bytes()),
        Err(ChunkError::Size)
    );
    // Refused once no line end can fit, without waiting for one.
    let mut dec = ChunkedDecoder::new();
    assert_eq!(
        dec.decode(&[b'1'; MAX_SIZE_LINE + 2]),
        Err(ChunkError::Size)
    );
    let mut dec = ChunkedDecoder::new();
    assert_eq!(
        dec.decode(&[b'1'; MAX_SIZE_LINE + 1]),
        Ok((0, Decoded::NeedMore))
    );
}

#[test]
fn missing_crlf_after_data() {
    for input in [
        &b"5\r\nhelloX\r\n0\r\n\r\n"[..],
        b"5\r\nhello\n0\r\n\r\n",
        b"5\r\nhello\r0\r\n\r\n",
        b"5\r\nhello0\r\n\r\n",
        b"5\r\nhello world\r\n0\r\n\r\n",
        b"3\r\nhello\r\n0\r\n\r\n",
    ] {
        assert_eq!(whole(input), Err(ChunkError::DataEnd), "{input:?}");
        assert_eq!(bytewise(input), Err(ChunkError::DataEnd), "{input:?}");
    }
    // Refused as soon as the wrong byte is there.
    let mut dec = ChunkedDecoder::new();
    assert_eq!(
        dec.decode(b"5\r\nhello"),
        Ok((8, Decoded::Data { start: 3, len: 5 }))
    );
    assert_eq!(dec.decode(b"X"), Err(ChunkError::DataEnd));
}

#[test]
fn valid_trailers() {
    let out = whole(b"1\r\na\r\n0\r\nExpires: never\r\nX-A:\r\n\r\nnext").unwrap();
    assert_eq!(out.trailers, Some(b"Expires: never\r\nX-A:\r\n".to_vec()));
    assert_eq!(out.rest, b"next");
    let out = bytewise(b"0\r\nA: b\r\n\r\n").unwrap();
    assert_eq!(out.trailers, Some(b"A: b\r\n".to_vec()));
}

#[test]
fn malformed_trailers() {
    for trailers in [
        &b"no colon\r\n\r\n"[..],
        b"A : b\r\n\r\n",
        b" A: b\r\n\r\n",
        b"A: b\r\n c\r\n\r\n",
        b"A: b\0\r\n\r\n",
        b"A: b\n\r\n",
        b"A: b\r\n\n",
        b"\n",
        b"\rX",
        b"A: b\rc\r\n\r\n",
        b"A: b\r\n\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
        b"A: b\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
    ] {
        let mut input = b"0\r\n".to_vec();
        input.extend_from_slice(trailers);
        assert_eq!(whole(&input), Err(ChunkError::Trailers), "{trailers:?}");
        assert_eq!(bytewise(&input), Err(ChunkError::Trailers), "{trailers:?}");
    }
}

#[test]
fn too_many_trailers() {
    let fields: String = (0..40).map(|i| format!("X-{i}: v\r\n")).collect();
    let input = format!("0\r\n{fields}\r\n");
    assert_eq!(whole(input.as_bytes()), Err(ChunkError::Trailers));
}

#[test]
fn trailers_too_large() {
    let big = format!("0\r\nX-Big: {}\r\n\r\n", "v".repeat(MAX_TRAILERS));
    assert_eq!(whole(big.as_bytes()), Err(ChunkError::Trailers));
    // Refused once the limit is reached, without waiting for the end.
    let open = format!("0\r\nX-Big: {}", "v".repeat(MAX_TRAILERS));
    assert_eq!(whole(open.as_bytes()), Err(ChunkError::Trailers));
    let fits = format!("0\r\nX-Big: {}\r\n\r\n", "v".repeat(MAX_TRAILERS - 20));
    assert!(whole(fits.as_bytes()).is_ok());
}

// === encoding ===

#[test]
fn write_chunk_format() {
    let mut out = Vec::new();
    write_chunk(&mut out, b"hello");
    assert_eq!(out, b"5\r\nhello\r\n");
    out.clear();
    write_chunk(&mut out, b"");
    assert!(out.is_empty(), "an empty chunk would end the body");
    write_chunk(&mut out, &[b'x'; 255]);
    assert!(out.starts_with(b"ff\r\nxx"));
    out.clear();
    write_chunk(&mut out, &[b'x'; 4096]);
    assert!(out.starts_with(b"1000\r\nxx"));
    assert!(out.ends_with(b"xx\r\n"));
    assert_eq!(out.len(), 4 + 2 + 4096 + 2);
}

#[test]
fn write_last_chunk_format() {
    let mut out = Vec::new();
    write_last_chunk(&mut out, b"");
    assert_eq!(out, b"0\r\n\r\n");
    out.clear();
    write_last_chunk(&mut out, b"A: b\r\n");
    assert_eq!(out, b"0\r\nA: b\r\n\r\n");
}

#[test]
fn encode_decode_round_trip() {
    for seed in 1..200u64 {
        let mut rng = Rng(seed);
        let mut wire = Vec::new();
        let mut data = Vec::new();
        for _ in 0..rng.below(20) {
            let mut chunk = vec![0u8; rng.below(5000)];
            chunk.iter_mut().for_each(|b| *b = rng.next() as u8);
            write_chunk(&mut wire, &chunk);
            data.extend_from_slice(&chunk);
        }
        let trailers: &[u8] = if seed % 2 == 0 {
            b"X-T: 1\r\nX-U: 2\r\n"
        } else {
            b""
        };
        write_last_chunk(&mut wire, trailers);
        let want = Outcome {
            body: data,
            trailers: Some(trailers.to_vec()),
            rest: Vec::new(),
        };
        assert_eq!(whole(&wire).as_ref(), Ok(&want), "seed {seed}");
        assert_eq!(
            feed(split_randomly(&wire, &mut rng)),
            Ok(want),
            "seed {seed}"
        );
    }
}

#[test]
fn bare_cr_or_lf_detector() {
    assert!(!has_bare_cr_or_lf(b""));
    assert!(!has_bare_cr_or_lf(b"A: b\r\n\r\n"));
    assert!(!has_bare_cr_or_lf(b"A: b\r"), "its LF may follow");
    assert!(has_bare_cr_or_lf(b"\n"));
    assert!(has_bare_cr_or_lf(b"A: b\n"));
    assert!(has_bare_cr_or_lf(b"A: b\r\r\n"));
    assert!(has_bare_cr_or_lf(b"A\rb"));
}
