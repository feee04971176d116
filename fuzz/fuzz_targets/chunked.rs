//! Chunked bodies from untrusted bytes: the decoder never panics, never points outside
//! what it was given, and reads the same body, trailers and leftover bytes (or refuses
//! with the same error) however the input is split across reads.
#![no_main]

use fulcrum_core::http1::{ChunkError, ChunkedDecoder, Decoded};
use libfuzzer_sys::fuzz_target;

/// What a caller ends with after feeding a body in pieces.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    body: Vec<u8>,
    trailers: Option<Vec<u8>>,
    rest: Vec<u8>,
}

/// Feeds the input in pieces of the given lengths (cycled) as the I/O side does:
/// append to a buffer, decode until `NeedMore`, drop what was consumed.
fn feed(input: &[u8], lens: &[usize]) -> Result<Outcome, ChunkError> {
    let mut dec = ChunkedDecoder::new();
    let mut buf = Vec::new();
    let mut body = Vec::new();
    let mut trailers = None;
    let mut at = 0;
    for &n in lens.iter().cycle() {
        if at >= input.len() {
            break;
        }
        let end = (at + n.max(1)).min(input.len());
        buf.extend_from_slice(&input[at..end]);
        at = end;
        while trailers.is_none() {
            let (used, ev) = dec.decode(&buf)?;
            assert!(used <= buf.len(), "consumed beyond the input");
            match ev {
                Decoded::Data { start, len } => {
                    assert!(
                        len > 0 && start + len <= used,
                        "data outside what was consumed"
                    );
                    body.extend_from_slice(&buf[start..start + len]);
                }
                Decoded::Done { start, end } => {
                    assert!(start <= end && end <= used, "trailers outside the input");
                    assert!(dec.is_done());
                    trailers = Some(buf[start..end].to_vec());
                }
                Decoded::NeedMore => {
                    assert!(!dec.is_done());
                    buf.drain(..used);
                    break;
                }
            }
            buf.drain(..used);
        }
    }
    if trailers.is_some() {
        // Once done, the decoder consumes nothing more.
        assert_eq!(dec.decode(&buf).map(|(used, _)| used), Ok(0));
    }
    Ok(Outcome {
        body,
        trailers,
        rest: buf,
    })
}

fuzz_target!(|data: &[u8]| {
    let whole = feed(data, &[data.len()]);
    if let Ok(out) = &whole {
        assert!(out.body.len() <= data.len());
    }
    let mid = feed(data, &[data.len() / 2, data.len()]);
    assert_eq!(whole, mid, "split in the middle");
    let uneven = feed(data, &[1, 7, 2, 30, 3, 500]);
    assert_eq!(whole, uneven, "split unevenly");
    // Byte by byte rescans a partial line or trailer section on every call; keep the
    // quadratic cost bounded.
    if data.len() <= 4096 {
        assert_eq!(whole, feed(data, &[1]), "split byte by byte");
    }
});
