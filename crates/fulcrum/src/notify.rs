//! systemd's readiness protocol (`Type=notify`): a few lines on the datagram socket
//! named by `NOTIFY_SOCKET` (no crate needed). Without that variable, nothing is
//! sent. See sd_notify(3).

use std::os::unix::net::UnixDatagram;

/// Sends one notification; a failure is logged, never fatal (the service manager
/// decides what a missing one means).
fn send(message: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let result = UnixDatagram::unbound().and_then(|s| {
        let bytes = path.as_encoded_bytes();
        match bytes.strip_prefix(b"@") {
            // An abstract socket: its name follows the '@'.
            Some(name) => {
                use std::os::linux::net::SocketAddrExt;
                let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
                s.send_to_addr(message.as_bytes(), &addr)
            }
            None => s.send_to(message.as_bytes(), &path),
        }
    });
    if let Err(error) = result {
        tracing::warn!(%error, message, "systemd notification failed");
    }
}

/// The process serves (after start, or after a reload).
pub fn ready() {
    send("READY=1");
}

/// A process started by a binary upgrade serves in place of the old one: it is the
/// service's main process from now on (the unit needs `NotifyAccess=all`).
pub fn took_over() {
    send(&format!("MAINPID={}\nREADY=1", std::process::id()));
}

/// A reload begins; `ready` follows when it is over, applied or refused.
pub fn reloading() {
    let usec = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    let usec = u64::try_from(usec.tv_sec).unwrap_or(0) * 1_000_000
        + u64::try_from(usec.tv_nsec).unwrap_or(0) / 1_000;
    send(&format!("RELOADING=1\nMONOTONIC_USEC={usec}"));
}

/// The service is stopping (not sent by a process that handed over to another).
pub fn stopping() {
    send("STOPPING=1");
}
