//! Encoding for an HTTP/1.1 client: a backend's response (framed for the client's
//! version, the connection kept or closed), a policy's answer, or a switch of
//! protocols handed up as a [`Stream`] to splice.

use std::rc::Rc;

use bytes::BytesMut;
use fulcrum_core::http1::{self, Framing, RequestHead, Version};

use super::Next;
use crate::access_log::Entry;
use crate::http::body::{pump_encoded, H1Sink, Out as Mode, PumpError, Sink};
use crate::http::fields::{client_framing, Coded};
use crate::http::{Edits, Failed, Head, ProxyError, Response, ResponseBody, Switch, Upgrade};
use crate::io::{self, Conn, IoError};
use crate::l7::files::{read_chunk, FileAnswer};
use crate::l7::forward::Held;
use crate::l7::policy::Answer;
use crate::l7::stream::Stream;
use crate::state::Listener;
use crate::worker::Worker;

/// The client side of one exchange.
pub struct Out<'a> {
    /// The worker.
    pub w: &'a Rc<Worker>,
    /// The client's listener.
    pub l: &'a Listener,
    /// The client's connection.
    pub io: &'a Conn,
    /// The request's head.
    pub head: &'a RequestHead,
}

/// The `set-cookie` field to append to a response head, if any: an iterator of zero
/// or one field, so the head's field iterator keeps one type.
fn set_cookie_field(value: Option<&str>) -> std::option::IntoIter<(&[u8], &[u8])> {
    value
        .map(|v| (b"set-cookie".as_slice(), v.as_bytes()))
        .into_iter()
}

/// The request ID field for the client (`None` when the listener sets none), and a
/// test that leaves out a backend's field of that name.
fn request_id_field<'e>(l: &'e Listener, id: &'e str) -> Option<(&'e [u8], &'e [u8])> {
    let (header, _) = l.request_id.as_ref()?;
    (!id.is_empty()).then_some((header.as_bytes(), id.as_bytes()))
}

