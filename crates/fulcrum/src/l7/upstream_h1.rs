//! One attempt of an HTTP/1.1 client's request on one HTTP/1.1 backend connection:
//! send the rewritten head (with the body bytes already read, in one write), stream
//! the rest of the body while waiting for the response head, then stream the response.

use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use fulcrum_core::http1::{self, Framing, HeadError, RequestHead, ResponseHead, Version};

use super::body::{pump, H1Sink, H1Source, Out, PumpError, Sink, Source};
use super::error::ProxyError;
use super::h1::{client_body_error, Failed};
use super::proxy::Attempts;
use crate::access_log::Entry;
use crate::io::Conn;
use crate::io::{self, IoError};
use crate::state::{Listener, Pool};
use crate::worker::Worker;
use fulcrum_core::balance::Backend;

/// Largest response head accepted from a backend.
pub const MAX_RESPONSE_HEAD: usize = 64 * 1024;

/// How an attempt ended without a response.
pub enum Attempt {
    /// A reused connection turned out closed before anything was consumed: retry.
    Stale,
    /// The request failed.
    Failed(Failed),
}

impl From<ProxyError> for Attempt {
    fn from(err: ProxyError) -> Self {
        Self::Failed(err.into())
    }
}

/// How an attempt that got a response ended.
pub enum Outcome {
    /// The response went out whole or in part.
    Done {
        /// The client connection stays open.
        keep: bool,
        /// The backend connection can be pooled.
        reusable: bool,
    },
    /// The backend switched protocols and the client has its `101`: the backend
    /// socket is to be spliced to the client's.
    Switched,
}

/// Why no response head arrived.
#[derive(Debug)]
pub enum HeadFailure {
    /// Closed or reset; `nothing` when no byte of a response came.
    Closed {
        /// No response byte was seen.
        nothing: bool,
        /// What happened.
        reason: String,
    },
    /// Too slow.
    Timeout,
    /// Not a valid response head.
    Malformed(HeadError),
}

impl HeadFailure {
    /// The client-facing error.
    pub fn into_error(self) -> ProxyError {
        match self {
            Self::Timeout => ProxyError::BackendTimeout,
            Self::Closed { reason, .. } => ProxyError::BadResponse(reason),
            Self::Malformed(e) => ProxyError::BadResponse(e.to_string()),
        }
    }
}

/// Reads a final response head (interim 1xx other than 101 are skipped).
pub async fn read_response<S: crate::io::Socket>(
    up: &S,
    buf: &mut BytesMut,
    is_head: bool,
    limit: Duration,
) -> Result<ResponseHead, HeadFailure> {
    let mut seen = false;
    loop {
        if !buf.is_empty() {
            match http1::parse_response(buf, MAX_RESPONSE_HEAD, is_head) {
                Ok(Some(h)) if (100..200).contains(&h.status) && h.status != 101 => {
                    buf.advance(h.len);
                    continue;
                }
                Ok(Some(h)) => return Ok(h),
                Ok(None) => {}
                Err(e) => return Err(HeadFailure::Malformed(e)),
            }
        }
        match io::read_some(up, buf, limit).await {
            Ok(0) => {
                return Err(HeadFailure::Closed {
                    nothing: !seen && buf.is_empty(),
                    reason: "backend closed before a response".into(),
                });
            }
            Ok(_) => seen = true,
            Err(IoError::Timeout) => return Err(HeadFailure::Timeout),
            Err(IoError::Io(e)) => {
                return Err(HeadFailure::Closed {
                    nothing: !seen && buf.is_empty(),
                    reason: e.to_string(),
                })
            }
        }
    }
}

/// The framing a client gets for a backend's response body.
pub fn client_framing(rh: &ResponseHead, rhb: &[u8], is_head: bool, client_11: bool) -> Framing {
    match rh.body {
        Framing::Empty if is_head => rh
            .fields(rhb)
            .find(|(n, _)| n.eq_ignore_ascii_case(b"content-length"))
            .and_then(|(_, v)| std::str::from_utf8(v).ok()?.trim().parse().ok())
            .map_or(Framing::Empty, Framing::Length),
        Framing::Empty => super::h1::empty_framing(rh.status),
        Framing::Length(n) => Framing::Length(n),
        Framing::Chunked | Framing::UntilClose if client_11 => Framing::Chunked,
        Framing::Chunked | Framing::UntilClose => Framing::UntilClose,
    }
}

