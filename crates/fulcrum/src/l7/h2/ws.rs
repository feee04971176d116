//! WebSocket over HTTP/2 from clients (RFC 8441), after the backend switched: the
//! client's stream and the backend connection bridged both ways until either side
//! ends it or it idles out. Frames are never parsed.

use std::cell::Cell;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::time::Instant;

use crate::http::body::h2_send;
use crate::io::{self, Conn};

/// Bytes asked of one backend read.
const CHUNK: usize = 64 * 1024;

/// Bytes moved each way.
#[derive(Default)]
pub struct Moved {
    /// Client to backend.
    pub forward: Cell<u64>,
    /// Backend to client.
    pub backward: Cell<u64>,
}

/// Copies the client's stream to the backend and the backend to the client's stream
/// (first `early`, what followed the `101`). Returns why it ended, `None` for both
/// sides finishing.
pub async fn relay(
    body: &mut h2::RecvStream,
    mut send: h2::SendStream<Bytes>,
    up: &Conn,
    early: BytesMut,
    idle: Duration,
    moved: &Moved,
) -> Option<String> {
    let last = Cell::new(Instant::now());
    let forward = async {
        while let Some(data) = body.data().await {
            let data = data.map_err(|e| format!("client: {e}"))?;
            let _ = body.flow_control().release_capacity(data.len());
            last.set(Instant::now());
            io::write_all(up, &data, idle)
                .await
                .map_err(|e| format!("backend: {e}"))?;
            moved.forward.set(moved.forward.get() + data.len() as u64);
        }
        let _ = up.shutdown_write().await;
        Ok::<(), String>(())
    };
    let backward = async {
        if !early.is_empty() {
            moved.backward.set(early.len() as u64);
            h2_send(&mut send, early.freeze())
                .await
                .map_err(|e| format!("client: {e}"))?;
        }
        let mut buf = BytesMut::new();
        loop {
            buf.reserve(CHUNK);
            match io::read_some(up, &mut buf, idle).await {
                Ok(0) => break,
                Ok(n) => {
                    last.set(Instant::now());
                    moved.backward.set(moved.backward.get() + n as u64);
                    h2_send(&mut send, buf.split().freeze())
                        .await
                        .map_err(|e| format!("client: {e}"))?;
                }
                Err(io::IoError::Timeout) => continue,
                Err(io::IoError::Io(e)) => return Err(format!("backend: {e}")),
            }
        }
        let _ = send.send_data(Bytes::new(), true);
        Ok::<(), String>(())
    };
    tokio::pin!(forward, backward);
    let (mut f_done, mut b_done) = (false, false);
    loop {
        if f_done && b_done {
            return None;
        }
        let deadline = last.get() + idle;
        tokio::select! {
            r = &mut forward, if !f_done => match r {
                Ok(()) => f_done = true,
                Err(e) => return Some(e),
            },
            r = &mut backward, if !b_done => match r {
                Ok(()) => b_done = true,
                Err(e) => return Some(e),
            },
            () = tokio::time::sleep_until(deadline) => {
                if last.get() + idle <= Instant::now() {
                    return Some("stream idle timeout".into());
                }
            }
        }
    }
}
