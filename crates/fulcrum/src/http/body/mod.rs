//! Bodies as a stream of frames between any source and any sink: HTTP/1.1 framing
//! (length, chunked, until close) decoded through `fulcrum_core::http1`, or HTTP/2
//! streams. Memory stays bounded: one read at a time, h2 flow control respected.

use std::future::Future;

use bytes::Bytes;
use http::HeaderMap;

use crate::io::IoError;
use fulcrum_core::http1;

mod encode;
mod h1;
mod h2;
mod h3;

pub use encode::Encoder;
pub use h1::{H1Sink, H1Source, Out};
pub use h2::{h2_send, H2Sink, H2Source};
pub use h3::{H3Recv, H3Send, H3Sink, H3Source, Probed};

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
    H2(#[from] ::h2::Error),
    /// HTTP/3 stream error.
    #[error("{0}")]
    H3(String),
}

/// Any body source.
pub enum Source<'a> {
    /// HTTP/1.1 framing on a socket.
    H1(H1Source<'a>),
    /// An HTTP/2 stream.
    H2(H2Source),
    /// An HTTP/3 stream.
    H3(H3Source),
    /// A body already taken (or none): ends at once.
    Done,
}

/// Any body sink.
pub enum Sink<'a> {
    /// HTTP/1.1 framing on a socket.
    H1(H1Sink<'a>),
    /// An HTTP/2 stream.
    H2(H2Sink),
    /// An HTTP/3 stream.
    H3(H3Sink<'a>),
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
            Self::H3(s) => s.next().await,
            Self::Done => Ok(None),
        }
    }

    /// Whether the whole body has been read.
    pub fn is_done(&self) -> bool {
        match self {
            Self::H1(s) => s.is_done(),
            Self::H2(s) => s.is_end(),
            Self::H3(s) => s.is_end(),
            Self::Done => true,
        }
    }

    /// Body bytes already buffered, when they can go with the head (HTTP/1.1 with a
    /// length); see [`H1Source::take_buffered`].
    pub fn take_buffered(&mut self) -> Result<Bytes, BodyError> {
        match self {
            Self::H1(s) => s.take_buffered(),
            Self::H2(_) | Self::H3(_) | Self::Done => Ok(Bytes::new()),
        }
    }

    /// Takes an HTTP/2 body out (leaving [`Source::Done`]), so it can be sent on a
    /// task of its own; `None` for a body that borrows its connection.
    pub fn take_owned(&mut self) -> Option<Source<'static>> {
        match std::mem::replace(self, Self::Done) {
            Self::H2(s) => Some(Source::H2(s)),
            Self::H3(s) => Some(Source::H3(s)),
            other => {
                *self = other;
                None
            }
        }
    }

    /// Caps the body at `limit` bytes from now on (a route's own `max_body_bytes`,
    /// known once the request is routed).
    pub fn set_limit(&mut self, limit: u64) {
        match self {
            Self::H1(s) => s.limit = limit,
            Self::H2(s) => s.limit = limit,
            Self::H3(s) => s.limit = limit,
            Self::Done => {}
        }
    }

    /// Body bytes read so far.
    pub fn received(&self) -> u64 {
        match self {
            Self::H1(s) => s.received,
            Self::H2(s) => s.received,
            Self::H3(s) => s.received,
            Self::Done => 0,
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
            Self::H3(s) => match frame {
                Frame::Data(data) => s.send(data).await.map_err(PumpError::Sink),
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
            Self::H2(_) | Self::H3(_) => Ok(()),
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
            Self::H3(s) => s.finish().await.map_err(PumpError::Sink),
        }
    }

    /// Body bytes written so far.
    pub fn sent(&self) -> u64 {
        match self {
            Self::H1(s) => s.sent,
            Self::H2(s) => s.sent,
            Self::H3(s) => s.sent,
        }
    }

    /// Resets an HTTP/2 stream whose source failed, so the peer sees an error
    /// rather than a short body that looks complete.
    pub fn abort(&mut self) {
        match self {
            Self::H2(s) => s.stream.send_reset(::h2::Reason::INTERNAL_ERROR),
            Self::H3(s) => s.abort(),
            Self::H1(_) => {}
        }
    }
}

/// Moves a whole body from `src` to `sink`, writing only when the source would have
/// to wait, so a small body leaves in the same write as its head, and a stream that
/// pauses (server-sent events, a chunk then silence) reaches the client at once.
pub async fn pump(src: &mut Source<'_>, sink: &mut Sink<'_>) -> Result<(), PumpError> {
    pump_encoded(src, sink, None).await
}

/// [`pump`], compressing the body with `enc` on the way: what the compressor holds
/// is flushed out whenever the source pauses, and finished at the end (before any
/// trailers).
pub async fn pump_encoded(
    src: &mut Source<'_>,
    sink: &mut Sink<'_>,
    mut enc: Option<&mut Encoder>,
) -> Result<(), PumpError> {
    let failed = |e: std::io::Error| PumpError::Sink(format!("compressing: {e}"));
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
                if let Some(enc) = enc.as_deref_mut() {
                    let out = enc.flush().map_err(failed)?;
                    if !out.is_empty() {
                        sink.push(Frame::Data(out)).await?;
                    }
                }
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
                    Sink::H1(_) | Sink::H3(_) => next.await,
                }
            }
        };
        match (result, enc.as_deref_mut()) {
            (Ok(Some(frame)), None) => sink.push(frame).await?,
            (Ok(Some(Frame::Data(data))), Some(enc)) => {
                let out = enc.write(&data).map_err(failed)?;
                if !out.is_empty() {
                    sink.push(Frame::Data(out)).await?;
                }
            }
            (Ok(Some(trailers)), Some(enc)) => {
                let out = enc.finish().map_err(failed)?;
                if !out.is_empty() {
                    sink.push(Frame::Data(out)).await?;
                }
                sink.push(trailers).await?;
            }
            (Ok(None), enc) => {
                if let Some(enc) = enc {
                    let out = enc.finish().map_err(failed)?;
                    if !out.is_empty() {
                        sink.push(Frame::Data(out)).await?;
                    }
                }
                return sink.finish().await;
            }
            (Err(e), _) => {
                sink.abort();
                return Err(PumpError::Source(e));
            }
        }
    }
}