/// One attempt's fixed inputs.
pub struct Exchange<'a> {
    /// The worker.
    pub w: &'a Worker,
    /// The client's listener.
    pub l: &'a Listener,
    /// The backend's pool.
    pub pool: &'a Pool,
    /// Client socket.
    pub io: &'a Conn,
    /// Backend socket.
    pub up: &'a Conn,
    /// The backend socket came from the idle pool.
    pub reused: bool,
    /// The backend.
    pub backend: &'a Backend,
    /// The request's tries: the per-try timeout, status retries, health records.
    pub attempts: &'a Attempts<'a>,
    /// The client's request head.
    pub head: &'a RequestHead,
    /// The request is a HEAD.
    pub is_head: bool,
    /// A sticky-session `Set-Cookie` value to add to the response.
    pub set_cookie: Option<&'a str>,
    /// The upgrade asked of the backend, when the client asked one the route allows.
    pub upgrade: Option<Upgrade<'a>>,
    /// The route's `stream_idle_timeout`, for event-stream responses.
    pub stream_idle: Duration,
}

/// An upgrade (WebSocket) the client asked for and its route lets through.
#[derive(Clone, Copy, Debug)]
pub struct Upgrade<'a> {
    /// The one protocol asked of the backend.
    pub protocol: &'a [u8],
    /// The route's `stream_idle_timeout`.
    pub idle: Duration,
    /// The route's `max_stream_duration`.
    pub max: Option<Duration>,
}

