//! Encoding for an HTTP/2 client: a backend's response (its body streamed within
//! flow control, a gRPC deadline cutting it), a policy's answer, or the `200` that
//! opens an RFC 8441 WebSocket and the bridge that follows.

use std::rc::Rc;

use bytes::Bytes;
use fulcrum_core::http1::Framing;

use crate::access_log::Entry;
use crate::http::body::{h2_send, H2Sink, Sink, Source};
use crate::http::fields::{answer_head, stream_head, StreamHead};
use crate::http::{ProxyError, Response, Switch, Upgrade};
use crate::l7::bridge;
use crate::l7::files::{read_chunk, FileAnswer};
use crate::l7::forward::Held;
use crate::l7::policy::Answer;
use crate::worker::Worker;

/// The client side of one stream.
pub struct Out<'a> {
    /// The worker.
    pub w: &'a Rc<Worker>,
    /// Where the response goes.
    pub respond: &'a mut h2::server::SendResponse<Bytes>,
    /// The request ID field for the client, when the listener sets one.
    pub request_id: Option<(&'a str, &'a str)>,
}

impl Out<'_> {
    /// Sends a policy's answer.
    pub fn answer(self, a: Answer, e: &mut Entry<'_>) -> Result<(), ProxyError> {
        let mut res = answer_head(a.status, a.fields, [], self.request_id);
        res.headers_mut()
            .insert(http::header::CONTENT_LENGTH, a.body.len().into());
        e.status = a.status;
        let end = a.body.is_empty();
        let mut stream = self
            .respond
            .send_response(res, end)
            .map_err(|err| ProxyError::Client(err.to_string()))?;
        if !end {
            let _ = stream.send_data(a.body, true);
        }
        Ok(())
    }

    /// Sends a static file (or a static route's small answer), read in 64 KiB
    /// pieces off the worker and sent as the stream's window allows.
    pub async fn file(self, a: FileAnswer, e: &mut Entry<'_>) -> Result<(), ProxyError> {
        let res = answer_head(a.status, a.fields, &a.extra, self.request_id);
        e.status = a.status;
        let end = a.bytes.is_empty() && a.file.is_none();
        let mut stream = self
            .respond
            .send_response(res, end)
            .map_err(|err| ProxyError::Client(err.to_string()))?;
        if end {
            return Ok(());
        }
        let client = |err: String| ProxyError::Client(err);
        if !a.bytes.is_empty() {
            e.bytes_out = a.bytes.len() as u64;
            let last = a.file.is_none();
            stream
                .send_data(a.bytes, last)
                .map_err(|err| client(err.to_string()))?;
            if last {
                return Ok(());
            }
        }
        let Some(mut body) = a.file else {
            return Ok(());
        };
        while body.len > 0 {
            let chunk = read_chunk(&mut body, 64 * 1024)
                .await
                .map_err(|err| client(err.to_string()))?;
            e.bytes_out += chunk.len() as u64;
            h2_send(&mut stream, chunk)
                .await
                .map_err(|err| client(err.to_string()))?;
        }
        stream
            .send_data(Bytes::new(), true)
            .map_err(|err| client(err.to_string()))
    }

    /// Sends a backend's response, then streams its body; `body_done`: the request's
    /// body went through whole (else the backend connection is not reused).
    pub async fn response(
        self,
        is_head: bool,
        resp: Response,
        held: Held<'_>,
        body_done: bool,
        e: &mut Entry<'_>,
    ) -> Result<(), ProxyError> {
        let StreamHead {
            head: res,
            status,
            framing,
            coded,
            body,
            deadline,
        } = stream_head(resp, is_head, self.request_id)?;
        e.status = status;
        let end = framing == Framing::Empty;
        let stream = self
            .respond
            .send_response(res, end)
            .map_err(|err| ProxyError::Client(err.to_string()))?;
        if end {
            held.release(self.w, body, body_done);
            return Ok(());
        }
        let sink = Sink::H2(H2Sink::new(stream));
        held.stream_body(
            self.w,
            (body, framing, deadline),
            sink,
            &coded,
            body_done,
            e,
        )
        .await
    }

    /// After a backend's `101` for an RFC 8441 WebSocket: answers the client's
    /// CONNECT with `200` and bridges its stream to the backend connection until
    /// either ends or it idles out.
    pub async fn switch(
        self,
        body: Source<'_>,
        sw: Switch,
        held: Held<'_>,
        upgrade: Upgrade<'_>,
        e: &mut Entry<'_>,
    ) -> Result<(), ProxyError> {
        let Source::H2(src) = body else {
            return Err(bridge::no_stream());
        };
        let mut send = self
            .respond
            .send_response(bridge::opened(&sw), false)
            .map_err(|err| ProxyError::Client(err.to_string()))?;
        let mut recv = src.into_stream();
        bridge::run(&mut recv, &mut send, sw, held, upgrade, e).await;
        Ok(())
    }
}
