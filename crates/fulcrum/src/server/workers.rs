//! One worker thread: its current-thread runtime, its SO_REUSEPORT listeners and
//! accept loops, the idle-connection sweep, and its part of a graceful stop.

use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::watch;

use crate::listen;
use crate::listen::live::Command;
use crate::listen::socket::Socket;
use crate::worker::Worker;

/// How long idle client connections are still served once shutdown starts.
const IDLE_GRACE: Duration = Duration::from_millis(500);

pub(super) fn worker_seed(id: usize) -> u64 {
    (id as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ u64::from(std::process::id())
}

/// A worker's HTTP/3 sockets, by listener name.
pub(super) type QuicSockets = Vec<(String, crate::listen::quic_relay::QuicSocket)>;

pub(super) fn worker_main(
    id: usize,
    w: Rc<Worker>,
    (sockets, quic, commands): (
        Vec<(String, Socket)>,
        QuicSockets,
        UnboundedReceiver<Command>,
    ),
    mut stop_rx: watch::Receiver<bool>,
    deadline: Duration,
) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(error) => {
            tracing::error!(worker = id, %error, "worker runtime failed to start");
            return;
        }
    };
    let local = tokio::task::LocalSet::new();
    crate::stats::set_shard(id);
    local.block_on(&rt, async move {
        tokio::task::spawn_local(listeners(w.clone(), id, (sockets, quic), commands));
        tokio::task::spawn_local(sweep(w.clone()));
        tokio::task::spawn_local(flush_log(w.clone()));
        let _ = stop_rx.wait_for(|s| *s).await;
        w.begin_stop();
        let expire = tokio::time::sleep(deadline);
        tokio::pin!(expire);
        // Idle keep-alive connections stay served for a moment after the last busy
        // one: a client may be sending on one right now, and a close then would
        // reset its request. Each such request is answered with `Connection: close`.
        let grace = tokio::time::sleep(IDLE_GRACE.min(deadline));
        tokio::pin!(grace);
        let mut graced = false;
        while w.busy.get() > 0 || !graced {
            tokio::select! {
                () = w.idle.notified() => {}
                () = &mut grace, if !graced => graced = true,
                () = &mut expire => {
                    tracing::warn!(worker = id, busy = w.busy.get(), "shutdown deadline passed; closing");
                    break;
                }
            }
        }
        w.h1_pool.clear();
        w.h2_pool.clear();
        // After the last request of this worker: its lines reach the writer.
        w.log.flush();
    });
}

/// Hands the access log buffer to the writer every second, so a quiet worker's
/// lines are not held back.
async fn flush_log(w: Rc<Worker>) {
    let mut tick = tokio::time::interval(crate::access_log::FLUSH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        w.log.flush();
    }
}

/// Runs this worker's accept loops: those it started with, then those reloads
/// add, move or remove.
async fn listeners(
    w: Rc<Worker>,
    id: usize,
    (sockets, quic): (Vec<(String, Socket)>, QuicSockets),
    mut commands: UnboundedReceiver<Command>,
) {
    let mut loops: HashMap<String, Vec<tokio::task::JoinHandle<()>>> = HashMap::new();
    // HTTP/3 endpoints by listener name; dropping one's task stops new connections,
    // and the connections it took finish on their own tasks.
    let mut endpoints: HashMap<String, Rc<tokio::sync::Notify>> = HashMap::new();
    let start_quic = |name: String, socket| {
        let stop = Rc::new(tokio::sync::Notify::new());
        let task = listen::quic::serve(w.clone(), socket, Rc::from(&*name), stop.clone());
        tokio::task::spawn_local(task);
        (name, stop)
    };
    for (name, socket) in quic {
        let (name, task) = start_quic(name, socket);
        endpoints.insert(name, task);
    }
    let start = |loops: &mut HashMap<String, Vec<_>>, name: String, socket| {
        let task = match socket {
            Socket::Tcp(socket) => match TcpListener::from_std(socket) {
                Ok(listener) => {
                    tokio::task::spawn_local(accept_loop(w.clone(), listener, Rc::from(&*name)))
                }
                Err(error) => {
                    tracing::error!(worker = id, %error, "listener setup failed");
                    return;
                }
            },
            // Its sessions end when the task is dropped (a reload moved or
            // removed the listener).
            Socket::Udp(socket) => {
                tokio::task::spawn_local(crate::l4::udp::serve(w.clone(), socket, Rc::from(&*name)))
            }
        };
        loops.entry(name).or_default().push(task);
    };
    for (name, socket) in sockets {
        start(&mut loops, name, socket);
    }
    while let Some(command) = commands.recv().await {
        match command {
            Command::Add(name, socket) => {
                for task in loops.remove(&name).unwrap_or_default() {
                    task.abort();
                }
                start(&mut loops, name, socket);
            }
            Command::Remove(name) => {
                // Dropping the accept loop closes this worker's socket; accepted
                // connections are their own tasks and finish.
                for task in loops.remove(&name).unwrap_or_default() {
                    task.abort();
                }
            }
            Command::AddQuic(name, socket) => {
                let (name, task) = start_quic(name, socket);
                if let Some(old) = endpoints.insert(name, task) {
                    old.notify_one();
                }
            }
            Command::RemoveQuic(name) => {
                if let Some(old) = endpoints.remove(&name) {
                    old.notify_one();
                }
            }
        }
    }
}

async fn accept_loop(w: Rc<Worker>, listener: TcpListener, name: Rc<str>) {
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                // The cap and PROXY header, then HTTP or TCP as the snapshot says.
                Ok((io, peer)) => listen::accept::spawn(&w, io, peer, &name),
                Err(error) => {
                    // Out of descriptors or similar: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            () = w.stop.notified() => return,
        }
        if w.stopping.get() {
            return;
        }
    }
}

/// Closes idle upstream connections past their pool's idle timeout.
async fn sweep(w: Rc<Worker>) {
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    loop {
        tick.tick().await;
        if w.stopping.get() {
            return;
        }
        let snap = w.shared.load();
        w.h1_pool.sweep(|addr| {
            snap.pools
                .iter()
                .find(|p| p.backends.iter().any(|b| b.addr == addr))
                .map_or(Duration::ZERO, |p| p.idle_timeout)
        });
    }
}
