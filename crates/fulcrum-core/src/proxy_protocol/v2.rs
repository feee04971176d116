//! The binary format: a 12-byte signature, a version/command byte, a family/transport
//! byte, a big-endian 16-bit length, then that many bytes (the address block, then
//! TLVs).
//!
//! Each fixed field is checked as soon as it has arrived, so a bad header is refused
//! without waiting for its body. TLVs are skipped whole, never parsed: nothing here
//! uses them, and the length already bounds them.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use super::{as_v6, Error, Header};

/// What every v2 header starts with.
pub(super) const SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// Bytes before the variable part.
const FIXED: usize = 16;
/// Version 2 in the high nibble of byte 13.
const VERSION: u8 = 0x20;
const CMD_LOCAL: u8 = 0x0;
const CMD_PROXY: u8 = 0x1;
/// Family/transport bytes: AF_UNSPEC, TCP and UDP over IPv4 and IPv6.
const UNSPEC: u8 = 0x00;
const TCP4: u8 = 0x11;
const UDP4: u8 = 0x12;
const TCP6: u8 = 0x21;
const UDP6: u8 = 0x22;
/// AF_UNIX stream and datagram: accepted, but the paths are not addresses we can use.
const UNIX_STREAM: u8 = 0x31;
const UNIX_DGRAM: u8 = 0x32;
/// Address block sizes: two addresses and, for inet, two ports.
const INET_BLOCK: u16 = 2 * 4 + 2 * 2;
const INET6_BLOCK: u16 = 2 * 16 + 2 * 2;
const UNIX_BLOCK: u16 = 2 * 108;

/// Parses a v2 header; see [`super::parse`].
pub(super) fn parse(buf: &[u8]) -> Result<Option<Header>, Error> {
    let n = buf.len().min(SIGNATURE.len());
    if buf[..n] != SIGNATURE[..n] {
        return Err(Error::V2Signature);
    }
    let Some(&ver_cmd) = buf.get(12) else {
        return Ok(None);
    };
    if ver_cmd & 0xF0 != VERSION {
        return Err(Error::V2Version(ver_cmd >> 4));
    }
    let local = match ver_cmd & 0x0F {
        CMD_LOCAL => true,
        CMD_PROXY => false,
        other => return Err(Error::V2Command(other)),
    };
    let Some(&family) = buf.get(13) else {
        return Ok(None);
    };
    // LOCAL: the spec says the family is ignored along with the address block, so any
    // byte is accepted and the body is skipped whole.
    let need = match family {
        _ if local => 0,
        UNSPEC => 0,
        TCP4 | UDP4 => INET_BLOCK,
        TCP6 | UDP6 => INET6_BLOCK,
        UNIX_STREAM | UNIX_DGRAM => UNIX_BLOCK,
        other => return Err(Error::V2Family(other)),
    };
    let Some(&[hi, lo]) = buf.get(14..FIXED) else {
        return Ok(None);
    };
    let len = u16::from_be_bytes([hi, lo]);
    if len < need {
        return Err(Error::V2Length { len, need });
    }
    let total = FIXED + usize::from(len);
    let Some(body) = buf.get(FIXED..total) else {
        return Ok(None);
    };
    let addresses = match family {
        _ if local => None,
        TCP4 | UDP4 => Some(inet(body)),
        TCP6 | UDP6 => Some(inet6(body)),
        _ => None,
    };
    Ok(Some(Header {
        len: total,
        addresses,
    }))
}

/// The IPv4 block: source, destination, source port, destination port. `body` holds at
/// least [`INET_BLOCK`] bytes (checked against the length above).
fn inet(body: &[u8]) -> (SocketAddr, SocketAddr) {
    let ip = |at: usize| Ipv4Addr::new(body[at], body[at + 1], body[at + 2], body[at + 3]);
    let port = |at: usize| u16::from_be_bytes([body[at], body[at + 1]]);
    (
        SocketAddr::V4(SocketAddrV4::new(ip(0), port(8))),
        SocketAddr::V4(SocketAddrV4::new(ip(4), port(10))),
    )
}

/// The IPv6 block, laid out as the IPv4 one; `body` holds at least [`INET6_BLOCK`]
/// bytes.
fn inet6(body: &[u8]) -> (SocketAddr, SocketAddr) {
    let ip = |at: usize| {
        let mut octets = [0; 16];
        octets.copy_from_slice(&body[at..at + 16]);
        Ipv6Addr::from(octets)
    };
    let port = |at: usize| u16::from_be_bytes([body[at], body[at + 1]]);
    (
        SocketAddr::V6(SocketAddrV6::new(ip(0), port(32), 0, 0)),
        SocketAddr::V6(SocketAddrV6::new(ip(16), port(34), 0, 0)),
    )
}

/// Appends a v2 PROXY header, without TLVs, for a connection from `src` to `dst`
/// (`datagram`: UDP rather than TCP).
///
/// Mixed families (one IPv4, one IPv6) are written as IPv6 with the IPv4 address
/// v4-mapped (`::ffff:a.b.c.d`), as HAProxy does, so the addresses survive; the
/// receiver sees IPv6 addresses.
pub fn write(out: &mut Vec<u8>, src: SocketAddr, dst: SocketAddr, datagram: bool) {
    out.extend_from_slice(&SIGNATURE);
    out.push(VERSION | CMD_PROXY);
    match (src, dst) {
        (SocketAddr::V4(s), SocketAddr::V4(d)) => {
            out.push(if datagram { UDP4 } else { TCP4 });
            out.extend_from_slice(&INET_BLOCK.to_be_bytes());
            out.extend_from_slice(&s.ip().octets());
            out.extend_from_slice(&d.ip().octets());
        }
        _ => {
            out.push(if datagram { UDP6 } else { TCP6 });
            out.extend_from_slice(&INET6_BLOCK.to_be_bytes());
            out.extend_from_slice(&as_v6(src).octets());
            out.extend_from_slice(&as_v6(dst).octets());
        }
    }
    out.extend_from_slice(&src.port().to_be_bytes());
    out.extend_from_slice(&dst.port().to_be_bytes());
}

/// Appends a v2 LOCAL header with no address block (see [`super::write_local`]).
pub(super) fn write_local(out: &mut Vec<u8>) {
    out.extend_from_slice(&SIGNATURE);
    out.push(VERSION | CMD_LOCAL);
    out.push(UNSPEC);
    out.extend_from_slice(&0u16.to_be_bytes());
}

#[cfg(test)]
#[path = "v2_tests.rs"]
mod tests;
