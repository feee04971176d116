//! Raw HTTP/1.1 on a socket, for checks at the byte level: exact request bytes out,
//! responses parsed one at a time, and how the connection ended.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How reading a connection to its end stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// The peer closed (FIN).
    Eof,
    /// The peer reset the connection.
    Reset,
    /// Still open when the limit passed.
    Open,
}

impl End {
    /// Closed, one way or the other.
    pub fn is_closed(self) -> bool {
        self != Self::Open
    }
}

/// One parsed response.
#[derive(Debug)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// The head as text (status line and fields).
    pub head: String,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

impl Reply {
    /// A header value (first match, case-insensitive).
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }
}

/// A client connection speaking raw bytes.
pub struct Wire {
    s: TcpStream,
    buf: Vec<u8>,
    closed: Option<End>,
}

impl Wire {
    pub async fn connect(addr: SocketAddr) -> Self {
        Self::try_connect(addr).await.unwrap()
    }

    /// Connects; the error when the connection is refused.
    pub async fn try_connect(addr: SocketAddr) -> std::io::Result<Self> {
        let s = TcpStream::connect(addr).await?;
        s.set_nodelay(true)?;
        Ok(Self {
            s,
            buf: Vec::new(),
            closed: None,
        })
    }

    /// Writes `bytes`; false when the peer already closed or reset.
    pub async fn send(&mut self, bytes: &[u8]) -> bool {
        self.s.write_all(bytes).await.is_ok()
    }

    /// Reads more bytes into the buffer; false at the end of the stream.
    async fn fill(&mut self, limit: Duration) -> bool {
        if self.closed.is_some() {
            return false;
        }
        let mut chunk = [0u8; 65536];
        match tokio::time::timeout(limit, self.s.read(&mut chunk)).await {
            Ok(Ok(0)) => {
                self.closed = Some(End::Eof);
                false
            }
            Ok(Ok(n)) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
            Ok(Err(_)) => {
                self.closed = Some(End::Reset);
                false
            }
            Err(_) => false,
        }
    }

    /// Reads one response (`head_only` for a HEAD request); panics with what came
    /// back when the connection ends or stalls for 30 s first.
    pub async fn response(&mut self, head_only: bool) -> Reply {
        loop {
            if let Some(r) = self.parse(head_only) {
                return r;
            }
            if !self.fill(Duration::from_secs(30)).await {
                panic!(
                    "no complete response ({:?}); got {:?}",
                    self.closed,
                    String::from_utf8_lossy(&self.buf)
                );
            }
        }
    }

    /// Reads until the peer closes or `limit` passes; returns the unread bytes as text
    /// and how it ended.
    pub async fn read_to_end(&mut self, limit: Duration) -> (String, End) {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() || !self.fill(left).await {
                break;
            }
        }
        let text = String::from_utf8_lossy(&std::mem::take(&mut self.buf)).into_owned();
        (text, self.closed.unwrap_or(End::Open))
    }

    /// Whether the connection is still open with nothing to read, checked for `wait`.
    pub async fn is_idle_open(&mut self, wait: Duration) -> bool {
        let before = self.buf.len();
        let _ = self.fill(wait).await;
        self.closed.is_none() && self.buf.len() == before
    }

    fn parse(&mut self, head_only: bool) -> Option<Reply> {
        let (reply, used) = parse_response(&self.buf, head_only, self.closed.is_some())?;
        self.buf.drain(..used);
        Some(reply)
    }
}

/// The first complete response in `bytes` (a body without length ends at the end of
/// `bytes`).
pub fn first_reply(bytes: &[u8]) -> Option<Reply> {
    parse_response(bytes, false, true).map(|(r, _)| r)
}

/// Parses one response; returns it and the bytes it used. `closed`: the connection
/// has ended, so a body without length is complete.
fn parse_response(buf: &[u8], head_only: bool, closed: bool) -> Option<(Reply, usize)> {
    let mut fields = [httparse::EMPTY_HEADER; 64];
    let mut res = httparse::Response::new(&mut fields);
    let head_len = match res.parse(buf).expect("malformed response") {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => return None,
    };
    let status = res.code.unwrap_or(0);
    let find = |name: &str| {
        res.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).trim().to_ascii_lowercase())
    };
    let chunked = find("transfer-encoding").is_some_and(|v| v.ends_with("chunked"));
    let length = find("content-length").map(|v| v.parse::<usize>().expect("bad content-length"));
    let head = String::from_utf8_lossy(&buf[..head_len]).into_owned();
    let rest = &buf[head_len..];
    let (body, used) =
        if head_only || (100..200).contains(&status) || status == 204 || status == 304 {
            (Vec::new(), 0)
        } else if chunked {
            dechunk(rest)?
        } else if let Some(n) = length {
            if rest.len() < n {
                return None;
            }
            (rest[..n].to_vec(), n)
        } else if closed {
            (rest.to_vec(), rest.len())
        } else {
            return None;
        };
    Some((Reply { status, head, body }, head_len + used))
}

/// Decodes a complete chunked body; `None` until it is all there.
fn dechunk(mut b: &[u8]) -> Option<(Vec<u8>, usize)> {
    let total = b.len();
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&b[..eol]).unwrap();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16)
            .expect("bad chunk size");
        b = &b[eol + 2..];
        if size == 0 {
            // Trailers, then an empty line.
            loop {
                let eol = b.windows(2).position(|w| w == b"\r\n")?;
                b = &b[eol + 2..];
                if eol == 0 {
                    return Some((out, total - b.len()));
                }
            }
        }
        if b.len() < size + 2 {
            return None;
        }
        out.extend_from_slice(&b[..size]);
        assert_eq!(
            &b[size..size + 2],
            b"\r\n",
            "chunk data not followed by CRLF"
        );
        b = &b[size + 2..];
    }
}

/// Sends `bytes` on a fresh connection and reads until it closes (or 20 s pass).
pub async fn exchange(addr: SocketAddr, bytes: &[u8]) -> (String, End) {
    let mut w = Wire::connect(addr).await;
    w.send(bytes).await;
    w.read_to_end(Duration::from_secs(20)).await
}
