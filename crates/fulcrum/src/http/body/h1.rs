//! HTTP/1.1 bodies on a socket: a source that decodes the framing through
//! `fulcrum_core::http1` (and sends a client its `100 Continue` before the first
//! read), and a sink that frames what it writes.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use fulcrum_core::http1::{self, ChunkedDecoder, Decoded, Framing};
use http::{HeaderMap, HeaderName, HeaderValue};

use super::{BodyError, Frame};
use crate::io::{self, Conn, IoError};

enum State {
    Length(u64),
    Chunked(ChunkedDecoder),
    UntilClose,
    Done,
}

/// An HTTP/1.1 body read from a socket, beginning with the bytes already in `buf`.
/// Bytes after the body stay in `buf` (a pipelined request).
pub struct H1Source<'a> {
    io: &'a Conn,
    buf: &'a mut BytesMut,
    state: State,
    timeout: Duration,
    pub(super) limit: u64,
    /// A client sent `Expect: 100-continue` and has had no answer yet.
    expect_continue: bool,
    /// Body bytes delivered so far.
    pub received: u64,
}

impl<'a> H1Source<'a> {
    /// A body framed as `framing`; `limit` caps its size (`u64::MAX` for none).
    pub fn new(
        io: &'a Conn,
        buf: &'a mut BytesMut,
        framing: Framing,
        timeout: Duration,
        limit: u64,
    ) -> Self {
        let state = match framing {
            Framing::Empty | Framing::Length(0) => State::Done,
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::Chunked(ChunkedDecoder::new()),
            Framing::UntilClose => State::UntilClose,
        };
        Self {
            io,
            buf,
            state,
            timeout,
            limit,
            expect_continue: false,
            received: 0,
        }
    }

    /// Sends the client `100 Continue` before the first read from its socket (it
    /// sent `Expect: 100-continue` and waits for it before sending the body).
    pub fn expect_continue(mut self, yes: bool) -> Self {
        self.expect_continue = yes;
        self
    }

    /// The body bytes already buffered, taken at once when the body has a length, so
    /// a small body leaves in the same write as the head. Empty for other framings.
    pub fn take_buffered(&mut self) -> Result<Bytes, BodyError> {
        let State::Length(remaining) = &mut self.state else {
            return Ok(Bytes::new());
        };
        let n = (*remaining).min(self.buf.len() as u64);
        if n == 0 {
            return Ok(Bytes::new());
        }
        *remaining -= n;
        if *remaining == 0 {
            self.state = State::Done;
        }
        let data = self.buf.split_to(n as usize).freeze();
        self.received += n;
        if self.received > self.limit {
            return Err(BodyError::TooLarge);
        }
        Ok(data)
    }

    /// Whether the whole body has been read.
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// The next frame, `None` at the end.
    pub async fn next(&mut self) -> Result<Option<Frame>, BodyError> {
        loop {
            match &mut self.state {
                State::Done => return Ok(None),
                State::Length(remaining) => {
                    if !self.buf.is_empty() {
                        let n = (*remaining).min(self.buf.len() as u64);
                        *remaining -= n;
                        if *remaining == 0 {
                            self.state = State::Done;
                        }
                        let data = self.buf.split_to(n as usize).freeze();
                        return self.deliver(data);
                    }
                }
                State::UntilClose => {
                    if !self.buf.is_empty() {
                        let all = self.buf.split().freeze();
                        return self.deliver(all);
                    }
                }
                State::Chunked(dec) => {
                    if !self.buf.is_empty() {
                        let (used, event) = dec.decode(self.buf)?;
                        match event {
                            Decoded::Data { start, len } => {
                                let mut taken = self.buf.split_to(used);
                                let _ = taken.split_to(start);
                                taken.truncate(len);
                                return self.deliver(taken.freeze());
                            }
                            Decoded::Done { start, end } => {
                                let taken = self.buf.split_to(used);
                                self.state = State::Done;
                                let trailers = taken.get(start..end).unwrap_or_default();
                                if trailers.is_empty() {
                                    return Ok(None);
                                }
                                return Ok(Some(Frame::Trailers(trailer_map(trailers)?)));
                            }
                            Decoded::NeedMore => {
                                let _ = self.buf.split_to(used);
                            }
                        }
                    }
                }
            }
            if std::mem::take(&mut self.expect_continue) {
                // Best effort: a client that stopped waiting sends the body anyway.
                let _ =
                    io::write_all(self.io, b"HTTP/1.1 100 Continue\r\n\r\n", self.timeout).await;
            }
            let n = io::read_some(self.io, self.buf, self.timeout).await?;
            if n == 0 {
                if matches!(self.state, State::UntilClose) {
                    self.state = State::Done;
                    return Ok(None);
                }
                return Err(BodyError::Eof);
            }
        }
    }

