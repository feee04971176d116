//! Reads and writes on a shared `&TcpStream` or [`Conn`] (TLS or not) with a deadline, so a request's body
//! reader and response writer can use one socket without splitting it, and an idle
//! connection holds no buffer until bytes arrive.

pub mod pool;
pub mod splice;

use std::io;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::Interest;
use tokio::net::TcpStream;

/// Smallest spare room handed to a read.
const READ_CHUNK: usize = 16 * 1024;
/// Buffers kept for reuse per thread (each worker is one thread).
const KEPT: usize = 32;

thread_local! {
    static BUFS: std::cell::RefCell<Vec<BytesMut>> = const { std::cell::RefCell::new(Vec::new()) };
    static VECS: std::cell::RefCell<Vec<Vec<u8>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Hands an empty read buffer back for reuse by the next connection that gets
/// bytes: reads then cost no allocation, and idle connections still hold none.
pub fn recycle(mut buf: BytesMut) {
    // Only a buffer no frozen `Bytes` still shares can be reclaimed to its full
    // size without allocating; others are simply dropped.
    if buf.is_empty() && buf.try_reclaim(READ_CHUNK) {
        BUFS.with(|b| {
            let mut b = b.borrow_mut();
            if b.len() < KEPT {
                b.push(buf);
            }
        });
    }
}

/// A write buffer, reused when one was handed back.
pub fn take_vec(capacity: usize) -> Vec<u8> {
    let mut v = VECS.with(|v| v.borrow_mut().pop()).unwrap_or_default();
    v.reserve(capacity);
    v
}

/// Hands a write buffer back for reuse.
pub fn recycle_vec(mut v: Vec<u8>) {
    if v.capacity() <= 256 * 1024 {
        v.clear();
        VECS.with(|vs| {
            let mut vs = vs.borrow_mut();
            if vs.len() < KEPT {
                vs.push(v);
            }
        });
    }
}

/// What went wrong on a socket.
#[derive(Debug, thiserror::Error)]
pub enum IoError {
    /// The peer closed or reset, or the socket failed.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The deadline passed.
    #[error("timed out")]
    Timeout,
}

/// A client or backend connection: a plain socket, or TLS over one.
pub enum Conn {
    /// Plain TCP.
    Tcp(TcpStream),
    /// TLS, past its handshake (boxed: the rustls state is large, and plain
    /// connections should not pay for it).
    Tls(Box<crate::tls::TlsConn>),
}

impl Conn {
    /// The TCP socket under it.
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Conn::Tcp(s) => s,
            Conn::Tls(t) => t.tcp(),
        }
    }

    /// The verified client certificate's subject, on a TLS connection that kept it.
    pub fn subject(&self) -> Option<&str> {
        match self {
            Conn::Tcp(_) => None,
            Conn::Tls(t) => t.subject(),
        }
    }

    /// The TLS session, as the access log shows it.
    pub fn tls_info(&self) -> Option<crate::access_log::TlsInfo<'_>> {
        match self {
            Conn::Tcp(_) => None,
            Conn::Tls(t) => Some(crate::access_log::TlsInfo::from(t.session())),
        }
    }

    /// Whether it is TLS.
    pub fn is_tls(&self) -> bool {
        matches!(self, Conn::Tls(_))
    }

    /// The local address of its socket.
    pub fn local_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.tcp().local_addr()
    }

    /// Ends the write half (after close_notify, for TLS).
    pub async fn shutdown_write(&self) -> io::Result<()> {
        match self {
            Conn::Tcp(s) => socket2::SockRef::from(s).shutdown(std::net::Shutdown::Write),
            Conn::Tls(t) => t.shutdown().await,
        }
    }
}

/// What the deadline-bound reads and writes here need of a connection.
pub trait Socket {
    /// Reads into `buf` once bytes are there, taking a buffer only then.
    fn poll_read_buf(
        &self,
        cx: &mut std::task::Context<'_>,
        buf: &mut BytesMut,
    ) -> std::task::Poll<io::Result<usize>>;

