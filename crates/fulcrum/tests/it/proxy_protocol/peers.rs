//! The peers of the PROXY protocol tests: an echo backend, a backend that parses the
//! header Fulcrum sends, raw clients, and config pieces.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use fulcrum_core::proxy_protocol::{self, Version};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::*;

/// A header of `version` from `src` to `dst`.
pub(super) fn header(version: Version, src: &str, dst: SocketAddr) -> Vec<u8> {
    let src: SocketAddr = src.parse().unwrap();
    let mut out = Vec::new();
    match version {
        Version::V1 => proxy_protocol::write_v1(&mut out, src, dst),
        Version::V2 => proxy_protocol::write_v2(&mut out, src, dst, false),
    }
    out
}

/// A raw backend behind a pool that sends PROXY headers: it parses each
/// connection's header with the core codec and records `SRC>DST` (or `LOCAL` for a
/// header naming no client), then echoes (`http = false`) or answers every HTTP
/// request on the connection with `200` and that record as the body.
pub(super) struct Receiver {
    pub(super) addr: SocketAddr,
    seen: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    pub(super) async fn start(version: Version, http: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let task = tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                let log = log.clone();
                tokio::spawn(async move {
                    let _ = Self::serve(s, version, http, log).await;
                });
            }
        });
        Self { addr, seen, task }
    }

    async fn serve(
        mut s: TcpStream,
        version: Version,
        http: bool,
        log: Arc<Mutex<Vec<String>>>,
    ) -> std::io::Result<()> {
        let mut buf = Vec::new();
        let h = loop {
            if let Some(h) = proxy_protocol::parse(&buf, version).unwrap() {
                break h;
            }
            let mut chunk = [0u8; 4096];
            let n = s.read(&mut chunk).await?;
            assert!(n > 0, "closed before a complete header: {buf:?}");
            buf.extend_from_slice(&chunk[..n]);
        };
        let record = match h.addresses {
            Some((src, dst)) => format!("{src}>{dst}"),
            None => "LOCAL".to_owned(),
        };
        log.lock().unwrap().push(record.clone());
        buf.drain(..h.len);
        if !http {
            s.write_all(&buf).await?;
            let (mut r, mut w) = s.split();
            tokio::io::copy(&mut r, &mut w).await?;
            return w.shutdown().await;
        }
        // Requests without bodies (GETs and probes): each ends at its blank line.
        loop {
            while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                buf.drain(..end + 4);
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{record}",
                    record.len()
                );
                s.write_all(answer.as_bytes()).await?;
            }
            let mut chunk = [0u8; 4096];
            let n = s.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    }

    pub(super) fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }

    /// Headers that named a client (probes' `LOCAL` ones left out).
    pub(super) fn clients(&self) -> Vec<String> {
        self.seen().into_iter().filter(|r| r != "LOCAL").collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads until the proxy closes; the bytes it sent first (none when it refused the
/// connection). A close with our bytes unread arrives as a reset.
pub(super) async fn until_closed(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    match s.read_to_end(&mut out).await {
        Ok(_) => out,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => out,
        Err(e) => panic!("{e}"),
    }
}

/// Connects, sends `bytes` and reads until the proxy closes.
pub(super) async fn send_and_close(addr: SocketAddr, bytes: &[u8], shut: bool) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    if shut {
        s.shutdown().await.unwrap();
    }
    until_closed(&mut s).await
}

/// One HTTP/1.1 exchange on an open connection; returns the response body.
pub(super) async fn exchange(s: &mut TcpStream, request: &str) -> String {
    s.write_all(request.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            assert!(head.starts_with("http/1.1 200"), "{head}");
            let len = content_length(&head);
            while buf.len() < end + 4 + len {
                let mut chunk = [0u8; 4096];
                let n = s.read(&mut chunk).await.unwrap();
                assert!(n > 0, "closed mid-response");
                buf.extend_from_slice(&chunk[..n]);
            }
            return String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).into_owned();
        }
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).await.unwrap();
        assert!(n > 0, "closed before a response");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Writes `msg` and reads its echo back, on an open connection.
pub(super) async fn round_trip(s: &mut TcpStream, msg: &[u8]) {
    s.write_all(msg).await.unwrap();
    let mut back = vec![0u8; msg.len()];
    s.read_exact(&mut back).await.unwrap();
    assert_eq!(back, msg);
}

/// `fulcrum_listener_refused_connections_total` of `listener` for `reason`.
pub(super) async fn refused(admin: SocketAddr, listener: &str, reason: &str) -> u64 {
    let (status, _, body) = get(&client(), &format!("http://{admin}/metrics")).await;
    assert_eq!(status, 200);
    let text = String::from_utf8_lossy(&body).into_owned();
    let want = format!(
        "fulcrum_listener_refused_connections_total{{listener=\"{listener}\",reason=\"{reason}\"}} "
    );
    text.lines()
        .find_map(|l| l.strip_prefix(&want))
        .unwrap_or_else(|| panic!("no {want} in:\n{text}"))
        .parse()
        .unwrap()
}

pub(super) const ADMIN: &str = "\n[admin]\naddress = \"127.0.0.1:0\"\n";

/// A tcp listener `name` over pool `pool` with `extra` keys.
pub(super) fn tcp_listener(name: &str, pool: &str, extra: &str) -> String {
    format!(
        "[listeners.{name}]\naddress = \"127.0.0.1:0\"\nprotocol = \"tcp\"\npool = \"{pool}\"\n{extra}\n\n"
    )
}

/// An http listener `name` with `extra` keys.
pub(super) fn http_listener(name: &str, extra: &str) -> String {
    format!("[listeners.{name}]\naddress = \"127.0.0.1:0\"\n{extra}\n\n")
}

pub(super) fn takes(version: &str, from: &str) -> String {
    format!("proxy_protocol = \"{version}\"\nproxy_protocol_from = [\"{from}\"]")
}
