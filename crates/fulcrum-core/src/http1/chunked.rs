//! The chunked transfer coding as a state machine (RFC 9112 §7.1).
//!
//! Strict on purpose: a size line must be hex digits then CRLF (extensions allowed and
//! dropped), data must end in CRLF, bare LF is refused, and sizes cannot overflow.
//! Anything else is an error, because a lenient decoder is how smuggling starts.

/// Longest chunk-size line accepted, extensions included, CRLF excluded.
const MAX_SIZE_LINE: usize = 4096;
/// Largest trailer section accepted.
const MAX_TRAILERS: usize = 16 * 1024;

/// Why a chunked body was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    /// The chunk-size line is not hex digits, overflows, or is too long.
    #[error("invalid chunk size")]
    Size,
    /// Chunk data is not followed by CRLF.
    #[error("missing CRLF after chunk data")]
    DataEnd,
    /// The trailer section is malformed or too large.
    #[error("invalid trailer section")]
    Trailers,
}

/// One step of decoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decoded {
    /// `input[start..start + len]` is body data.
    Data {
        /// Offset of the data in the input.
        start: usize,
        /// Length of the data.
        len: usize,
    },
    /// More input is needed.
    NeedMore,
    /// The body ended; `input[start..end]` is the trailer fields, each with its CRLF
    /// (empty when there are none).
    Done {
        /// Start of the trailer fields in the input.
        start: usize,
        /// End of the trailer fields in the input.
        end: usize,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Size,
    Data(u64),
    DataEnd,
    Trailers,
    Done,
}

/// Decodes a chunked body fed in pieces; holds no buffer of its own.
#[derive(Clone, Debug)]
pub struct ChunkedDecoder {
    state: State,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self { state: State::Size }
    }
}

impl ChunkedDecoder {
    /// A decoder at the start of a body.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the last chunk and trailers have been read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes from `input`, returning how many bytes were consumed and what they were.
    /// Consumed bytes include the framing before the returned event; the caller drops
    /// them and calls again with the rest.
    pub fn decode(&mut self, input: &[u8]) -> Result<(usize, Decoded), ChunkError> {
        let mut used = 0;
        loop {
            let rest = input.get(used..).unwrap_or_default();
            match self.state {
                State::Size => {
                    // The window holds the longest line and its CRLF.
                    let Some(eol) = find_crlf(rest, MAX_SIZE_LINE + 2)? else {
                        if rest.len() >= MAX_SIZE_LINE + 2 {
                            return Err(ChunkError::Size);
                        }
                        return Ok((used, Decoded::NeedMore));
                    };
                    let size = parse_size_line(rest.get(..eol).unwrap_or_default())?;
                    used += eol + 2;
                    self.state = if size == 0 {
                        State::Trailers
                    } else {
                        State::Data(size)
                    };
                }
                State::Data(remaining) => {
                    if rest.is_empty() {
                        return Ok((used, Decoded::NeedMore));
                    }
                    let len = usize::try_from(remaining)
                        .unwrap_or(usize::MAX)
                        .min(rest.len());
                    let left = remaining - len as u64;
                    self.state = if left == 0 {
                        State::DataEnd
                    } else {
                        State::Data(left)
                    };
                    return Ok((used + len, Decoded::Data { start: used, len }));
                }
                State::DataEnd => {
                    if !b"\r\n".starts_with(rest.get(..2).unwrap_or(rest)) {
                        return Err(ChunkError::DataEnd);
                    }
                    if rest.len() < 2 {
                        return Ok((used, Decoded::NeedMore));
                    }
                    used += 2;
                    self.state = State::Size;
                }
                State::Trailers => {
                    if rest.starts_with(b"\r\n") {
                        self.state = State::Done;
                        return Ok((
                            used + 2,
                            Decoded::Done {
                                start: used,
                                end: used,
                            },
                        ));
                    }
                    let Some(end) = find(rest, b"\r\n\r\n", MAX_TRAILERS) else {
                        let window = rest.get(..rest.len().min(MAX_TRAILERS)).unwrap_or_default();
                        if rest.len() >= MAX_TRAILERS || has_bare_cr_or_lf(window) {
                            return Err(ChunkError::Trailers);
                        }
                        return Ok((used, Decoded::NeedMore));
                    };
                    let section = rest.get(..end + 4).unwrap_or_default();
                    // Trailer fields may be forwarded as they are, so a line ending a
                    // peer could read differently is refused (httparse takes LF).
                    if has_bare_cr_or_lf(section) {
                        return Err(ChunkError::Trailers);
                    }
                    let mut slots = [httparse::EMPTY_HEADER; 32];
                    match httparse::parse_headers(section, &mut slots) {
                        Ok(httparse::Status::Complete((n, _))) if n == section.len() => {}
                        _ => return Err(ChunkError::Trailers),
                    }
                    self.state = State::Done;
                    let fields = Decoded::Done {
                        start: used,
                        end: used + end + 2,
                    };
                    return Ok((used + end + 4, fields));
                }
                State::Done => {
                    return Ok((
                        used,
                        Decoded::Done {
                            start: used,
                            end: used,
                        },
                    ))
                }
            }
        }
    }
}