    /// Writes all of `data`.
    fn write_all_now<'a>(
        &'a self,
        data: &'a [u8],
    ) -> impl std::future::Future<Output = io::Result<()>> + 'a;
}

impl Socket for TcpStream {
    fn poll_read_buf(
        &self,
        cx: &mut std::task::Context<'_>,
        buf: &mut BytesMut,
    ) -> std::task::Poll<io::Result<usize>> {
        poll_read_tcp(self, cx, buf)
    }

    fn write_all_now<'a>(
        &'a self,
        data: &'a [u8],
    ) -> impl std::future::Future<Output = io::Result<()>> + 'a {
        write_tcp(self, data)
    }
}

impl Socket for Conn {
    fn poll_read_buf(
        &self,
        cx: &mut std::task::Context<'_>,
        buf: &mut BytesMut,
    ) -> std::task::Poll<io::Result<usize>> {
        match self {
            Conn::Tcp(s) => poll_read_tcp(s, cx, buf),
            Conn::Tls(t) => t.poll_read(cx, buf, take_buf),
        }
    }

    async fn write_all_now(&self, data: &[u8]) -> io::Result<()> {
        match self {
            Conn::Tcp(s) => write_tcp(s, data).await,
            Conn::Tls(t) => t.write_all(data).await,
        }
    }
}

/// Fills an empty `buf` with a reused buffer when one is kept.
fn take_buf(buf: &mut BytesMut) {
    if buf.capacity() == 0 {
        if let Some(b) = BUFS.with(|b| b.borrow_mut().pop()) {
            *buf = b;
        }
    }
}

/// Reads what is available into `buf` (at least one byte, or 0 at EOF) within `limit`.
pub async fn read_some<S: Socket>(
    s: &S,
    buf: &mut BytesMut,
    limit: Duration,
) -> Result<usize, IoError> {
    // Bytes already there need no timer (nor the clock read that sets one).
    if let Some(r) = now_or_later(|cx| s.poll_read_buf(cx, buf)).await {
        return r.map_err(IoError::Io);
    }
    tokio::time::timeout(limit, std::future::poll_fn(|cx| s.poll_read_buf(cx, buf)))
        .await
        .map_err(|_| IoError::Timeout)?
        .map_err(IoError::Io)
}

/// Polls once: `Some` with the result when ready now, `None` when it would wait
/// (the waker is registered, as with any poll).
async fn now_or_later<T>(
    mut poll: impl FnMut(&mut std::task::Context<'_>) -> std::task::Poll<T>,
) -> Option<T> {
    std::future::poll_fn(|cx| {
        std::task::Poll::Ready(match poll(cx) {
            std::task::Poll::Ready(r) => Some(r),
            std::task::Poll::Pending => None,
        })
    })
    .await
}

/// One read over `poll_read_ready`: no waiter node is stored in the future (each
/// socket has one reader at a time), which keeps an idle connection's task small.
fn poll_read_tcp(
    s: &TcpStream,
    cx: &mut std::task::Context<'_>,
    buf: &mut BytesMut,
) -> std::task::Poll<io::Result<usize>> {
    loop {
        // Wait before allocating: a silent connection must not hold a buffer.
        std::task::ready!(s.poll_read_ready(cx))?;
        take_buf(buf);
        if buf.capacity() - buf.len() < READ_CHUNK / 4 {
            buf.reserve(READ_CHUNK);
        }
        let spare = buf.capacity() - buf.len();
        match s.try_read_buf(buf) {
            Ok(n) => {
                if n > 0 && n < spare {
                    // A short read drained the socket: forget the readiness now, so the
                    // next wait goes to epoll instead of a recv that only says EAGAIN
                    // (HAProxy's trick). Closed-state readiness is kept by tokio.
                    let _ = s.try_io(Interest::READABLE, || {
                        Err::<(), _>(io::ErrorKind::WouldBlock.into())
                    });
                }
                return std::task::Poll::Ready(Ok(n));
            }
            // `poll_read_ready` may report readiness spuriously (a new socket often
            // does): give the buffer back rather than hold it while waiting.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if buf.is_empty() {
                    recycle(std::mem::take(buf));
                }
            }
            Err(e) => return std::task::Poll::Ready(Err(e)),
        }
    }
}

