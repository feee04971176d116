//! Reading the server name (SNI) from a TLS ClientHello without terminating TLS,
//! for `tls-passthrough` listeners: the bytes are only looked at, then passed on
//! unchanged to the backend picked by the name.
//!
//! Sans-I/O: [`peek`] takes what has arrived so far and says whether it needs more.
//! A ClientHello may arrive split across TCP segments and even across TLS records,
//! so the handshake message is reassembled from consecutive handshake records.

use thiserror::Error;

/// Largest ClientHello accepted: far above real ones (a few KiB with post-quantum
/// key shares), low enough that a client cannot make the proxy buffer much.
pub const MAX_CLIENT_HELLO: usize = 16 * 1024;

/// What [`peek`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Peek {
    /// The ClientHello is not complete yet: read more and call again.
    NeedMore,
    /// The ClientHello is complete; its server name, lowercased, if it sent one.
    Done(Option<String>),
}

/// Why the bytes are not a ClientHello the proxy can route.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum ClientHelloError {
    /// Not a TLS handshake record.
    #[error("not a TLS handshake")]
    NotTls,
    /// The first handshake message is not a ClientHello.
    #[error("not a ClientHello")]
    NotClientHello,
    /// Lengths that do not add up.
    #[error("malformed ClientHello: {0}")]
    Malformed(&'static str),
    /// Larger than [`MAX_CLIENT_HELLO`].
    #[error("ClientHello too large")]
    TooLarge,
}

/// Looks for a complete ClientHello at the start of `buf` and its SNI.
pub fn peek(buf: &[u8]) -> Result<Peek, ClientHelloError> {
    // Reassemble the handshake layer from the records that have arrived.
    let mut hs = Vec::new();
    let mut rest = buf;
    loop {
        let Some(header) = rest.get(..5) else {
            return need_more_if_prefix_ok(rest, &hs);
        };
        if header[0] != 0x16 {
            return Err(if hs.is_empty() {
                ClientHelloError::NotTls
            } else {
                ClientHelloError::Malformed("a ClientHello record followed by another type")
            });
        }
        if header[1] != 3 {
            return Err(ClientHelloError::NotTls);
        }
        let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
        if len == 0 {
            return Err(ClientHelloError::Malformed("empty record"));
        }
        let Some(body) = rest.get(5..5 + len) else {
            // A partial record: what it holds so far may already finish the message
            // (more handshake messages can follow in the same record) or show an error.
            hs.extend_from_slice(rest.get(5..).unwrap_or_default());
            return Ok(handshake(&hs)?.unwrap_or(Peek::NeedMore));
        };
        hs.extend_from_slice(body);
        rest = &rest[5 + len..];
        if let Some(peek) = handshake(&hs)? {
            return Ok(peek);
        }
    }
}

/// At a record boundary without a whole record: checks what is known so far.
fn need_more_if_prefix_ok(partial: &[u8], hs: &[u8]) -> Result<Peek, ClientHelloError> {
    if let Some(&t) = partial.first() {
        if t != 0x16 {
            return Err(if hs.is_empty() {
                ClientHelloError::NotTls
            } else {
                ClientHelloError::Malformed("a ClientHello record followed by another type")
            });
        }
    }
    if let Some(&major) = partial.get(1) {
        if major != 3 {
            return Err(ClientHelloError::NotTls);
        }
    }
    if !hs.is_empty() {
        handshake(hs)?;
    }
    Ok(Peek::NeedMore)
}

/// Parses the reassembled handshake bytes; `None` while the message is incomplete.
fn handshake(hs: &[u8]) -> Result<Option<Peek>, ClientHelloError> {
    let Some(&kind) = hs.first() else {
        return Ok(None);
    };
    if kind != 1 {
        return Err(ClientHelloError::NotClientHello);
    }
    let Some(l) = hs.get(1..4) else {
        return Ok(None);
    };
    let len = usize::from(l[0]) << 16 | usize::from(l[1]) << 8 | usize::from(l[2]);
    if len > MAX_CLIENT_HELLO {
        return Err(ClientHelloError::TooLarge);
    }
    let Some(body) = hs.get(4..4 + len) else {
        return Ok(None);
    };
    client_hello(body).map(|sni| Some(Peek::Done(sni)))
}

/// A cursor over a ClientHello's fields.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], ClientHelloError> {
        let (head, rest) = self
            .0
            .split_at_checked(n)
            .ok_or(ClientHelloError::Malformed(what))?;
        self.0 = rest;
        Ok(head)
    }

    fn u8_len(&mut self, what: &'static str) -> Result<&'a [u8], ClientHelloError> {
        let n = usize::from(self.take(1, what)?[0]);
        self.take(n, what)
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, ClientHelloError> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u16_len(&mut self, what: &'static str) -> Result<&'a [u8], ClientHelloError> {
        let n = usize::from(self.u16(what)?);
        self.take(n, what)
    }
}

/// The SNI of a whole ClientHello body.
fn client_hello(body: &[u8]) -> Result<Option<String>, ClientHelloError> {
    let mut r = Reader(body);
    r.take(2, "version")?;
    r.take(32, "random")?;
    let session = r.u8_len("session id")?;
    if session.len() > 32 {
        return Err(ClientHelloError::Malformed("session id"));
    }
    let suites = r.u16_len("cipher suites")?;
    if suites.is_empty() || suites.len() % 2 != 0 {
        return Err(ClientHelloError::Malformed("cipher suites"));
    }
    if r.u8_len("compression methods")?.is_empty() {
        return Err(ClientHelloError::Malformed("compression methods"));
    }
    if r.0.is_empty() {
        return Ok(None); // no extensions at all (old clients)
    }
    let mut exts = Reader(r.u16_len("extensions")?);
    let mut sni = None;
    while !exts.0.is_empty() {
        let kind = exts.u16("extension")?;
        let data = exts.u16_len("extension")?;
        if kind == 0 {
            if sni.is_some() {
                return Err(ClientHelloError::Malformed("two server_name extensions"));
            }
            sni = Some(server_name(data)?);
        }
    }
    Ok(sni.flatten())
}

/// The host name in a `server_name` extension (RFC 6066 §3).
fn server_name(data: &[u8]) -> Result<Option<String>, ClientHelloError> {
    let mut r = Reader(data);
    let mut list = Reader(r.u16_len("server name list")?);
    let mut name = None;
    while !list.0.is_empty() {
        let kind = list.take(1, "server name")?[0];
        let value = list.u16_len("server name")?;
        if kind == 0 && name.is_none() {
            let valid = !value.is_empty()
                && value.len() <= 253
                && value
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
            if !valid {
                return Err(ClientHelloError::Malformed("server name"));
            }
            name = Some(String::from_utf8_lossy(value).to_ascii_lowercase());
        }
    }
    Ok(name)
}

#[cfg(test)]
mod tests;
