//! HTTP/3 bodies: a request stream's receiving half (QUIC flow control is
//! released as data is taken) and its sending half, trailers held to the end.

use bytes::{Buf, Bytes};
use h3::server::RequestStream;
use http::HeaderMap;

use super::{BodyError, Frame};

/// The receiving half of an HTTP/3 request stream.
pub type H3Recv = RequestStream<h3_quinn::RecvStream, Bytes>;
/// The sending half of an HTTP/3 request stream.
pub type H3Send = RequestStream<h3_quinn::SendStream<Bytes>, Bytes>;

/// What [`H3Source::probe`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probed {
    /// The request ended with its header section: no body.
    Ended,
    /// A body follows, or may.
    Open,
    /// The client reset the stream (or it failed) already.
    Reset,
}

/// An HTTP/3 body being received.
pub struct H3Source {
    stream: H3Recv,
    /// Data read by [`H3Source::probe`], delivered first.
    first: Option<Bytes>,
    data_done: bool,
    done: bool,
    pub(super) limit: u64,
    /// Body bytes delivered so far.
    pub received: u64,
}

impl H3Source {
    /// Wraps a stream; `limit` caps the body size.
    pub fn new(stream: H3Recv, limit: u64) -> Self {
        Self {
            stream,
            first: None,
            data_done: false,
            done: false,
            limit,
            received: 0,
        }
    }

    /// Whether the body has ended.
    pub fn is_end(&self) -> bool {
        self.done
    }

    /// What the stream holds after its header section, looked at once without
    /// waiting: a GET's FIN usually comes with its HEADERS, so a request known to be
    /// bodiless goes to an HTTP/1.1 backend without chunked framing; a stream the
    /// client already reset is never forwarded. Data already there is kept for
    /// [`H3Source::next`].
    pub fn probe(&mut self) -> Probed {
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        match self.stream.poll_recv_data(&mut cx) {
            std::task::Poll::Ready(Ok(None)) => {
                self.data_done = true;
                self.done = true;
                Probed::Ended
            }
            std::task::Poll::Ready(Ok(Some(mut buf))) => {
                self.first = Some(buf.copy_to_bytes(buf.remaining()));
                Probed::Open
            }
            std::task::Poll::Ready(Err(_)) => Probed::Reset,
            std::task::Poll::Pending => Probed::Open,
        }
    }

    /// The stream itself and any data [`H3Source::probe`] read, for a bridge that
    /// moves bytes without body framing.
    pub fn into_parts(self) -> (H3Recv, Option<Bytes>) {
        (self.stream, self.first)
    }

    /// The next frame, `None` at the end.
    pub async fn next(&mut self) -> Result<Option<Frame>, BodyError> {
        if let Some(data) = self.first.take() {
            self.received += data.len() as u64;
            if self.received > self.limit {
                return Err(BodyError::TooLarge);
            }
            return Ok(Some(Frame::Data(data)));
        }
        if self.done {
            return Ok(None);
        }
        if !self.data_done {
            match self.stream.recv_data().await {
                Ok(Some(mut buf)) => {
                    let data = buf.copy_to_bytes(buf.remaining());
                    self.received += data.len() as u64;
                    if self.received > self.limit {
                        return Err(BodyError::TooLarge);
                    }
                    return Ok(Some(Frame::Data(data)));
                }
                Ok(None) => self.data_done = true,
                Err(e) => return Err(BodyError::H3(e.to_string())),
            }
        }
        self.done = true;
        match self.stream.recv_trailers().await {
            Ok(t) => Ok(t.map(Frame::Trailers)),
            Err(e) => Err(BodyError::H3(e.to_string())),
        }
    }
}

/// An HTTP/3 body being sent; trailers are held until the end.
pub struct H3Sink<'a> {
    pub(super) stream: &'a mut H3Send,
    pub(super) trailers: Option<HeaderMap>,
    /// Body bytes sent.
    pub sent: u64,
}

impl<'a> H3Sink<'a> {
    /// Wraps a stream whose response head was sent.
    pub fn new(stream: &'a mut H3Send) -> Self {
        Self {
            stream,
            trailers: None,
            sent: 0,
        }
    }

    pub(super) async fn send(&mut self, data: Bytes) -> Result<(), String> {
        self.sent += data.len() as u64;
        self.stream.send_data(data).await.map_err(|e| e.to_string())
    }

    pub(super) async fn finish(&mut self) -> Result<(), String> {
        if let Some(t) = self.trailers.take() {
            self.stream
                .send_trailers(t)
                .await
                .map_err(|e| e.to_string())?;
        }
        self.stream.finish().await.map_err(|e| e.to_string())
    }

    /// Resets the stream: the client sees an error, not a short body that looks
    /// complete.
    pub fn abort(&mut self) {
        self.stream.stop_stream(h3::error::Code::H3_INTERNAL_ERROR);
    }
}
