//! A TLS connection driven by hand over a `TcpStream`, shared by `&` like the plain
//! socket it replaces: rustls is sans-I/O, so a read takes records from the socket
//! when it is readable and decrypts them, and a write encrypts and sends, each
//! locking the rustls state only between awaits. The HTTP/1.1 path's reader and
//! writer can then use one connection at once, as they do a plain socket, and an
//! idle connection holds no read buffer of ours.

use std::io::{self, BufRead, Read, Write};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::{ready, Context, Poll};

use bytes::BytesMut;
use tokio::net::TcpStream;

/// A TCP connection with TLS over it, past its handshake.
pub struct TlsConn {
    tcp: TcpStream,
    /// What the handshake settled, for the access log and the subject header.
    session: Session,
    // A mutex rather than a `RefCell` so health probes (on a multi-thread runtime)
    // can hold it across awaits too; it is never contended, nor held across one.
    tls: Mutex<rustls::Connection>,
}

/// What a connection's handshake settled, read once (the rustls state is behind a
/// lock): the access log names them on every request.
#[derive(Clone, Debug, Default)]
pub struct Session {
    /// `TLSv1.3` or `TLSv1.2`.
    pub version: &'static str,
    /// The cipher suite, as rustls names it.
    pub cipher: &'static str,
    /// The server name the client asked for.
    pub sni: Option<Box<str>>,
    /// The verified client certificate's subject, when the listener passes it on.
    pub subject: Option<Box<str>>,
}

/// The socket as rustls's `Read`/`Write`: non-blocking, `WouldBlock` when not ready.
struct Sock<'a>(&'a TcpStream);

impl Read for Sock<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.try_read(buf)
    }
}

