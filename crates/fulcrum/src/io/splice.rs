//! Copies bytes both ways between two sockets until both directions have ended.
//!
//! Each direction waits for readability holding no buffer, takes one from the
//! worker's reuse list while bytes flow and gives it back once the socket is
//! drained, so an idle spliced connection costs no buffer memory. End of stream on
//! one side shuts down the other side's write half (half-close) while the other
//! direction carries on. Either side failing ends both; so does `idle`, the time
//! with no byte moving either way.

use std::cell::Cell;
use std::io;
use std::net::Shutdown;
use std::time::Duration;

use tokio::io::Interest;
use tokio::net::TcpStream;

use super::{Conn, Socket};
use tokio::time::Instant;

/// Bytes asked of one read: large enough for bulk transfers in few syscalls.
const CHUNK: usize = 64 * 1024;

/// How a splice ended.
#[derive(Debug)]
pub enum Ended {
    /// Both sides finished sending (each direction reached end of stream).
    Closed,
    /// No byte moved either way for the idle timeout.
    Idle,
    /// The first socket (the client) failed.
    First(io::Error),
    /// The second socket (the backend) failed.
    Second(io::Error),
}

/// What a splice moved, and how it ended.
#[derive(Debug)]
pub struct Spliced {
    /// Bytes from the first socket to the second.
    pub forward: u64,
    /// Bytes from the second socket to the first.
    pub backward: u64,
    /// Why it stopped.
    pub ended: Ended,
}

/// Which socket of a direction failed.
enum Fault {
    Read(io::Error),
    Write(io::Error),
}

/// Copies between `a` and `b` until both directions end, one fails, or nothing
/// moves for `idle`. The caller closes both sockets when it returns: the direction
/// that ends last has its end of stream passed on by that close.
pub async fn splice(a: &TcpStream, b: &TcpStream, idle: Duration) -> Spliced {
    let last = Cell::new(Instant::now());
    let (forward, backward) = (Cell::new(0u64), Cell::new(0u64));
    let one_ended = Cell::new(false);
    let ab = pump(a, b, &forward, &last, &one_ended);
    let ba = pump(b, a, &backward, &last, &one_ended);
    run(ab, ba, &last, idle, (&forward, &backward)).await
}

/// [`splice`] for connections either of which may be TLS: plain pairs take the
/// socket path; otherwise each direction reads decrypted bytes into a buffer
/// taken only while they flow.
pub async fn splice_conn(a: &Conn, b: &Conn, idle: Duration) -> Spliced {
    if let (Conn::Tcp(a), Conn::Tcp(b)) = (a, b) {
        return splice(a, b, idle).await;
    }
    let last = Cell::new(Instant::now());
    let (forward, backward) = (Cell::new(0u64), Cell::new(0u64));
    let one_ended = Cell::new(false);
    let ab = pump_conn(a, b, &forward, &last, &one_ended);
    let ba = pump_conn(b, a, &backward, &last, &one_ended);
    run(ab, ba, &last, idle, (&forward, &backward)).await
}

/// Drives both directions until both end, one fails, or `idle` passes with no
/// byte moved.
async fn run(
    ab: impl std::future::Future<Output = Result<(), Fault>>,
    ba: impl std::future::Future<Output = Result<(), Fault>>,
    last: &Cell<Instant>,
    idle: Duration,
    (forward, backward): (&Cell<u64>, &Cell<u64>),
) -> Spliced {
    tokio::pin!(ab, ba);
    let (mut ab_done, mut ba_done) = (false, false);
    let ended = loop {
        if ab_done && ba_done {
            break Ended::Closed;
        }
        let deadline = last.get() + idle;
        tokio::select! {
            r = &mut ab, if !ab_done => match r {
                Ok(()) => ab_done = true,
                Err(Fault::Read(e)) => break Ended::First(e),
                Err(Fault::Write(e)) => break Ended::Second(e),
            },
            r = &mut ba, if !ba_done => match r {
                Ok(()) => ba_done = true,
                Err(Fault::Read(e)) => break Ended::Second(e),
                Err(Fault::Write(e)) => break Ended::First(e),
            },
            // Bytes may have moved since the deadline was set: only a deadline
            // that still holds ends the splice.
            () = tokio::time::sleep_until(deadline) => {
                if last.get() + idle <= Instant::now() {
                    break Ended::Idle;
                }
            }
        }
    };
    Spliced {
        forward: forward.get(),
        backward: backward.get(),
        ended,
    }
}

