//! The access log's writer thread: takes whole buffers from the workers through a
//! bounded queue and writes each with one `write` (a file opened for appending, so
//! two processes during a binary upgrade never split each other's lines).

use std::fs::File;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Where lines go.
enum Out {
    Stdout,
    Stderr,
    File(File),
}

impl Out {
    fn open(path: &str) -> std::io::Result<Self> {
        Ok(match path {
            "stdout" => Self::Stdout,
            "stderr" => Self::Stderr,
            path => Self::File(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            ),
        })
    }

    fn write(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match self {
            Self::Stdout => std::io::stdout().lock().write_all(buf),
            Self::Stderr => std::io::stderr().lock().write_all(buf),
            Self::File(f) => f.write_all(buf),
        }
    }
}

enum Msg {
    Lines(Vec<u8>, u64),
    Close,
}

/// What the writer and the workers share.
#[derive(Debug, Default)]
struct Control {
    /// The path to (re)open; `None` writes nothing.
    path: Mutex<Option<String>>,
    reopen: AtomicBool,
    dropped: AtomicU64,
}

/// The handle to the writer thread.
#[derive(Debug)]
pub(super) struct Writer {
    tx: SyncSender<Msg>,
    control: Arc<Control>,
    done: Mutex<Option<Receiver<()>>>,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Lines(b, n) => write!(f, "Lines({} bytes, {n})", b.len()),
            Self::Close => f.write_str("Close"),
        }
    }
}

impl Writer {
    /// Opens `path` (an error here stops the start) and starts the thread, with
    /// room for `queue` buffers.
    pub(super) fn start(path: Option<&str>, queue: usize) -> std::io::Result<Self> {
        let out = path.map(Out::open).transpose()?;
        let control = Arc::new(Control {
            path: Mutex::new(path.map(str::to_owned)),
            ..Control::default()
        });
        let (tx, rx) = mpsc::sync_channel(queue);
        let (done_tx, done) = mpsc::channel();
        let c = control.clone();
        std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || {
                run(out, &rx, &c);
                let _ = done_tx.send(());
            })?;
        Ok(Self {
            tx,
            control,
            done: Mutex::new(Some(done)),
        })
    }

    /// Queues a buffer of `lines` lines; drops and counts them when the queue is full.
    pub(super) fn send(&self, buf: Vec<u8>, lines: u64) {
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
            self.tx.try_send(Msg::Lines(buf, lines))
        {
            self.control.dropped.fetch_add(lines, Ordering::Relaxed);
        }
    }

    pub(super) fn dropped(&self) -> u64 {
        self.control.dropped.load(Ordering::Relaxed)
    }

    pub(super) fn reopen(&self) {
        self.control.reopen.store(true, Ordering::Release);
    }

    /// Opens `path` instead, if it is another one.
    pub(super) fn set_path(&self, path: Option<&str>) {
        let mut current = self.control.path.lock().unwrap_or_else(|e| e.into_inner());
        if current.as_deref() != path {
            *current = path.map(str::to_owned);
            self.reopen();
        }
    }

    pub(super) fn close(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        let mut msg = Msg::Close;
        loop {
            match self.tx.try_send(msg) {
                Ok(()) => break,
                Err(TrySendError::Full(m)) if Instant::now() < deadline => {
                    msg = m;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(_) => return,
            }
        }
        let done = self.done.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(done) = done {
            let _ = done.recv_timeout(deadline.saturating_duration_since(Instant::now()));
        }
    }
}

/// How often the thread looks for a reopen while no lines come.
const IDLE_CHECK: Duration = Duration::from_millis(100);

fn run(mut out: Option<Out>, rx: &Receiver<Msg>, c: &Control) {
    let mut failing = false;
    loop {
        let msg = rx.recv_timeout(IDLE_CHECK);
        if c.reopen.swap(false, Ordering::AcqRel) {
            let path = c.path.lock().unwrap_or_else(|e| e.into_inner()).clone();
            match path.as_deref().map(Out::open).transpose() {
                Ok(new) => {
                    out = new;
                    failing = false;
                    tracing::info!(path = path.as_deref().unwrap_or("-"), "access log reopened");
                }
                Err(error) => tracing::error!(
                    path = path.as_deref().unwrap_or("-"),
                    %error,
                    "access log: cannot reopen; keeping the old file"
                ),
            }
        }
        match msg {
            Ok(Msg::Lines(buf, lines)) => {
                let Some(o) = out.as_mut() else { continue };
                if let Err(error) = o.write(&buf) {
                    c.dropped.fetch_add(lines, Ordering::Relaxed);
                    if !failing {
                        tracing::error!(%error, "access log: write failed; lines dropped");
                    }
                    failing = true;
                } else {
                    failing = false;
                }
            }
            Ok(Msg::Close) | Err(RecvTimeoutError::Disconnected) => return,
            Err(RecvTimeoutError::Timeout) => {}
        }
    }
}
