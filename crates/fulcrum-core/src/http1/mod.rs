//! Sans-I/O HTTP/1.1: parse a head, decide the body's framing (refusing every
//! ambiguity a backend could read differently), decode and encode chunked bodies, and
//! rewrite a head for the other side into one buffer.
//!
//! The I/O crate only pumps bytes through these functions, so every byte-level rule
//! here is unit-tested without sockets.

mod chunked;
mod head;
mod rewrite;
mod trailers;
mod upgrade;

pub use crate::forward::{is_hop_by_hop, Forwarded};
pub use chunked::{write_chunk, write_last_chunk, ChunkError, ChunkedDecoder, Decoded};
pub(crate) use head::trim;
pub use head::{parse_request, parse_response, Field, HeadError, RequestHead, ResponseHead, Span};
pub use rewrite::{reason, write_request_head, write_response_head};
pub use trailers::{is_forbidden_in_trailers, parse_trailers, Trailer};
pub use upgrade::{
    choose as choose_upgrade, is_accepted as is_upgrade_accepted, write_switching_head,
    write_upgrade_request,
};

/// How a message body is delimited on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the sender closes (responses only; the connection cannot be reused).
    UntilClose,
}

/// HTTP/1.x minor version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// HTTP/1.0
    Http10,
    /// HTTP/1.1
    Http11,
}