/// Copies `from` → `to` until `from` ends, then shuts down `to`'s write half,
/// unless the other direction already ended (`one_ended`): both sockets are about
/// to be closed, which sends the FIN anyway, one syscall fewer per connection.
async fn pump(
    from: &TcpStream,
    to: &TcpStream,
    moved: &Cell<u64>,
    last: &Cell<Instant>,
    one_ended: &Cell<bool>,
) -> Result<(), Fault> {
    loop {
        from.readable().await.map_err(Fault::Read)?;
        let mut buf = crate::io::WriteBuf::take(CHUNK);
        loop {
            buf.clear();
            let room = buf.capacity();
            match from.try_read_buf(&mut *buf) {
                Ok(0) => {
                    if !one_ended.replace(true) {
                        // A peer already gone makes this fail; its own direction
                        // reports it.
                        let _ = socket2::SockRef::from(to).shutdown(Shutdown::Write);
                    }
                    return Ok(());
                }
                Ok(n) => {
                    last.set(Instant::now());
                    let drained = n < room;
                    if drained {
                        // A short read emptied the socket: forget its readiness now,
                        // before awaiting the write (a newer readiness is kept), so
                        // the next wait goes to epoll rather than to a read that only
                        // says EAGAIN, as `crate::io` does.
                        let _ = from.try_io(Interest::READABLE, || {
                            Err::<(), _>(io::ErrorKind::WouldBlock.into())
                        });
                    }
                    write_all(to, &buf, last).await.map_err(Fault::Write)?;
                    moved.set(moved.get() + n as u64);
                    if drained {
                        break;
                    }
                }
                // Drained: the buffer goes back while the socket is quiet.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(Fault::Read(e)),
            }
        }
    }
}

/// [`pump`] over connections that may be TLS.
async fn pump_conn(
    from: &Conn,
    to: &Conn,
    moved: &Cell<u64>,
    last: &Cell<Instant>,
    one_ended: &Cell<bool>,
) -> Result<(), Fault> {
    loop {
        let mut buf = bytes::BytesMut::new();
        let n = std::future::poll_fn(|cx| from.poll_read_buf(cx, &mut buf))
            .await
            .map_err(Fault::Read)?;
        if n == 0 {
            if !one_ended.replace(true) {
                // A peer already gone makes this fail; its own direction reports it.
                let _ = to.shutdown_write().await;
            }
            return Ok(());
        }
        last.set(Instant::now());
        to.write_all_now(&buf).await.map_err(Fault::Write)?;
        last.set(Instant::now());
        moved.set(moved.get() + n as u64);
        buf.clear();
        crate::io::recycle(buf);
    }
}

/// Writes all of `data`, noting progress in `last`: the splice's idle timeout
/// bounds a peer that stops reading, not one that reads slowly.
async fn write_all(s: &TcpStream, mut data: &[u8], last: &Cell<Instant>) -> io::Result<()> {
    while !data.is_empty() {
        match s.try_write(data) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                last.set(Instant::now());
                data = data.get(n..).unwrap_or_default();
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => s.writable().await?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A connected pair of loopback sockets.
    async fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let near = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (far, _) = l.accept().await.unwrap();
        (near, far)
    }

    const LONG: Duration = Duration::from_secs(30);

    #[tokio::test]
    async fn copies_both_ways_and_keeps_half_close() {
        // client ⇄ (a | splice | b) ⇄ server
        let ((mut client, a), (b, mut server)) = (pair().await, pair().await);
        let client_side = async {
            client.write_all(b"question").await.unwrap();
            client.shutdown().await.unwrap();
            let mut got = Vec::new();
            client.read_to_end(&mut got).await.unwrap();
            got
        };
        // The server answers only after the client's end of stream reached it.
        let server_side = async {
            let mut got = Vec::new();
            server.read_to_end(&mut got).await.unwrap();
            server.write_all(b"an answer").await.unwrap();
            server.shutdown().await.unwrap();
            got
        };
        // The splice's caller closes both sockets once it returns: the last end of
        // stream reaches its peer as that close.
        let spliced = async move {
            let done = splice(&a, &b, LONG).await;
            drop((a, b));
            done
        };
        let (done, answer, question) = tokio::join!(spliced, client_side, server_side);
        assert_eq!(question, b"question");
        assert_eq!(answer, b"an answer");
        assert_eq!((done.forward, done.backward), (8, 9));
        assert!(matches!(done.ended, Ended::Closed), "{done:?}");
    }

    #[tokio::test]
    async fn nothing_moving_for_idle_ends_it() {
        let ((_client, a), (b, _server)) = (pair().await, pair().await);
        let started = Instant::now();
        let done = splice(&a, &b, Duration::from_millis(50)).await;
        assert!(matches!(done.ended, Ended::Idle), "{done:?}");
        assert!(started.elapsed() >= Duration::from_millis(50));
    }

    #[tokio::test]
    async fn a_reset_names_its_side() {
        let ((_client, a), (b, server)) = (pair().await, pair().await);
        // Linger 0: the close is a reset, not an end of stream.
        socket2::SockRef::from(&server)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(server);
        let done = splice(&a, &b, LONG).await;
        assert!(matches!(done.ended, Ended::Second(_)), "{done:?}");
    }
}