impl Out<'_> {
    /// Sends a policy's answer; the connection stays open unless the request's body
    /// was left unread or the client asked to close.
    pub async fn answer(&self, a: Answer, e: &mut Entry<'_>) -> Result<Next, Failed> {
        let close = self.head.body != Framing::Empty || !self.head.keep_alive;
        let length = a.body.len().to_string();
        let fields = a
            .fields
            .iter()
            .map(|(n, v)| (*n, v.as_str()))
            .chain([("content-length", length.as_str())]);
        let out = self.own_head(a.status, fields, close, e, &a.body);
        e.status = a.status;
        io::write_all(self.io, &out, self.l.client_timeout)
            .await
            .map_err(|err| ProxyError::Client(err.to_string()))?;
        Ok(Next::from(!close))
    }

    /// The head of an answer Fulcrum makes itself (a policy's, a static route's),
    /// with the request ID and `connection: close` when `close`, then `body`.
    fn own_head<'f>(
        &self,
        status: u16,
        fields: impl Iterator<Item = (&'f str, &'f str)>,
        close: bool,
        e: &Entry<'_>,
        body: &[u8],
    ) -> Vec<u8> {
        let mut out = Vec::with_capacity(256 + body.len());
        out.extend_from_slice(b"HTTP/1.1 ");
        out.extend_from_slice(status.to_string().as_bytes());
        out.push(b' ');
        out.extend_from_slice(http1::reason(status).as_bytes());
        out.extend_from_slice(b"\r\n");
        for (name, value) in fields {
            for part in [name.as_bytes(), b": ", value.as_bytes(), b"\r\n"] {
                out.extend_from_slice(part);
            }
        }
        if let Some((name, value)) = request_id_field(self.l, e.request_id) {
            for part in [name, b": ", value, b"\r\n"] {
                out.extend_from_slice(part);
            }
        }
        if close {
            out.extend_from_slice(b"connection: close\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(body);
        out
    }

    /// Sends a static file (or a static route's small answer); the connection stays
    /// open as after a policy's answer.
    pub async fn file(&self, a: FileAnswer, e: &mut Entry<'_>) -> Result<Next, Failed> {
        let close = self.head.body != Framing::Empty || !self.head.keep_alive;
        let extra = a.extra.iter().map(|(n, v)| (&**n, v.as_str()));
        let fields = a.fields.iter().map(|(n, v)| (*n, v.as_str())).chain(extra);
        let out = self.own_head(a.status, fields, close, e, &a.bytes);
        e.status = a.status;
        io::write_all(self.io, &out, self.l.client_timeout)
            .await
            .map_err(|err| ProxyError::Client(err.to_string()))?;
        e.bytes_out = a.bytes.len() as u64;
        let Some(mut body) = a.file else {
            return Ok(Next::from(!close));
        };
        let failed = |err: String| Failed {
            err: ProxyError::Client(err),
            replied: true,
        };
        match self.io {
            Conn::Tcp(tcp) => {
                let timeout = self.l.client_timeout;
                let sent = io::send_file(tcp, &body.file, body.offset, body.len, timeout).await;
                e.bytes_out += sent.map_err(|err| failed(err.to_string()))?;
            }
            Conn::Tls(_) => {
                while body.len > 0 {
                    let chunk = read_chunk(&mut body, 64 * 1024)
                        .await
                        .map_err(|err| failed(err.to_string()))?;
                    io::write_all(self.io, &chunk, self.l.client_timeout)
                        .await
                        .map_err(|err| failed(err.to_string()))?;
                    e.bytes_out += chunk.len() as u64;
                }
            }
        }
        Ok(Next::from(!close))
    }

    /// Sends a backend's response: its head rewritten for this client, then its
    /// body; `body_done`: the request's body was read whole (else the connection
    /// closes after).
    pub async fn response(
        &self,
        is_head: bool,
        resp: Response,
        held: Held<'_>,
        body_done: bool,
        e: &mut Entry<'_>,
    ) -> Result<Next, Failed> {
        let Response {
            status,
            head,
            framing,
            mut body,
            set_cookie,
            edits,
            encode,
            ..
        } = resp;
        let edits = edits.as_deref();
        e.status = status;
        let client_11 = self.head.version == Version::Http11;
        let mut pairs = Vec::new();
        let fields = head.fields(&mut pairs);
        // A compressed body's length is known only at its end.
        let client = match encode {
            Some(_) if client_11 => Framing::Chunked,
            Some(_) => Framing::UntilClose,
            None => client_framing(framing, status, fields, is_head, client_11),
        };
        let coded = Coded::new(encode, fields.iter());
        let close = !self.head.keep_alive
            || !body_done
            || client == Framing::UntilClose
            || self.w.stopping.get();
        // Room for the head and what of the body is already read: a small response
        // leaves in one write with no reallocation.
        let hint = match (&head, &body) {
            (Head::H1 { bytes, .. }, ResponseBody::H1 { buf, .. }) => {
                bytes.len() + 64 + buf.len().min(64 * 1024)
            }
            _ => 512,
        };
        let mut out = io::take_vec(hint);
        let rid = request_id_field(self.l, e.request_id);
        let own_rid = |n: &[u8]| rid.is_none_or(|(h, _)| !n.eq_ignore_ascii_case(h));
        let cookie = set_cookie_field(set_cookie.as_deref());
        let keep_alive_10 = !close && !client_11;
        if edits.is_none() && encode.is_none() {
            // Most responses: nothing of the route's to add, and the writer (which
            // walks the fields twice) gets the shortest iterator.
            let fields = fields
                .iter()
                .filter(|(n, _)| own_rid(n))
                .chain(cookie)
                .chain(rid);
            http1::write_response_head(&mut out, status, fields, client, close, keep_alive_10);
        } else {
            let fields = fields
                .iter()
                .filter(|(n, _)| own_rid(n) && Edits::keeps(edits, n) && coded.keeps(n))
                .chain(Edits::fields(edits))
                .chain(coded.fields())
                .chain(cookie)
                .chain(rid);
            http1::write_response_head(&mut out, status, fields, client, close, keep_alive_10);
        }
        let mode = if client == Framing::Chunked {
            Mode::Chunked
        } else {
            Mode::Raw
        };
        let mut src = body.source(if is_head { Framing::Empty } else { framing });
        let mut sink = Sink::H1(H1Sink::new(self.io, out, mode, self.l.client_timeout));
        let mut enc = coded.encoder()?;
        let result = pump_encoded(&mut src, &mut sink, enc.as_mut()).await;
        e.bytes_out = sink.sent();
        drop((src, sink));
        match result {
            Ok(()) => {
                held.release(self.w, body, body_done);
                Ok(Next::from(!close))
            }
            Err(err) => {
                if let PumpError::Source(_) = err {
                    tracing::warn!(backend = %held.backend.addr, pool = %held.pool.name, error = %err, "response body failed");
                }
                Err(Failed {
                    err: ProxyError::BadResponse(err.to_string()),
                    replied: true,
                })
            }
        }
    }

    /// After a `101`: sends the switching head (and any bytes that followed it) to
    /// the client and the client's early bytes (`buf`) to the backend, and hands the
    /// backend connection up as a [`Stream`]: the splice runs outside the exchange.
    pub async fn switch(
        &self,
        buf: &mut BytesMut,
        sw: Switch,
        held: Held<'_>,
        upgrade: Upgrade<'_>,
        e: &mut Entry<'_>,
    ) -> Result<Next, Failed> {
        e.status = 101;
        let Switch {
            up,
            head,
            bytes,
            early,
        } = sw;
        let mut out = io::take_vec(head.len + 64 + early.len());
        http1::write_switching_head(&mut out, head.fields(&bytes), upgrade.protocol);
        out.extend_from_slice(&early);
        // A socket may idle for hours: hold none of the exchange's buffers.
        drop((head, bytes, early));
        let sent = async {
            io::write_all(self.io, &out, self.l.client_timeout).await?;
            if !buf.is_empty() {
                io::write_all(&up, buf, held.pool.upstream_timeout).await?;
                e.bytes_in += buf.len() as u64;
            }
            Ok::<(), IoError>(())
        };
        if let Err(err) = sent.await {
            e.error = Some(format!("switching: {err}"));
            return Ok(Next::Close);
        }
        e.bytes_out = out.len() as u64;
        io::recycle_vec(out);
        // The connection ends with the stream: its read buffer is not needed again.
        *buf = BytesMut::new();
        let Held {
            pool,
            member,
            lease,
            slot,
            admitted,
            ..
        } = held;
        let mut stream = Stream::new(up, lease, slot, member, &pool.state, upgrade);
        stream.admitted = Some(admitted);
        Ok(Next::Stream(Box::new(stream)))
    }
}
