//! systemd's `Type=notify` protocol, received on a real datagram socket named by
//! `NOTIFY_SOCKET`, in order across start, reload, binary upgrade and stop.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use crate::support::*;

/// The notify socket: each datagram as text, with the sender's pid.
struct Notifications {
    socket: UnixDatagram,
    _dir: TempDir,
    path: std::path::PathBuf,
}

impl Notifications {
    fn bind() -> Self {
        let dir = TempDir::new();
        let path = dir.path("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        socket.set_read_timeout(Some(TIMEOUT)).unwrap();
        rustix::net::sockopt::set_socket_passcred(&socket, true).unwrap();
        Self {
            socket,
            _dir: dir,
            path,
        }
    }

    /// The next datagram and its sender's pid (SCM_CREDENTIALS, as systemd reads it).
    fn next(&self) -> (String, u32) {
        use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
        let mut buf = [0u8; 4096];
        let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmCredentials(1))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let msg = rustix::net::recvmsg(&self.socket, &mut iov, &mut control, RecvFlags::empty())
            .expect("a notification in time");
        let mut pid = 0;
        for m in control.drain() {
            if let RecvAncillaryMessage::ScmCredentials(c) = m {
                pid = c.pid.as_raw_nonzero().get() as u32;
            }
        }
        let n = msg.bytes;
        (String::from_utf8_lossy(&buf[..n]).into_owned(), pid)
    }
}

/// Kills the process an upgrade started (not the test's child) if the test fails.
struct Reap(u32);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .arg("-9")
            .arg(self.0.to_string())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_reloading_mainpid_and_stopping_arrive_in_order() {
    within(async {
        let b = Backend::start("a").await;
        let n = Notifications::bind();
        let config = format!(
            "workers = 1\n[listeners.public]\naddress = \"127.0.0.1:0\"\n\n[[routes]]\npool = \"p\"\n\n[pools.p]\nbackends = [{}]\n",
            quoted(&b)
        );
        let mut f = Fulcrum::start_env(&config, &[("NOTIFY_SOCKET", n.path.as_os_str())]);
        let first = f.child.id();
        assert_eq!(n.next(), ("READY=1".to_owned(), first));
        // A reload: RELOADING=1 with the monotonic clock, then READY=1; a refused one too.
        assert!(f.reload(&config).contains("config reloaded"));
        let (reloading, pid) = n.next();
        assert_eq!(pid, first);
        let usec: u64 = reloading
            .strip_prefix("RELOADING=1\nMONOTONIC_USEC=")
            .unwrap_or_else(|| panic!("{reloading:?}"))
            .parse()
            .unwrap();
        let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
        assert!(usec <= now.tv_sec as u64 * 1_000_000 + now.tv_nsec as u64 / 1000);
        assert_eq!(n.next(), ("READY=1".to_owned(), first));
        assert!(f.reload("listeners = 5").contains("reload failed"));
        assert!(n.next().0.starts_with("RELOADING=1\n"));
        assert_eq!(n.next(), ("READY=1".to_owned(), first));
        // The file is good again (the upgrade reads it).
        assert!(f.reload(&config).contains("config reloaded"));
        assert!(n.next().0.starts_with("RELOADING=1\n"));
        assert_eq!(n.next(), ("READY=1".to_owned(), first));
        // A binary upgrade: the new process names itself the main one and is ready;
        // the old one, winding down, says nothing more (STOPPING=1 from it would
        // stop the service).
        let status = std::process::Command::new(bin())
            .args(["upgrade", "--pid", &first.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let (msg, new) = n.next();
        let _reap = Reap(new);
        assert_ne!(new, first);
        assert_eq!(msg, format!("MAINPID={new}\nREADY=1"));
        assert!(f.wait_exit().success());
        // Stop the new one: STOPPING=1, from it.
        let kill = std::process::Command::new("kill").arg("-TERM").arg(new.to_string()).status().unwrap();
        assert!(kill.success());
        assert_eq!(n.next(), ("STOPPING=1".to_owned(), new));
        // Nothing from the old process came in between.
        n.socket.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        assert!(n.socket.recv(&mut [0u8; 64]).is_err(), "an unexpected notification");
    })
    .await;
}
