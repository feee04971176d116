//! Zero-downtime binary upgrade: the running process starts the new binary and
//! hands it its listening sockets over a Unix socket (SCM_RIGHTS), as HAProxy,
//! Envoy and Pingora do. The sockets themselves move, accept queues included, so
//! no connection is refused at any instant; the old process stops accepting only
//! once the new one says it serves, then finishes what it has in flight. UDP
//! listener sockets move the same way, with the datagrams queued in them; UDP
//! sessions do not (each holds its own backend socket), so a client's next
//! datagram after the handover starts a new session in the new process. HTTP/3
//! sockets move too, each with a link for the packets of the old process's QUIC
//! connections (`listen::quic_relay`).
//!
//! ```text
//! old: SIGUSR2 → bind fulcrum-upgrade-PID.sock → spawn new binary (same args, env
//!      FULCRUM_UPGRADE_SOCKET) → send names + fds → wait "ready" → graceful stop
//! new: connect → receive → serve on the inherited sockets → "ready"
//! ```

use std::collections::HashMap;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, IoSlice, IoSliceMut, Read, Write};
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use rustix::net::{
    recvmsg, sendmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};

use crate::listen::socket::Socket;

/// The variable that tells a new process where to fetch its sockets.
pub const ENV: &str = "FULCRUM_UPGRADE_SOCKET";

/// Most descriptors handed over (the kernel's SCM_MAX_FD is 253 per message).
const MAX_FDS: usize = 250;

/// How long the old process waits for the new one to connect and to serve.
const PATIENCE: Duration = Duration::from_secs(60);

/// Why an upgrade did not happen (the old process keeps serving).
#[derive(Debug, thiserror::Error)]
pub enum HandoverError {
    /// A socket or process operation failed.
    #[error("{what}: {error}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// Why it failed.
        error: std::io::Error,
    },
    /// The new process exited or never said it serves.
    #[error("the new process did not take over: {0}")]
    NotReady(String),
    /// More listening sockets than one message can carry.
    #[error("{0} listening sockets: at most {MAX_FDS} can be handed over")]
    TooMany(usize),
    /// The message from the old process was not understood.
    #[error("bad handover message: {0}")]
    Message(String),
}

fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> HandoverError {
    move |error| HandoverError::Io { what, error }
}

pub use crate::listen::socket::Listening;

/// Starts the new binary and hands it `listening`; returns the new process once it
/// says it serves. Blocking: run it off the async threads.
pub fn hand_over(
    exe: &Path,
    args: &[OsString],
    listening: &[Listening],
) -> Result<Child, HandoverError> {
    let count: usize = listening.iter().map(|l| l.sockets.len()).sum();
    if count > MAX_FDS {
        return Err(HandoverError::TooMany(count));
    }
    // A fresh directory only this user can enter: nobody else can take the name
    // first or connect to the socket.
    let dir = private_dir().map_err(io("create the upgrade directory"))?;
    let _cleanup = Remove(dir.clone());
    let path = dir.join("upgrade.sock");
    let server = UnixListener::bind(&path).map_err(io("bind the upgrade socket"))?;
    server
        .set_nonblocking(true)
        .map_err(io("set the upgrade socket non-blocking"))?;
    let mut child = Command::new(exe)
        .args(args)
        .env(ENV, &path)
        .spawn()
        .map_err(io("start the new binary"))?;
    let result = serve_child(&server, &mut child, listening);
    if result.is_err() {
        let _ = child.kill();
        let _ = child.wait();
    }
    result.map(|()| child)
}

fn serve_child(
    server: &UnixListener,
    child: &mut Child,
    listening: &[Listening],
) -> Result<(), HandoverError> {
    let deadline = Instant::now() + PATIENCE;
    let stream = loop {
        match server.accept() {
            // Only the process just started gets the sockets.
            Ok((stream, _)) if is_peer(&stream, child.id()) => break stream,
            Ok(_) => tracing::warn!("upgrade: a process other than the new one connected; ignored"),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(io("accept the new process")(e)),
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(HandoverError::NotReady(format!("it exited ({status})")));
        }
        if Instant::now() > deadline {
            return Err(HandoverError::NotReady("it never connected".into()));
        }
        // Polling a local socket while a process starts: no readiness to wait on
        // across the fork short of a second channel.
        std::thread::sleep(Duration::from_millis(20));
    };
    stream
        .set_nonblocking(false)
        .map_err(io("set the upgrade stream blocking"))?;
    stream
        .set_read_timeout(Some(PATIENCE))
        .map_err(io("set the upgrade stream timeout"))?;
    let mut header = String::new();
    let mut fds: Vec<BorrowedFd<'_>> = Vec::new();
    for l in listening {
        header.push_str(&format!("{} {} {}\n", l.name, l.addr, l.sockets.len()));
        fds.extend(l.sockets.iter().map(|s| s.as_fd()));
    }
    header.push_str(".\n");
    let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(fds.len().max(1)))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(&fds)) {
        return Err(HandoverError::TooMany(fds.len()));
    }
    let bytes = header.as_bytes();
    let sent = sendmsg(
        &stream,
        &[IoSlice::new(bytes)],
        &mut control,
        SendFlags::empty(),
    )
    .map_err(|e| io("send the sockets")(e.into()))?;
    (&stream)
        .write_all(bytes.get(sent..).unwrap_or_default())
        .map_err(io("send the listener list"))?;
    let mut reply = String::new();
    BufReader::new(&stream)
        .read_line(&mut reply)
        .map_err(io("wait for the new process"))?;
    if reply.trim() == "ready" {
        Ok(())
    } else {
        Err(HandoverError::NotReady(format!(
            "it answered {:?}",
            reply.trim()
        )))
    }
}