async fn write_tcp(s: &TcpStream, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        match s.try_write(data) {
            Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
            Ok(n) => data = data.get(n..).unwrap_or_default(),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => s.writable().await?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Writes all of `data` within `limit` (the deadline covers the whole write).
pub async fn write_all<S: Socket>(s: &S, data: &[u8], limit: Duration) -> Result<(), IoError> {
    let write = s.write_all_now(data);
    tokio::pin!(write);
    // Most writes fit the socket's buffer at once: no timer (nor clock read) for
    // those; the deadline starts when one has to wait.
    if let Some(r) = now_or_later(|cx| std::future::Future::poll(write.as_mut(), cx)).await {
        return r.map_err(IoError::Io);
    }
    tokio::time::timeout(limit, write)
        .await
        .map_err(|_| IoError::Timeout)?
        .map_err(IoError::Io)
}

/// Sends `len` bytes of `file` from `offset` with `sendfile(2)`: the kernel moves
/// them from the page cache to the socket, never through Fulcrum's memory. Each
/// megabyte is first announced to the kernel's readahead (`fadvise WILLNEED`), so
/// the copy mostly finds its pages in memory; `limit` bounds each wait for the
/// client to take more. Returns the bytes sent.
pub async fn send_file(
    tcp: &TcpStream,
    file: &std::fs::File,
    offset: u64,
    len: u64,
    limit: Duration,
) -> Result<u64, IoError> {
    const CHUNK: u64 = 1 << 20;
    let (mut off, end) = (offset, offset + len);
    while off < end {
        let chunk = (end - off).min(CHUNK);
        let _ = rustix::fs::fadvise(
            file,
            off,
            std::num::NonZeroU64::new(chunk),
            rustix::fs::Advice::WillNeed,
        );
        loop {
            let sent = tcp.try_io(tokio::io::Interest::WRITABLE, || {
                rustix::fs::sendfile(tcp, file, Some(&mut off), chunk as usize)
                    .map_err(io::Error::from)
            });
            match sent {
                Ok(0) => {
                    return Err(IoError::Io(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "file shrank while sent",
                    )))
                }
                Ok(_) => break,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    tokio::time::timeout(limit, tcp.writable())
                        .await
                        .map_err(|_| IoError::Timeout)?
                        .map_err(IoError::Io)?;
                }
                Err(e) => return Err(IoError::Io(e)),
            }
        }
    }
    Ok(off - offset)
}

/// Whether a pooled connection is still open: readable with EOF, data, or an error all
/// mean it cannot carry a new request.
pub fn is_reusable(s: &Conn) -> bool {
    match s {
        Conn::Tcp(s) => {
            let mut probe = [0u8; 1];
            matches!(s.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
        }
        Conn::Tls(t) => t.is_reusable(),
    }
}

/// A write buffer that goes back for reuse when dropped.
pub struct WriteBuf(Vec<u8>);

impl WriteBuf {
    /// A reused (or new) buffer with room for `capacity` bytes.
    pub fn take(capacity: usize) -> Self {
        Self(take_vec(capacity))
    }
}

impl std::ops::Deref for WriteBuf {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        &self.0
    }
}

impl std::ops::DerefMut for WriteBuf {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.0
    }
}

impl Drop for WriteBuf {
    fn drop(&mut self) {
        recycle_vec(std::mem::take(&mut self.0));
    }
}

/// A read buffer that goes back for reuse when dropped empty.
#[derive(Default)]
pub struct ReadBuf(BytesMut);

impl std::ops::Deref for ReadBuf {
    type Target = BytesMut;
    fn deref(&self) -> &BytesMut {
        &self.0
    }
}

impl std::ops::DerefMut for ReadBuf {
    fn deref_mut(&mut self) -> &mut BytesMut {
        &mut self.0
    }
}

impl Drop for ReadBuf {
    fn drop(&mut self) {
        recycle(std::mem::take(&mut self.0));
    }
}
