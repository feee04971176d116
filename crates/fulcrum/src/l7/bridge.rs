//! A WebSocket carried on one client stream (RFC 8441 over HTTP/2, RFC 9220 over
//! HTTP/3), once the backend switched: the stream and the backend connection
//! bridged both ways until either side ends it or it idles out. Frames are never
//! parsed. Each client codec gives its stream's two halves ([`Inbound`],
//! [`Outbound`]) after sending the `200`.

use std::cell::Cell;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::time::Instant;

use crate::access_log::Entry;
use crate::http::body::{h2_send, H3Recv, H3Send};
use crate::http::{Switch, Upgrade};
use crate::io::{self, Conn};
use crate::l7::forward::Held;

/// Bytes asked of one backend read.
const CHUNK: usize = 64 * 1024;

/// The client's half that sends to the backend.
pub(crate) trait Inbound {
    /// The client's next bytes; `None` when it ended its side.
    async fn recv(&mut self) -> Option<Result<Bytes, String>>;
}

/// The client's half that the backend's bytes go to.
pub(crate) trait Outbound {
    /// Sends `data` to the client, within its flow control.
    async fn send(&mut self, data: Bytes) -> Result<(), String>;
    /// Ends the stream toward the client: the backend closed its side.
    async fn finish(&mut self);
}

impl Inbound for h2::RecvStream {
    async fn recv(&mut self) -> Option<Result<Bytes, String>> {
        let data = self.data().await?;
        Some(
            data.inspect(|d| {
                let _ = self.flow_control().release_capacity(d.len());
            })
            .map_err(|e| e.to_string()),
        )
    }
}

impl Outbound for h2::SendStream<Bytes> {
    async fn send(&mut self, data: Bytes) -> Result<(), String> {
        h2_send(self, data).await.map_err(|e| e.to_string())
    }

    async fn finish(&mut self) {
        let _ = self.send_data(Bytes::new(), true);
    }
}

/// An HTTP/3 request stream's receiving half, with what was read before the switch.
pub(crate) struct H3In(pub H3Recv, pub Option<Bytes>);

impl Inbound for H3In {
    async fn recv(&mut self) -> Option<Result<Bytes, String>> {
        if let Some(first) = self.1.take() {
            return Some(Ok(first));
        }
        match self.0.recv_data().await {
            Ok(Some(mut buf)) => Some(Ok(buf.copy_to_bytes(buf.remaining()))),
            Ok(None) => None,
            Err(e) => Some(Err(e.to_string())),
        }
    }
}

impl Outbound for &mut H3Send {
    async fn send(&mut self, data: Bytes) -> Result<(), String> {
        self.send_data(data).await.map_err(|e| e.to_string())
    }

    async fn finish(&mut self) {
        let _ = H3Send::finish(self).await;
    }
}

/// The `200` that opens the client's WebSocket stream: the backend's `101` fields
/// but its accept value, which was Fulcrum's to check (the client sent no key).
pub(crate) fn opened(sw: &Switch) -> http::Response<()> {
    let mut headers = crate::http::fields::response_map(sw.head.fields(&sw.bytes));
    headers.remove("sec-websocket-accept");
    let mut res = http::Response::new(());
    *res.headers_mut() = headers;
    res
}

/// The client stream of a switched request, or why there is none.
pub(crate) fn no_stream() -> crate::http::ProxyError {
    crate::http::ProxyError::BadResponse("switched without a client stream".into())
}

/// Bytes moved each way.
#[derive(Default)]
struct Moved {
    forward: Cell<u64>,
    backward: Cell<u64>,
}

/// Bridges the client's stream (its `200` sent) and the switched backend
/// connection for the life of the WebSocket, bounded by the route's
/// `max_stream_duration`; counts it as one of the backend's streams and logs the
/// bytes each way and why it ended.
pub(crate) async fn run(
    inbound: &mut impl Inbound,
    outbound: &mut impl Outbound,
    sw: Switch,
    held: Held<'_>,
    upgrade: Upgrade<'_>,
    e: &mut Entry<'_>,
) {
    e.status = 200;
    let open = held.member.map(|m| m.stats.stream_opened());
    let started = std::time::Instant::now();
    let moved = Moved::default();
    let relay = relay(inbound, outbound, &sw.up, sw.early, upgrade.idle, &moved);
    let ended = match upgrade.max {
        Some(max) => tokio::time::timeout(max, relay)
            .await
            .unwrap_or_else(|_| Some("max_stream_duration".into())),
        None => relay.await,
    };
    e.bytes_in = moved.forward.get();
    e.bytes_out = moved.backward.get();
    e.error = ended;
    held.pool.state.streams.observe(started.elapsed());
    drop(open);
}

/// Copies the client's stream to the backend and the backend to the client's stream
/// (first `early`, what followed the `101`). Returns why it ended, `None` for both
/// sides finishing.
async fn relay(
    inbound: &mut impl Inbound,
    outbound: &mut impl Outbound,
    up: &Conn,
    early: BytesMut,
    idle: Duration,
    moved: &Moved,
) -> Option<String> {
    let last = Cell::new(Instant::now());
    let forward = async {
        while let Some(data) = inbound.recv().await {
            let data = data.map_err(|e| format!("client: {e}"))?;
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
            outbound
                .send(early.freeze())
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
                    outbound
                        .send(buf.split().freeze())
                        .await
                        .map_err(|e| format!("client: {e}"))?;
                }
                Err(io::IoError::Timeout) => continue,
                Err(io::IoError::Io(e)) => return Err(format!("backend: {e}")),
            }
        }
        outbound.finish().await;
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
