//! Encoding for an HTTP/3 client: a backend's response (its body streamed, a
//! gRPC deadline cutting it), a policy's answer, a static file, or the `200` that
//! opens an RFC 9220 WebSocket and the bridge that follows.

use std::rc::Rc;

use fulcrum_core::http1::Framing;

use crate::access_log::Entry;
use crate::http::body::{H3Send, H3Sink, Sink, Source};
use crate::http::fields::{answer_head, stream_head, StreamHead};
use crate::http::{ProxyError, Response, Switch, Upgrade};
use crate::l7::bridge::{self, H3In};
use crate::l7::files::{read_chunk, FileAnswer};
use crate::l7::forward::Held;
use crate::l7::policy::Answer;
use crate::worker::Worker;

/// The client side of one stream.
pub struct Out<'a> {
    /// The worker.
    pub w: &'a Rc<Worker>,
    /// Where the response goes.
    pub send: &'a mut H3Send,
    /// The request ID field for the client, when the listener sets one.
    pub request_id: Option<(&'a str, &'a str)>,
}

fn client(err: impl std::fmt::Display) -> ProxyError {
    ProxyError::Client(err.to_string())
}

impl Out<'_> {
    /// Sends a policy's answer.
    pub async fn answer(self, a: Answer, e: &mut Entry<'_>) -> Result<(), ProxyError> {
        let mut res = answer_head(a.status, a.fields, [], self.request_id);
        res.headers_mut()
            .insert(http::header::CONTENT_LENGTH, a.body.len().into());
        e.status = a.status;
        self.send.send_response(res).await.map_err(client)?;
        if !a.body.is_empty() {
            self.send.send_data(a.body).await.map_err(client)?;
        }
        self.send.finish().await.map_err(client)
    }

    /// Sends a static file (or a static route's small answer), read in 64 KiB
    /// pieces off the worker.
    pub async fn file(self, a: FileAnswer, e: &mut Entry<'_>) -> Result<(), ProxyError> {
        let res = answer_head(a.status, a.fields, &a.extra, self.request_id);
        e.status = a.status;
        self.send.send_response(res).await.map_err(client)?;
        if !a.bytes.is_empty() {
            e.bytes_out = a.bytes.len() as u64;
            self.send.send_data(a.bytes).await.map_err(client)?;
        }
        if let Some(mut body) = a.file {
            while body.len > 0 {
                let chunk = read_chunk(&mut body, 64 * 1024).await.map_err(client)?;
                e.bytes_out += chunk.len() as u64;
                self.send.send_data(chunk).await.map_err(client)?;
            }
        }
        self.send.finish().await.map_err(client)
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
        self.send.send_response(res).await.map_err(client)?;
        if framing == Framing::Empty {
            held.release(self.w, body, body_done);
            return self.send.finish().await.map_err(client);
        }
        let sink = Sink::H3(H3Sink::new(self.send));
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

    /// Answers an RFC 9220 WebSocket CONNECT with `200` (the backend's `101`
    /// fields but its accept value, which was Fulcrum's to check) and bridges the
    /// stream to the backend connection.
    pub async fn switch(
        self,
        body: Source<'_>,
        sw: Switch,
        held: Held<'_>,
        upgrade: Upgrade<'_>,
        e: &mut Entry<'_>,
    ) -> Result<(), ProxyError> {
        let Source::H3(src) = body else {
            return Err(bridge::no_stream());
        };
        self.send
            .send_response(bridge::opened(&sw))
            .await
            .map_err(client)?;
        let (recv, first) = src.into_parts();
        let mut send = self.send;
        bridge::run(&mut H3In(recv, first), &mut send, sw, held, upgrade, e).await;
        Ok(())
    }
}
