//! Built-in demo backends: small HTTP/1.1 servers that say who they are, so
//! `fulcrum demo` shows balancing with nothing else installed.

use std::net::SocketAddr;

use bytes::{Buf, BytesMut};
use fulcrum_core::http1::{self, ChunkedDecoder, Decoded, Framing};
use tokio::net::{TcpListener, TcpStream};

use crate::io::{read_some, write_all};

/// Starts one demo backend per address on a thread of its own; returns once bound.
pub fn start(addrs: &[SocketAddr]) -> std::io::Result<()> {
    let mut listeners = Vec::new();
    for addr in addrs {
        let l = std::net::TcpListener::bind(addr)?;
        l.set_nonblocking(true)?;
        listeners.push(l);
    }
    std::thread::Builder::new()
        .name("demo-backends".into())
        .spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                let mut tasks = Vec::new();
                for (i, l) in listeners.into_iter().enumerate() {
                    let Ok(l) = TcpListener::from_std(l) else {
                        continue;
                    };
                    tasks.push(tokio::spawn(serve(l, i + 1)));
                }
                for t in tasks {
                    let _ = t.await;
                }
            });
        })?;
    Ok(())
}

async fn serve(l: TcpListener, n: usize) {
    while let Ok((io, _)) = l.accept().await {
        tokio::spawn(conn(io, n));
    }
}

async fn conn(io: TcpStream, n: usize) {
    let limit = std::time::Duration::from_secs(60);
    let mut buf = BytesMut::new();
    loop {
        let head = loop {
            match http1::parse_request(&buf, 64 * 1024) {
                Ok(Some(h)) => break h,
                Ok(None) => {}
                Err(_) => return,
            }
            if !matches!(read_some(&io, &mut buf, limit).await, Ok(n) if n > 0) {
                return;
            }
        };
        let hb = buf.split_to(head.len).freeze();
        let method = String::from_utf8_lossy(head.method.get(&hb)).into_owned();
        let path = String::from_utf8_lossy(head.target.get(&hb)).into_owned();
        let xff = head
            .fields(&hb)
            .find(|(k, _)| k.eq_ignore_ascii_case(b"x-forwarded-for"))
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default();
        let Some(received) = drain_body(&io, &mut buf, head.body).await else {
            return;
        };
        let body = format!(
            "backend {n}: {method} {path} (body {received} bytes, x-forwarded-for: {xff})\n"
        );
        let resp = format!("HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nx-backend: {n}\r\n\r\n{body}", body.len());
        if write_all(&io, resp.as_bytes(), limit).await.is_err() || !head.keep_alive {
            return;
        }
    }
}

async fn drain_body(io: &TcpStream, buf: &mut BytesMut, framing: Framing) -> Option<u64> {
    let limit = std::time::Duration::from_secs(60);
    let mut total = 0u64;
    match framing {
        Framing::Length(mut left) => {
            while left > 0 {
                if buf.is_empty() && !matches!(read_some(io, buf, limit).await, Ok(n) if n > 0) {
                    return None;
                }
                let take = left.min(buf.len() as u64);
                buf.advance(take as usize);
                left -= take;
                total += take;
            }
        }
        Framing::Chunked => {
            let mut dec = ChunkedDecoder::new();
            loop {
                let (used, event) = dec.decode(buf).ok()?;
                buf.advance(used);
                match event {
                    Decoded::Data { len, .. } => total += len as u64,
                    Decoded::Done { .. } => break,
                    Decoded::NeedMore => {
                        if !matches!(read_some(io, buf, limit).await, Ok(n) if n > 0) {
                            return None;
                        }
                    }
                }
            }
        }
        Framing::Empty | Framing::UntilClose => {}
    }
    Some(total)
}