/// Sockets inherited from the process this one replaces.
#[derive(Debug)]
pub struct Inherited {
    by_name: HashMap<String, (SocketAddr, Vec<Socket>)>,
    stream: UnixStream,
}

impl Inherited {
    /// In a process started by an upgrade ([`ENV`] set): fetches the old process's
    /// sockets. `None` in a process started any other way.
    pub fn receive() -> Result<Option<Self>, HandoverError> {
        let Some(path) = std::env::var_os(ENV) else {
            return Ok(None);
        };
        // Not passed on: a later upgrade of this process sets its own.
        std::env::remove_var(ENV);
        let stream = UnixStream::connect(&path).map_err(io("connect to the old process"))?;
        stream
            .set_read_timeout(Some(PATIENCE))
            .map_err(io("set the upgrade stream timeout"))?;
        let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let mut buf = vec![0u8; 64 * 1024];
        let got = recvmsg(
            &stream,
            &mut [IoSliceMut::new(&mut buf)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        )
        .map_err(|e| io("receive the sockets")(e.into()))?;
        let mut fds = Vec::new();
        for message in control.drain() {
            if let RecvAncillaryMessage::ScmRights(received) = message {
                fds.extend(received);
            }
        }
        buf.truncate(got.bytes);
        // The list may outgrow one read; it ends with a line holding a dot.
        while !buf.ends_with(b".\n") {
            let mut more = [0u8; 4096];
            let n = (&stream)
                .read(&mut more)
                .map_err(io("receive the listener list"))?;
            if n == 0 {
                return Err(HandoverError::Message("cut short".into()));
            }
            buf.extend_from_slice(more.get(..n).unwrap_or_default());
        }
        let text =
            String::from_utf8(buf).map_err(|_| HandoverError::Message("not UTF-8".into()))?;
        let mut fds = fds.into_iter();
        let mut by_name = HashMap::new();
        for line in text.lines().take_while(|l| *l != ".") {
            let mut parts = line.split(' ');
            let (Some(name), Some(addr), Some(n), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return Err(HandoverError::Message(line.to_owned()));
            };
            let addr: SocketAddr = addr
                .parse()
                .map_err(|_| HandoverError::Message(line.to_owned()))?;
            let n: usize = n
                .parse()
                .map_err(|_| HandoverError::Message(line.to_owned()))?;
            let sockets = fds
                .by_ref()
                .take(n)
                .map(Socket::from_fd)
                .collect::<Result<Vec<_>, _>>()
                .map_err(io("read a received socket's type"))?;
            if sockets.len() != n {
                return Err(HandoverError::Message("fewer sockets than listed".into()));
            }
            by_name.insert(name.to_owned(), (addr, sockets));
        }
        Ok(Some(Self { by_name, stream }))
    }

    /// The sockets of listener `name` if it was bound to `addr` (or to a port-0
    /// address now resolved): a listener whose address changed binds anew.
    pub fn take(&mut self, name: &str, addr: SocketAddr) -> Option<(SocketAddr, Vec<Socket>)> {
        let (bound, _) = self.by_name.get(name)?;
        let same = *bound == addr || (addr.port() == 0 && bound.ip() == addr.ip());
        if !same {
            return None;
        }
        self.by_name.remove(name)
    }

    /// Every entry whose name starts with `prefix`: `(name, address, sockets)`.
    pub fn take_prefixed(&mut self, prefix: &str) -> Vec<(String, SocketAddr, Vec<Socket>)> {
        let names: Vec<String> = self
            .by_name
            .keys()
            .filter(|n| n.starts_with(prefix))
            .cloned()
            .collect();
        names
            .into_iter()
            .filter_map(|n| self.by_name.remove(&n).map(|(a, s)| (n, a, s)))
            .collect()
    }

    /// Tells the old process this one serves: it stops accepting and winds down.
    pub fn ready(self) -> Result<(), HandoverError> {
        (&self.stream)
            .write_all(b"ready\n")
            .map_err(io("tell the old process"))
    }
}

/// A new directory (mode 0700) for the upgrade socket, under the temp dir.
fn private_dir() -> std::io::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let nonce = crate::clock::now_ns() ^ u64::from(std::process::id()).rotate_left(32);
    let dir = std::env::temp_dir().join(format!(
        "fulcrum-upgrade-{}-{nonce:016x}",
        std::process::id()
    ));
    std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
    Ok(dir)
}

/// Whether the peer of `stream` is the process `pid` (SO_PEERCRED).
fn is_peer(stream: &UnixStream, pid: u32) -> bool {
    rustix::net::sockopt::socket_peercred(stream)
        .is_ok_and(|cred| u32::try_from(cred.pid.as_raw_nonzero().get()).ok() == Some(pid))
}

/// Removes a directory and what is in it when dropped.
struct Remove(PathBuf);

impl Drop for Remove {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Asks the process `pid` to upgrade itself (SIGUSR2): `fulcrum upgrade --pid`.
pub fn signal(pid: i32) -> std::io::Result<()> {
    let pid = rustix::process::Pid::from_raw(pid)
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "pid must be > 0"))?;
    rustix::process::kill_process(pid, rustix::process::Signal::USR2).map_err(Into::into)
}
