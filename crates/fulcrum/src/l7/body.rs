//! Bodies as a stream of frames between any source and any sink: HTTP/1.1 framing
//! (length, chunked, until close) decoded through `fulcrum_core::http1`, or HTTP/2
//! streams. Memory stays bounded: one read at a time, h2 flow control respected.

use std::future::Future;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use fulcrum_core::http1::{self, ChunkedDecoder, Decoded, Framing};
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::io::Conn;
use crate::io::{self, IoError};

/// One piece of a body.
#[derive(Debug)]
pub enum Frame {
    /// Body bytes.
    Data(Bytes),
    /// Trailer fields, after the last data.
    Trailers(HeaderMap),
}

/// Why a body stopped early.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// Socket error or timeout.
    #[error("{0}")]
    Io(#[from] IoError),
    /// The peer closed before the body's end.
    #[error("closed before the end of the body")]
    Eof,
    /// Bad chunked framing.
    #[error("{0}")]
    Chunked(#[from] http1::ChunkError),
    /// Over the configured body limit.
    #[error("body too large")]
    TooLarge,
    /// HTTP/2 stream error.
    #[error("{0}")]
    H2(#[from] h2::Error),
}

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
    limit: u64,
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
            received: 0,
        }
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

/// An HTTP/2 body being received.
pub struct H2Source {
    stream: h2::RecvStream,
    data_done: bool,
    done: bool,
    limit: u64,
    /// Body bytes delivered so far.
    pub received: u64,
}

impl H2Source {
    /// Wraps a stream; `limit` caps the body size.
    pub fn new(stream: h2::RecvStream, limit: u64) -> Self {
        let done = stream.is_end_stream();
        Self {
            stream,
            data_done: done,
            done,
            limit,
            received: 0,
        }
    }

    /// Whether the body has ended.
    pub fn is_end(&self) -> bool {
        self.done
    }

    /// The next frame, `None` at the end.
    pub async fn next(&mut self) -> Result<Option<Frame>, BodyError> {
        if self.done {
            return Ok(None);
        }
        if !self.data_done {
            match self.stream.data().await {
                Some(Ok(data)) => {
                    let _ = self.stream.flow_control().release_capacity(data.len());
                    self.received += data.len() as u64;
                    if self.received > self.limit {
                        return Err(BodyError::TooLarge);
                    }
                    return Ok(Some(Frame::Data(data)));
                }
                Some(Err(e)) => return Err(e.into()),
                None => self.data_done = true,
            }
        }
        self.done = true;
        Ok(self.stream.trailers().await?.map(Frame::Trailers))
    }
}

/// Sends data on an HTTP/2 stream within its flow-control window.
pub async fn h2_send(stream: &mut h2::SendStream<Bytes>, mut data: Bytes) -> Result<(), h2::Error> {
    while !data.is_empty() {
        stream.reserve_capacity(data.len());
        let granted = std::future::poll_fn(|cx| stream.poll_capacity(cx))
            .await
            .ok_or_else(|| h2::Error::from(h2::Reason::CANCEL))??;
        let chunk = data.split_to(granted.min(data.len()));
        stream.send_data(chunk, false)?;
    }
    Ok(())
}

/// An HTTP/2 body being sent; trailers are held until the end.
pub struct H2Sink {
    stream: h2::SendStream<Bytes>,
    trailers: Option<HeaderMap>,
    /// Body bytes sent.
    pub sent: u64,
}

impl H2Sink {
    /// Wraps a stream.
    pub fn new(stream: h2::SendStream<Bytes>) -> Self {
        Self {
            stream,
            trailers: None,
            sent: 0,
        }
    }
}

/// Any body source.
pub enum Source<'a> {
    /// HTTP/1.1 framing on a socket.
    H1(H1Source<'a>),
    /// An HTTP/2 stream.
    H2(H2Source),
}

/// Any body sink.
pub enum Sink<'a> {
    /// HTTP/1.1 framing on a socket.
    H1(H1Sink<'a>),
    /// An HTTP/2 stream.
    H2(H2Sink),
}

/// Which end of a pump failed.
#[derive(Debug, thiserror::Error)]
pub enum PumpError {
    /// Reading failed.
    #[error("read: {0}")]
    Source(BodyError),
    /// Writing failed.
    #[error("write: {0}")]
    Sink(String),
}

impl Source<'_> {
    /// The next frame.
    pub async fn next(&mut self) -> Result<Option<Frame>, BodyError> {
        match self {
            Self::H1(s) => s.next().await,
            Self::H2(s) => s.next().await,
        }
    }

    /// Body bytes read so far.
    pub fn received(&self) -> u64 {
        match self {
            Self::H1(s) => s.received,
            Self::H2(s) => s.received,
        }
    }
}