    fn deliver(&mut self, data: Bytes) -> Result<Option<Frame>, BodyError> {
        self.received += data.len() as u64;
        if self.received > self.limit {
            return Err(BodyError::TooLarge);
        }
        Ok(Some(Frame::Data(data)))
    }
}

/// Trailer fields as a map, by [`http1::parse_trailers`]: every field kept, the
/// forbidden ones removed, a malformed section refused.
fn trailer_map(section: &[u8]) -> Result<HeaderMap, BodyError> {
    let mut map = HeaderMap::new();
    for (name, value) in http1::parse_trailers(section)? {
        // A token name and a field value are always valid here: parse_trailers checked them.
        if let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
        {
            map.append(name, value);
        }
    }
    Ok(map)
}

/// How an HTTP/1.1 sink frames what it writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Out {
    /// Bytes as they come (the length was announced, or the connection closes after).
    Raw,
    /// Chunked, with a last chunk and trailers at the end.
    Chunked,
}

/// An HTTP/1.1 body written to a socket; the head is queued first so head and the
/// first data leave in one write.
pub struct H1Sink<'a> {
    io: &'a Conn,
    /// Bytes queued for the next write.
    pub out: Vec<u8>,
    mode: Out,
    timeout: Duration,
    trailers: Vec<u8>,
    /// Body bytes written.
    pub sent: u64,
}

/// Queue size past which a sink writes before taking more.
const HIGH_WATER: usize = 64 * 1024;

impl Drop for H1Sink<'_> {
    fn drop(&mut self) {
        io::recycle_vec(std::mem::take(&mut self.out));
    }
}

impl<'a> H1Sink<'a> {
    /// A sink whose `out` already holds `head`.
    pub fn new(io: &'a Conn, out: Vec<u8>, mode: Out, timeout: Duration) -> Self {
        Self {
            io,
            out,
            mode,
            timeout,
            trailers: Vec::new(),
            sent: 0,
        }
    }

    /// Queues a frame, writing when the queue is large.
    pub async fn push(&mut self, frame: Frame) -> Result<(), IoError> {
        match frame {
            Frame::Data(data) => {
                self.sent += data.len() as u64;
                match self.mode {
                    Out::Raw => self.out.extend_from_slice(&data),
                    Out::Chunked => http1::write_chunk(&mut self.out, &data),
                }
            }
            Frame::Trailers(map) => {
                for (name, value) in &map {
                    self.trailers.extend_from_slice(name.as_str().as_bytes());
                    self.trailers.extend_from_slice(b": ");
                    self.trailers.extend_from_slice(value.as_bytes());
                    self.trailers.extend_from_slice(b"\r\n");
                }
            }
        }
        if self.out.len() >= HIGH_WATER {
            self.flush().await?;
        }
        Ok(())
    }

    /// Writes what is queued.
    pub async fn flush(&mut self) -> Result<(), IoError> {
        if !self.out.is_empty() {
            io::write_all(self.io, &self.out, self.timeout).await?;
            self.out.clear();
        }
        Ok(())
    }

    /// Ends the body (last chunk and trailers when chunked) and writes everything.
    pub async fn finish(&mut self) -> Result<(), IoError> {
        if self.mode == Out::Chunked {
            http1::write_last_chunk(&mut self.out, &self.trailers);
        }
        self.flush().await
    }
}
