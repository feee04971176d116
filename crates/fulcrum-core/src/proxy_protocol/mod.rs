//! Sans-I/O PROXY protocol (HAProxy's spec, versions 1 and 2): read the header a load
//! balancer in front of us puts before the client's bytes, and write one for a backend
//! behind us.
//!
//! Input → output: the first bytes of a connection → the header's length and the
//! original source and destination addresses. The listener is configured for exactly
//! one version and accepts only that one: the spec forbids guessing, because a header
//! the client itself sent must never be trusted on a listener that does not expect it.
//!
//! Strict on purpose, like the HTTP codec: single spaces, ports without leading
//! zeros, addresses matching the declared family, only the v2 commands and
//! family/transport bytes the spec defines. A malformed header closes the connection,
//! and a valid one is never refused for arriving in pieces: every prefix of a valid
//! header is "need more", while garbage (an HTTP request on a PROXY listener) is
//! refused at its first impossible byte rather than after a read timeout.
//!
//! Never does I/O: the listener reads, calls [`parse`] until it returns a header, and
//! hands the bytes after [`Header::len`] to the next stage as the client's payload.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

mod v1;
mod v2;

pub use v1::write as write_v1;
pub use v2::write as write_v2;

/// Longest v1 header, CRLF included (the spec's worst case, `PROXY UNKNOWN` with two
/// full-length IPv6 addresses and ports).
pub const V1_MAX_LEN: usize = 107;
/// Longest v2 header: the 16-byte fixed part plus the largest 16-bit length.
pub const V2_MAX_LEN: usize = 16 + u16::MAX as usize;

/// The PROXY protocol version a listener is configured to accept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Version {
    /// The text format: `PROXY TCP4 1.2.3.4 5.6.7.8 1234 80\r\n`.
    V1,
    /// The binary format, with a 12-byte signature.
    V2,
}

impl Version {
    /// The most bytes a header of this version can take, so a reader knows when to
    /// stop waiting: [`parse`] never asks for more than this.
    pub const fn max_len(self) -> usize {
        match self {
            Self::V1 => V1_MAX_LEN,
            Self::V2 => V2_MAX_LEN,
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::V1 => "v1",
            Self::V2 => "v2",
        })
    }
}

/// A complete, valid header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Bytes the header takes at the start of the buffer; what follows is payload.
    pub len: usize,
    /// Original (source, destination). `None` when the sender gives none to use: v1
    /// `UNKNOWN`, v2 `LOCAL` (a health check from the proxy itself), and v2 `AF_UNSPEC`
    /// or `AF_UNIX`; the caller then keeps the connection's real endpoints.
    ///
    /// Addresses are reported as sent: a v4-mapped IPv6 address stays IPv6 (call
    /// `to_canonical` on the IP to fold it).
    pub addresses: Option<(SocketAddr, SocketAddr)>,
}

/// Why a header was refused. Every case closes the connection.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A header of the other version: the listener accepts exactly one.
    #[error("PROXY protocol {found} header on a listener configured for {expected}")]
    WrongVersion {
        /// What the listener is configured for.
        expected: Version,
        /// What the peer sent.
        found: Version,
    },
    /// The bytes do not start with `PROXY ` (case-sensitive).
    #[error("bad PROXY v1 header: does not start with \"PROXY \"")]
    V1Signature,
    /// The protocol is not `TCP4`, `TCP6` or `UNKNOWN`.
    #[error("bad PROXY v1 header: protocol is not TCP4, TCP6 or UNKNOWN")]
    V1Protocol,
    /// An address is not a valid IPv4 (`TCP4`) or IPv6 (`TCP6`) address.
    #[error("bad PROXY v1 header: address does not match its protocol (TCP4: IPv4 dotted quad, TCP6: IPv6)")]
    V1Address,
    /// A port is not a decimal 0-65535 without leading zeros.
    #[error("bad PROXY v1 header: port is not a decimal 0-65535 without leading zeros")]
    V1Port,
    /// Too few or too many fields, or not exactly one space between them.
    #[error("bad PROXY v1 header: wrong number of fields or spaces")]
    V1Fields,
    /// A CR not followed by LF, or a LF without CR.
    #[error("bad PROXY v1 header: line does not end in CRLF")]
    V1LineEnd,
    /// No CRLF within [`V1_MAX_LEN`] bytes.
    #[error("bad PROXY v1 header: no CRLF within 107 bytes")]
    V1TooLong,
    /// The 12-byte signature does not match.
    #[error("bad PROXY v2 header: signature mismatch")]
    V2Signature,
    /// The version nibble is not 2.
    #[error("bad PROXY v2 header: version {0} is not 2")]
    V2Version(u8),
    /// The command nibble is neither LOCAL (0) nor PROXY (1).
    #[error("bad PROXY v2 header: command {0} is neither LOCAL (0) nor PROXY (1)")]
    V2Command(u8),
    /// The family/transport byte is not one the spec defines.
    #[error("bad PROXY v2 header: unknown address family and transport {0:#04x}")]
    V2Family(u8),
    /// The length cannot hold the address block its family requires.
    #[error("bad PROXY v2 header: length {len} is shorter than the {need}-byte address block")]
    V2Length {
        /// The length field.
        len: u16,
        /// The address block's size for the declared family.
        need: u16,
    },
}

/// Parses the header at the start of `buf`, of exactly the configured `version`.
///
/// `Ok(None)`: `buf` is a valid prefix; read more (never beyond
/// [`Version::max_len`]). `Ok(Some(h))`: the header takes `buf[..h.len]`. `Err`: close
/// the connection. The result depends only on the bytes, never on how they were split
/// across reads.
pub fn parse(buf: &[u8], version: Version) -> Result<Option<Header>, Error> {
    // The two signatures differ at the first byte ('P' against CR), so a header of the
    // other version is told apart without waiting.
    match version {
        Version::V1 if is_prefix_of(buf, &v2::SIGNATURE) => Err(Error::WrongVersion {
            expected: Version::V1,
            found: Version::V2,
        }),
        Version::V2 if is_prefix_of(buf, v1::SIGNATURE) => Err(Error::WrongVersion {
            expected: Version::V2,
            found: Version::V1,
        }),
        Version::V1 => v1::parse(buf),
        Version::V2 => v2::parse(buf),
    }
}

/// Writes a header that carries no addresses, for connections the proxy opens on its
/// own behalf (health checks to a backend that expects a PROXY header): v1
/// `PROXY UNKNOWN\r\n`, v2 `LOCAL`. The backend then uses the real endpoints.
pub fn write_local(out: &mut Vec<u8>, version: Version) {
    match version {
        Version::V1 => out.extend_from_slice(b"PROXY UNKNOWN\r\n"),
        Version::V2 => v2::write_local(out),
    }
}

/// Whether `buf` is non-empty and agrees with `signature` on every byte it has.
fn is_prefix_of(buf: &[u8], signature: &[u8]) -> bool {
    let n = buf.len().min(signature.len());
    n > 0 && buf[..n] == signature[..n]
}

/// The IP as IPv6, v4-mapped when it is IPv4: how both writers carry mixed families.
fn as_v6(addr: SocketAddr) -> Ipv6Addr {
    match addr.ip() {
        IpAddr::V4(ip) => ip.to_ipv6_mapped(),
        IpAddr::V6(ip) => ip,
    }
}

#[cfg(test)]
mod tests;
