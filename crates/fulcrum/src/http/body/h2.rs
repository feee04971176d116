//! HTTP/2 bodies: a stream being received (flow control released as data is
//! taken) and one being sent within its window, trailers held to the end.

use bytes::Bytes;
use http::HeaderMap;

use super::{BodyError, Frame};

/// An HTTP/2 body being received.
pub struct H2Source {
    stream: h2::RecvStream,
    data_done: bool,
    done: bool,
    pub(super) limit: u64,
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

    /// The stream itself, for a bridge that moves bytes without body framing.
    pub fn into_stream(self) -> h2::RecvStream {
        self.stream
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
    pub(super) stream: h2::SendStream<Bytes>,
    pub(super) trailers: Option<HeaderMap>,
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
