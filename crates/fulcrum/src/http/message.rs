//! The request and response as the one forward step sees them, whatever protocol
//! the client or the backend spoke. A client codec (`l7::h1`, `l7::h2`, later
//! `l7::h3`) produces a [`Request`]; a backend leg (`upstream::h1`, `upstream::h2`)
//! sends it and produces a [`Response`] (or a [`Switch`]), which the client codec
//! encodes back.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use fulcrum_core::forward::{with_identity, FieldList, Forwarded, Identity, Target};
use fulcrum_core::http1::{Framing, ResponseHead};
use http::HeaderMap;

use super::body::{H1Source, H2Source, Source};
use crate::io::Conn;

/// A client's request.
#[derive(Clone, Copy, Debug)]
pub struct Request<'r> {
    /// Method.
    pub method: &'r str,
    /// Target, host and scheme.
    pub target: Target<'r>,
    /// Header fields as received (no pseudo-headers), the identity header not yet
    /// applied: read them through [`Request::fields`].
    pub fields: FieldList<'r>,
    /// The client-certificate header Fulcrum sets (a client's own is dropped).
    pub identity: Identity<'r>,
    /// The request ID field Fulcrum sets (a client's own of that name replaced).
    pub request_id: Identity<'r>,
    /// The `traceparent` Fulcrum sends on (naming its own span).
    pub traceparent: Identity<'r>,
    /// The client's protocol version as `Via` names it (`1.0`, `1.1`, `2`).
    pub via: &'static str,
    /// The client: the socket's peer, or the address a trusted proxy forwarded for
    /// (port 0 then).
    pub peer: SocketAddr,
    /// The trusted proxy the request came through, when it came through one: its
    /// forwarding chain goes on, with it appended.
    pub via_proxy: Option<std::net::IpAddr>,
    /// The local address the client reached, for a PROXY header toward a pool that
    /// sends one.
    pub local: Local<'r>,
    /// How the client's body is framed (`Empty` when there is none).
    pub framing: Framing,
    /// What the client asked to switch to.
    pub asked: Asked,
    /// A gRPC call's own deadline (`grpc-timeout`).
    pub grpc_timeout: Option<Duration>,
    /// The client's host, when the pool sends the backend another.
    pub original_host: Option<&'r str>,
}

/// The local address a client reached, looked up only when a pool needs it (a
/// system call on every request otherwise).
#[derive(Clone, Copy, Debug)]
pub enum Local<'r> {
    /// Known already.
    Known(Option<SocketAddr>),
    /// Ask the client's socket.
    Socket(&'r tokio::net::TcpStream),
}

impl Local<'_> {
    /// The address.
    pub fn get(&self) -> Option<SocketAddr> {
        match self {
            Self::Known(a) => *a,
            Self::Socket(s) => s.local_addr().ok(),
        }
    }
}

/// A protocol switch a client asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Asked {
    /// None.
    Nothing,
    /// HTTP/1.1 `Connection: upgrade` with `Upgrade` (RFC 9110 §7.8).
    Upgrade,
    /// An extended CONNECT for a WebSocket (RFC 8441).
    WebSocket,
}

impl<'r> Request<'r> {
    /// The fields to route, hash and forward by: as received, with the identity,
    /// request ID and `traceparent` fields replaced by Fulcrum's.
    pub fn fields(&self) -> impl Iterator<Item = (&'r [u8], &'r [u8])> + Clone + 'r {
        let fields = with_identity(self.fields.iter(), self.identity);
        with_identity(with_identity(fields, self.request_id), self.traceparent)
    }

    /// Whether this is a HEAD request (its response has no body).
    pub fn is_head(&self) -> bool {
        self.method == "HEAD"
    }

    /// The address appended to `X-Forwarded-For`: the peer Fulcrum talked to.
    pub fn forwarded_ip(&self) -> std::net::IpAddr {
        self.via_proxy.unwrap_or(self.peer.ip())
    }

    /// What Fulcrum adds about the client when forwarding.
    pub fn forwarded<'a>(&'a self, client_ip: &'a str) -> Forwarded<'a> {
        Forwarded {
            original_host: self.original_host,
            keep_chain: self.via_proxy.is_some(),
            client_ip,
            proto: self.target.proto(),
            via_version: self.via,
        }
    }
}

/// What the forward step decided beyond the request itself, for the backend leg.
#[derive(Clone, Copy, Debug)]
pub struct Plan<'a> {
    /// The upgrade to ask of the backend, when the client asked one the route allows.
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
    /// RFC 8441: the `Sec-WebSocket-Key` made up for the backend (an HTTP/2 client
    /// sends none; base64 of 16 random bytes); its `101` must carry the matching
    /// accept value.
    pub key: Option<[u8; 24]>,
}