impl Sink<'_> {
    async fn push(&mut self, frame: Frame) -> Result<(), PumpError> {
        match self {
            Self::H1(s) => s
                .push(frame)
                .await
                .map_err(|e| PumpError::Sink(e.to_string())),
            Self::H2(s) => match frame {
                Frame::Data(data) => {
                    s.sent += data.len() as u64;
                    h2_send(&mut s.stream, data)
                        .await
                        .map_err(|e| PumpError::Sink(e.to_string()))
                }
                Frame::Trailers(map) => {
                    s.trailers = Some(map);
                    Ok(())
                }
            },
        }
    }

    async fn flush(&mut self) -> Result<(), PumpError> {
        match self {
            Self::H1(s) => s.flush().await.map_err(|e| PumpError::Sink(e.to_string())),
            Self::H2(_) => Ok(()),
        }
    }

    async fn finish(&mut self) -> Result<(), PumpError> {
        match self {
            Self::H1(s) => s.finish().await.map_err(|e| PumpError::Sink(e.to_string())),
            Self::H2(s) => {
                let r = match s.trailers.take() {
                    Some(t) => s.stream.send_trailers(t),
                    None => s.stream.send_data(Bytes::new(), true),
                };
                r.map_err(|e| PumpError::Sink(e.to_string()))
            }
        }
    }

    /// Body bytes written so far.
    pub fn sent(&self) -> u64 {
        match self {
            Self::H1(s) => s.sent,
            Self::H2(s) => s.sent,
        }
    }

    /// Resets an HTTP/2 stream whose source failed, so the peer sees an error
    /// rather than a short body that looks complete.
    pub fn abort(&mut self) {
        if let Self::H2(s) = self {
            s.stream.send_reset(h2::Reason::INTERNAL_ERROR);
        }
    }
}

/// Moves a whole body from `src` to `sink`, writing only when the source would have
/// to wait, so a small body leaves in the same write as its head, and a stream that
/// pauses (server-sent events, a chunk then silence) reaches the client at once.
pub async fn pump(src: &mut Source<'_>, sink: &mut Sink<'_>) -> Result<(), PumpError> {
    loop {
        let next = src.next();
        tokio::pin!(next);
        // One poll tells whether the next frame is already here; if not, what was
        // gathered goes out before waiting (the pending read keeps its place).
        let ready = std::future::poll_fn(|cx| match next.as_mut().poll(cx) {
            std::task::Poll::Ready(r) => std::task::Poll::Ready(Some(r)),
            std::task::Poll::Pending => std::task::Poll::Ready(None),
        })
        .await;
        let result = match ready {
            Some(r) => r,
            None => {
                sink.flush().await?;
                match sink {
                    // An HTTP/2 peer may cancel while the source is quiet (a gRPC
                    // client giving up on a stream): stop, so dropping the source
                    // passes the cancel on.
                    Sink::H2(s) => tokio::select! {
                        r = &mut next => r,
                        reason = std::future::poll_fn(|cx| s.stream.poll_reset(cx)) => {
                            let why = reason.map_or_else(|e| e.to_string(), |r| format!("{r:?}"));
                            return Err(PumpError::Sink(format!("stream reset by peer: {why}")));
                        }
                    },
                    Sink::H1(_) => next.await,
                }
            }
        };
        match result {
            Ok(Some(frame)) => sink.push(frame).await?,
            Ok(None) => return sink.finish().await,
            Err(e) => {
                sink.abort();
                return Err(PumpError::Source(e));
            }
        }
    }
}