impl Exchange<'_> {
    /// After a `101`: sends `out` (the switching head and any bytes that followed it)
    /// to the client and the client's early bytes to the backend. The splice that
    /// follows runs outside the exchange (`super::stream`).
    async fn switched(&self, out: Vec<u8>, early: &mut BytesMut, e: &mut Entry<'_>) -> Outcome {
        let sent = async {
            io::write_all(self.io, &out, self.l.client_timeout).await?;
            if !early.is_empty() {
                io::write_all(self.up, early, self.pool.upstream_timeout).await?;
                e.bytes_in += early.len() as u64;
            }
            Ok::<(), IoError>(())
        };
        if let Err(err) = sent.await {
            e.error = Some(format!("switching: {err}"));
            return Outcome::Done {
                keep: false,
                reusable: false,
            };
        }
        e.bytes_out = out.len() as u64;
        io::recycle_vec(out);
        // The connection ends with the stream: its read buffer is not needed again.
        *early = BytesMut::new();
        Outcome::Switched
    }

    /// Runs the attempt; `out` holds the rewritten head.
    pub async fn run(
        &self,
        buf: &mut BytesMut,
        out: &mut Vec<u8>,
        e: &mut Entry<'_>,
    ) -> Result<Outcome, Attempt> {
        let (head, pool, l) = (self.head, self.pool, self.l);
        let pre = match head.body {
            Framing::Length(n) => usize::try_from(n).unwrap_or(usize::MAX).min(buf.len()),
            _ => 0,
        };
        out.extend_from_slice(buf.get(..pre).unwrap_or_default());
        match io::write_all(self.up, out, pool.upstream_timeout).await {
            Ok(()) => {}
            Err(_) if self.reused => return Err(Attempt::Stale),
            Err(err) => {
                return Err(ProxyError::BadResponse(format!("write to backend: {err}")).into())
            }
        }
        buf.advance(pre);
        let rest = match head.body {
            Framing::Length(n) => Framing::Length(n - pre as u64),
            other => other,
        };
        let sent_at = Instant::now();
        let mut resp_buf = io::ReadBuf::default();
        let mut src = Source::H1(H1Source::new(
            self.io,
            buf,
            rest,
            l.client_timeout,
            l.max_body_bytes,
        ));
        let first_complete = matches!(rest, Framing::Empty | Framing::Length(0));
        let mut body_ok = first_complete;
        let resp = {
            // The per-try limit only applies to a request sent whole: a body still
            // uploading is the client's pace, not the backend's.
            let limit = if first_complete {
                self.attempts.head_timeout()
            } else {
                pool.upstream_timeout
            };
            let head_fut = read_response(self.up, &mut resp_buf, self.is_head, limit);
            tokio::pin!(head_fut);
            if first_complete {
                head_fut.await
            } else {
                let mode = if rest == Framing::Chunked {
                    Out::Chunked
                } else {
                    Out::Raw
                };
                let mut sink = Sink::H1(H1Sink::new(
                    self.up,
                    Vec::new(),
                    mode,
                    pool.upstream_timeout,
                ));
                let body = async {
                    if head.expect_continue {
                        let _ = io::write_all(
                            self.io,
                            b"HTTP/1.1 100 Continue\r\n\r\n",
                            l.client_timeout,
                        )
                        .await;
                    }
                    pump(&mut src, &mut sink).await
                };
                tokio::pin!(body);
                tokio::select! {
                    biased;
                    r = &mut body => match r {
                        Ok(()) => {
                            body_ok = true;
                            head_fut.as_mut().await
                        }
                        Err(PumpError::Source(err)) => return Err(client_body_error(err).into()),
                        // The backend stopped reading; it may still have answered.
                        Err(PumpError::Sink(_)) => head_fut.as_mut().await,
                    },
                    r = &mut head_fut => r,
                }
            }
        };
        e.bytes_in = pre as u64 + src.received();
        drop(src);
        let rh = match resp {
            Ok(rh) => rh,
            Err(HeadFailure::Closed { nothing: true, .. }) if self.reused && first_complete => {
                return Err(Attempt::Stale)
            }
            Err(f) => {
                tracing::warn!(backend = %self.backend.addr, pool = %pool.name, error = ?f, "bad response");
                return Err(f.into_error().into());
            }
        };
        if rh.status == 101 {
            let rhb = resp_buf.split_to(rh.len).freeze();
            let Some(upgrade) = self.upgrade else {
                return Err(
                    ProxyError::BadResponse("101 without an upgrade request".into()).into(),
                );
            };
            if !http1::is_upgrade_accepted(rh.fields(&rhb), upgrade.protocol) {
                return Err(ProxyError::BadResponse("101 to another protocol".into()).into());
            }
            super::proxy::observed(
                self.w,
                pool,
                self.backend,
                self.attempts.member(),
                101,
                sent_at.elapsed(),
                e,
            );
            e.status = 101;
            let mut out = io::take_vec(rh.len + 64 + resp_buf.len());
            http1::write_switching_head(&mut out, rh.fields(&rhb), upgrade.protocol);
            // Bytes the backend sent after its head belong to the new protocol.
            out.extend_from_slice(&resp_buf);
            // A socket may idle for hours: hold none of the exchange's buffers.
            drop((rhb, resp_buf));
            return Ok(self.switched(out, buf, e).await);
        }
        super::proxy::observed(
            self.w,
            pool,
            self.backend,
            self.attempts.member(),
            rh.status,
            sent_at.elapsed(),
            e,
        );
        if self.attempts.retry_status(rh.status) {
            // Dropped unread: the connection closes with it, and nothing reached
            // the client.
            return Err(ProxyError::Retried(rh.status).into());
        }
        e.status = rh.status;
        let rhb = resp_buf.split_to(rh.len).freeze();
        let client_11 = head.version == Version::Http11;
        let framing = client_framing(&rh, &rhb, self.is_head, client_11);
        let close =
            !head.keep_alive || !body_ok || framing == Framing::UntilClose || self.w.stopping.get();
        let mut out = io::take_vec(rh.len + 64 + resp_buf.len().min(64 * 1024));
        http1::write_response_head(
            &mut out,
            rh.status,
            rh.fields(&rhb)
                .chain(super::proxy::set_cookie_field(self.set_cookie)),
            framing,
            close,
            !close && !client_11,
        );
        let body = if self.is_head {
            Framing::Empty
        } else {
            rh.body
        };
        let mode = if framing == Framing::Chunked {
            Out::Chunked
        } else {
            Out::Raw
        };
        let idle = super::proxy::body_idle(pool, self.stream_idle, rh.fields(&rhb));
        let mut src = Source::H1(H1Source::new(self.up, &mut resp_buf, body, idle, u64::MAX));
        let mut sink = Sink::H1(H1Sink::new(self.io, out, mode, l.client_timeout));
        let result = pump(&mut src, &mut sink).await;
        e.bytes_out = sink.sent();
        let done = matches!(&src, Source::H1(s) if s.is_done());
        drop(src);
        match result {
            Ok(()) => Ok(Outcome::Done {
                keep: !close,
                reusable: rh.keep_alive && done && resp_buf.is_empty() && body_ok,
            }),
            Err(err) => {
                if let PumpError::Source(_) = err {
                    tracing::warn!(backend = %self.backend.addr, pool = %pool.name, error = %err, "response body failed");
                }
                e.error = Some(err.to_string());
                Err(Attempt::Failed(Failed {
                    err: ProxyError::BadResponse(err.to_string()),
                    replied: true,
                }))
            }
        }
    }
}