/// `1*HEXDIG [ BWS ";" ext ]`, no CTLs but HTAB.
fn parse_size_line(line: &[u8]) -> Result<u64, ChunkError> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 || digits > 16 {
        return Err(ChunkError::Size);
    }
    let mut size: u64 = 0;
    for &b in line.get(..digits).unwrap_or_default() {
        let d = (b as char).to_digit(16).ok_or(ChunkError::Size)?;
        size = size
            .checked_mul(16)
            .and_then(|s| s.checked_add(u64::from(d)))
            .ok_or(ChunkError::Size)?;
    }
    let rest = line.get(digits..).unwrap_or_default();
    if !rest.is_empty() {
        let ext = super::head::trim(rest);
        if !ext.starts_with(b";") || rest.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            return Err(ChunkError::Size);
        }
    }
    Ok(size)
}

/// Position of the first CRLF within `limit` bytes (`Ok(None)`: not there yet); a bare
/// CR or LF before it is an error.
fn find_crlf(buf: &[u8], limit: usize) -> Result<Option<usize>, ChunkError> {
    let window = buf.get(..buf.len().min(limit)).unwrap_or_default();
    let Some(i) = window.iter().position(|&b| b == b'\r' || b == b'\n') else {
        return Ok(None);
    };
    match (window.get(i), window.get(i + 1)) {
        (Some(b'\r'), Some(b'\n')) => Ok(Some(i)),
        (Some(b'\r'), None) => Ok(None),
        _ => Err(ChunkError::Size),
    }
}

/// A CR not followed by LF, or an LF not preceded by CR; a CR at the very end may
/// still be followed by its LF.
fn has_bare_cr_or_lf(buf: &[u8]) -> bool {
    let mut bare = buf.first() == Some(&b'\n');
    for (&a, &b) in buf.iter().zip(buf.iter().skip(1)) {
        bare |= (a == b'\r') != (b == b'\n');
    }
    bare
}

fn find(buf: &[u8], needle: &[u8], limit: usize) -> Option<usize> {
    let window = buf.get(..buf.len().min(limit)).unwrap_or_default();
    window.windows(needle.len()).position(|w| w == needle)
}

/// Appends one chunk (size line, data, CRLF); empty data writes nothing, since an
/// empty chunk would end the body.
pub fn write_chunk(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    let mut hex = [0u8; 16];
    let mut n = data.len();
    let mut i = hex.len();
    while n > 0 || i == hex.len() {
        i -= 1;
        hex[i] = b"0123456789abcdef"[n & 15];
        n >>= 4;
    }
    out.extend_from_slice(&hex[i..]);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// Appends the last chunk and the trailer section (`trailers` holds field lines, each
/// ending in CRLF, or nothing).
pub fn write_last_chunk(out: &mut Vec<u8>, trailers: &[u8]) {
    out.extend_from_slice(b"0\r\n");
    out.extend_from_slice(trailers);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
#[path = "chunked_tests.rs"]
mod tests;