impl Write for Sock<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl TlsConn {
    /// Wraps a connection whose handshake is done (`tokio_rustls`'s `into_inner`).
    pub fn new(tcp: TcpStream, tls: impl Into<rustls::Connection>) -> Self {
        let tls: rustls::Connection = tls.into();
        let version = match tls.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
            _ => "",
        };
        let cipher = tls
            .negotiated_cipher_suite()
            .and_then(|s| s.suite().as_str())
            .unwrap_or("");
        let sni = match &tls {
            rustls::Connection::Server(s) => s.server_name().map(Into::into),
            rustls::Connection::Client(_) => None,
        };
        Self {
            tcp,
            session: Session {
                version,
                cipher,
                sni,
                subject: None,
            },
            tls: Mutex::new(tls),
        }
    }

    /// What the handshake settled.
    pub fn session(&self) -> &Session {
        &self.session
    }

    fn lock(&self) -> MutexGuard<'_, rustls::Connection> {
        // A panic while it was held leaves a connection that is simply dropped.
        self.tls.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The verified client certificate's subject, if the listener asked for it.
    pub fn subject(&self) -> Option<&str> {
        self.session.subject.as_deref()
    }

    /// Reads the client certificate's subject, kept for the connection's requests.
    pub fn keep_subject(&mut self) {
        let leaf = self
            .lock()
            .peer_certificates()
            .and_then(|c| c.first().cloned());
        self.session.subject = leaf
            .and_then(|der| super::certs::subject(&der))
            .map(Into::into);
    }

    /// The socket under the TLS.
    pub fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    /// Runs `f` on the rustls state (the ALPN protocol, the peer's certificates).
    pub fn with<T>(&self, f: impl FnOnce(&rustls::Connection) -> T) -> T {
        f(&self.lock())
    }

    /// Reads plaintext into `buf`'s spare room, taking a buffer only once bytes
    /// are there (`take` fills an empty `buf`); 0 at the end of the stream.
    pub fn poll_read(
        &self,
        cx: &mut Context<'_>,
        buf: &mut BytesMut,
        take: impl Fn(&mut BytesMut),
    ) -> Poll<io::Result<usize>> {
        self.poll_plain(cx, |reader| {
            take(buf);
            read_plain(reader, buf)
        })
    }

    /// Waits for plaintext (or the end of the stream: 0) and hands the reader to
    /// `read` once some is there.
    fn poll_plain(
        &self,
        cx: &mut Context<'_>,
        read: impl FnOnce(&mut rustls::Reader<'_>) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        loop {
            {
                let mut tls = self.lock();
                let state = tls.process_new_packets().map_err(|e| {
                    // Tell the peer why (the alert is queued by rustls), best effort.
                    let _ = tls.write_tls(&mut Sock(&self.tcp));
                    io::Error::new(io::ErrorKind::InvalidData, e)
                })?;
                // Session tickets or a key update may be waiting to go out.
                if tls.wants_write() {
                    let _ = tls.write_tls(&mut Sock(&self.tcp));
                }
                if state.plaintext_bytes_to_read() > 0 {
                    return Poll::Ready(read(&mut tls.reader()));
                }
                if state.peer_has_closed() {
                    return Poll::Ready(Ok(0));
                }
            }
            ready!(self.tcp.poll_read_ready(cx))?;
            let mut tls = self.lock();
            match tls.read_tls(&mut Sock(&self.tcp)) {
                // The peer closed without close_notify: an end of stream all the same
                // (HTTP framing, not the TLS close, tells a whole message).
                Ok(0) => return Poll::Ready(Ok(0)),
                Ok(_) => {}
                // `try_read` forgot the stale readiness: the next poll waits on epoll.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    /// Sends what rustls has queued; `Pending` until the socket took all of it.
    fn poll_flush_tls(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            let mut tls = self.lock();
            if !tls.wants_write() {
                return Poll::Ready(Ok(()));
            }
            match tls.write_tls(&mut Sock(&self.tcp)) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    drop(tls);
                    ready!(self.tcp.poll_write_ready(cx))?;
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    /// Encrypts and sends all of `data`.
    pub async fn write_all(&self, mut data: &[u8]) -> io::Result<()> {
        loop {
            {
                let mut tls = self.lock();
                while !data.is_empty() {
                    let n = tls.writer().write(data)?;
                    if n == 0 {
                        break;
                    }
                    data = data.get(n..).unwrap_or_default();
                }
                while tls.wants_write() {
                    match tls.write_tls(&mut Sock(&self.tcp)) {
                        Ok(_) => {}
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => return Err(e),
                    }
                }
                if data.is_empty() && !tls.wants_write() {
                    return Ok(());
                }
            }
            self.tcp.writable().await?;
        }
    }

    /// Sends close_notify and ends the write half.
    pub async fn shutdown(&self) -> io::Result<()> {
        self.lock().send_close_notify();
        self.write_all(&[]).await?;
        socket2::SockRef::from(&self.tcp).shutdown(std::net::Shutdown::Write)
    }

    /// Whether an idle pooled connection can carry a new request: no plaintext,
    /// close or error arrived while it sat idle (records such as session tickets
    /// are taken in and kept).
    pub fn is_reusable(&self) -> bool {
        let mut tls = self.lock();
        loop {
            match tls.read_tls(&mut Sock(&self.tcp)) {
                Ok(0) => return false,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => return false,
            }
        }
        match tls.process_new_packets() {
            Ok(state) => state.plaintext_bytes_to_read() == 0 && !state.peer_has_closed(),
            Err(_) => false,
        }
    }
}

/// Moves the decrypted bytes rustls holds into `buf`, chunk by chunk (no zeroed
/// spare room to read into).
fn read_plain(reader: &mut rustls::Reader<'_>, buf: &mut BytesMut) -> io::Result<usize> {
    if buf.capacity() - buf.len() < 4096 {
        buf.reserve(16 * 1024);
    }
    let mut n = 0;
    loop {
        let chunk = match reader.fill_buf() {
            Ok(chunk) => chunk,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock || n > 0 => break,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            break;
        }
        let len = chunk.len();
        buf.extend_from_slice(chunk);
        reader.consume(len);
        n += len;
    }
    Ok(n)
}

/// For the `h2` crate, which drives its connection through these traits.
impl tokio::io::AsyncRead for TlsConn {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
        rb: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let n = ready!(self.poll_plain(cx, |reader| reader.read(rb.initialize_unfilled())))?;
        rb.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl tokio::io::AsyncWrite for TlsConn {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            let n = self.lock().writer().write(data)?;
            // Send what is ready without waiting; a full buffer waits for room.
            let flushed = self.poll_flush_tls(cx)?;
            if n > 0 || data.is_empty() {
                return Poll::Ready(Ok(n));
            }
            ready!(flushed);
        }
    }

    fn poll_flush(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush_tls(cx)
    }

    fn poll_shutdown(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.lock().send_close_notify();
        ready!(self.poll_flush_tls(cx))?;
        Poll::Ready(socket2::SockRef::from(&self.tcp).shutdown(std::net::Shutdown::Write))
    }
}

/// Why a handshake failed.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// The socket failed or the peer closed before the handshake ended.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// TLS refused: a protocol, certificate or alert failure.
    #[error("{0}")]
    Tls(#[from] rustls::Error),
    /// The handshake did not end within its deadline.
    #[error("handshake timed out")]
    Timeout,
}

/// Runs the handshake of `tls` over `tcp`; `early` are bytes already read from the
/// socket (after a PROXY header) that belong to it.
pub async fn handshake(
    tcp: &TcpStream,
    tls: &mut rustls::Connection,
    mut early: &[u8],
) -> Result<(), HandshakeError> {
    while !early.is_empty() {
        tls.read_tls(&mut early)?;
        process(tcp, tls)?;
    }
    loop {
        while tls.wants_write() {
            match tls.write_tls(&mut Sock(tcp)) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => tcp.writable().await?,
                Err(e) => return Err(e.into()),
            }
        }
        if !tls.is_handshaking() {
            return Ok(());
        }
        match tls.read_tls(&mut Sock(tcp)) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "peer closed during the handshake",
                )
                .into())
            }
            Ok(_) => process(tcp, tls)?,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => tcp.readable().await?,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Processes records read; on failure the alert rustls queued is sent, best effort.
fn process(tcp: &TcpStream, tls: &mut rustls::Connection) -> Result<(), rustls::Error> {
    tls.process_new_packets().map(|_| ()).inspect_err(|_| {
        let _ = tls.write_tls(&mut Sock(tcp));
    })
}