/// A backend's response head and the way to its body.
pub struct Response {
    /// Status.
    pub status: u16,
    /// Header fields.
    pub head: Head,
    /// How the backend framed the body (HTTP/2: its content-length, else chunked,
    /// or `Empty` once the stream ended).
    pub framing: Framing,
    /// Where the body comes from.
    pub body: ResponseBody,
    /// A sticky-session `Set-Cookie` value to add.
    pub set_cookie: Option<String>,
    /// The route's `response_headers`, when it has any.
    pub edits: Option<Box<Edits>>,
    /// The coding the body is compressed with on its way to the client.
    pub encode: Option<fulcrum_core::shape::encoding::Compression>,
    /// A gRPC call's deadline: the body is cut when it passes.
    pub deadline: Option<tokio::time::Instant>,
    /// The body is not forwarded, nor its length (a refused RFC 8441 upgrade).
    pub bodyless: bool,
}

/// A route's `response_headers` for one response: the backend's fields they drop
/// and the fields they add, their placeholders filled.
#[derive(Debug)]
pub struct Edits {
    /// The rules.
    pub ops: Option<std::sync::Arc<fulcrum_core::shape::headers::HeaderOps>>,
    /// Their placeholders' values for this request.
    pub rendered: Vec<Option<String>>,
    /// The route answers CORS itself: the backend's `Access-Control-*` fields go.
    pub cors: bool,
    /// The CORS fields added.
    pub cors_fields: Vec<(&'static str, String)>,
    /// `Alt-Svc` advertising the listener's HTTP/3 (replacing a backend's own).
    pub alt_svc: Option<String>,
}

impl Edits {
    /// Whether the backend's field `name` goes on to the client.
    pub fn keeps(edits: Option<&Self>, name: &[u8]) -> bool {
        edits.is_none_or(|e| {
            let dropped = e.ops.as_ref().is_some_and(|o| o.drops(name));
            let cors = e.cors
                && name
                    .get(..15)
                    .is_some_and(|p| p.eq_ignore_ascii_case(b"access-control-"));
            let alt = e.alt_svc.is_some() && name.eq_ignore_ascii_case(b"alt-svc");
            !(dropped || cors || alt)
        })
    }

    /// The added fields, as byte pairs.
    pub fn fields(edits: Option<&Self>) -> impl Iterator<Item = (&[u8], &[u8])> + Clone {
        edits.into_iter().flat_map(|e| {
            let ops = e.ops.as_deref().map(|o| o.fields(&e.rendered));
            let cors = e.cors_fields.iter().map(|(n, v)| (*n, v.as_str()));
            let alt = e.alt_svc.as_deref().map(|v| ("alt-svc", v));
            ops.into_iter()
                .flatten()
                .chain(cors)
                .chain(alt)
                .map(|(n, v)| (n.as_bytes(), v.as_bytes()))
        })
    }
}

/// A response head as the backend's protocol carried it.
pub enum Head {
    /// A parsed HTTP/1.1 head and its bytes.
    H1 {
        /// The parsed head.
        head: ResponseHead,
        /// Its bytes.
        bytes: Bytes,
    },
    /// An HTTP/2 header map.
    Map(HeaderMap),
}

impl Head {
    /// The fields; `pairs` holds an HTTP/2 map's pairs for as long as they are read.
    pub fn fields<'a>(&'a self, pairs: &'a mut Vec<(&'a [u8], &'a [u8])>) -> FieldList<'a> {
        match self {
            Self::H1 { head, bytes } => FieldList::Spans {
                fields: &head.fields,
                bytes,
            },
            Self::Map(map) => {
                *pairs = super::fields::map_fields(map);
                FieldList::Pairs(pairs)
            }
        }
    }
}

/// Where a response's body comes from.
pub enum ResponseBody {
    /// An HTTP/1.1 connection: the body follows what is already in `buf`.
    H1 {
        /// The backend connection, pooled again after a whole body if it may be.
        up: Conn,
        /// Bytes read past the head.
        buf: crate::io::ReadBuf,
        /// Longest quiet time while reading the body.
        idle: Duration,
        /// The backend lets the connection carry another request.
        keep_alive: bool,
    },
    /// An HTTP/2 stream (taken when its body is read).
    H2(Option<h2::RecvStream>),
}

impl ResponseBody {
    /// The body as a source framed as `framing` (`Empty` for a HEAD's response).
    pub fn source(&mut self, framing: Framing) -> Source<'_> {
        if framing == Framing::Empty {
            // Nothing is read (a HEAD's response): an HTTP/2 stream still open is
            // reset when dropped, never passed on.
            return Source::Done;
        }
        match self {
            Self::H1 { up, buf, idle, .. } => {
                Source::H1(H1Source::new(up, buf, framing, *idle, u64::MAX))
            }
            Self::H2(recv) => recv
                .take()
                .map_or(Source::Done, |r| Source::H2(H2Source::new(r, u64::MAX))),
        }
    }
}

/// The backend switched protocols (`101`, checked against what was asked): its
/// connection, head, and the bytes it sent after the head.
pub struct Switch {
    /// The backend connection, to splice to the client.
    pub up: Conn,
    /// The `101` head.
    pub head: ResponseHead,
    /// Its bytes.
    pub bytes: Bytes,
    /// Bytes after the head: the new protocol's first.
    pub early: BytesMut,
}
