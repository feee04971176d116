//! The Redis that fleet limiters share. One thread with its own runtime holds the
//! connections, so a slow or dead Redis never stalls a worker: a worker sends a
//! lease request and waits at most `timeout` for the answer. A connection that
//! fails is dropped and made again by the next request, so a Redis that comes back
//! is used again without a reload.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fulcrum_core::config::RedisConfig;
use fulcrum_core::limit::Gcra;
use redis::aio::MultiplexedConnection;
use redis::AsyncConnectionConfig;
use sha1::{Digest, Sha1};
use tokio::sync::{mpsc, oneshot, Mutex};

/// The lease script: GCRA over the key's TAT in microseconds, atomically. It gives
/// back `unused` tokens first, then takes as many of `want` as fit. Every key it
/// touches is in KEYS (Dragonfly and Redis Cluster refuse others), it reads the
/// server's clock so instances need no agreement on time, and it uses nothing
/// outside Lua 5.1 ∩ 5.4 (servers on a newer Lua have no `table.maxn`).
const SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = interval * tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local unused = tonumber(ARGV[4])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
if unused > 0 then
  tat = tat - unused * interval
  if tat < now then tat = now end
end
local free = math.floor((tolerance - (tat - now)) / interval)
if free < 0 then free = 0 end
local n = want
if free < n then n = free end
local retry = 0
if n == 0 then retry = tat + interval - tolerance - now end
tat = tat + n * interval
if tat > now then
  redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', math.floor((tat - now) / 1000) + 1000)
end
return {n, retry}
";

/// Why a lease could not be had.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No answer within `timeout`.
    #[error("no answer from redis within {0:?}")]
    Timeout(Duration),
    /// The request queue is full (Redis is far behind).
    #[error("redis request queue full")]
    Busy,
    /// Redis answered with an error, or the connection failed.
    #[error("redis: {0}")]
    Redis(String),
}

/// Counters of the store, for metrics.
#[derive(Debug, Default)]
pub struct StoreStats {
    /// Lease requests answered.
    pub calls: AtomicU64,
    /// Requests that failed (error, timeout, full queue).
    pub errors: AtomicU64,
    /// Sum of answered requests' round trips, in microseconds.
    pub latency_us: AtomicU64,
}

struct Job {
    key: String,
    gcra: Gcra,
    want: u32,
    unused: u32,
    reply: oneshot::Sender<Result<(u32, u64), StoreError>>,
}

/// The shared Redis: a queue to its thread.
pub struct Store {
    tx: mpsc::Sender<Job>,
    timeout: Duration,
    /// What it was started with, so a reload keeps it when unchanged.
    pub config: RedisConfig,
    /// Calls, errors, latency.
    pub stats: Arc<StoreStats>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Starts the Redis thread for `config`; the URL is checked here, the
    /// connections are made on first use.
    pub fn start(config: &RedisConfig) -> Result<Arc<Self>, String> {
        let client = redis::Client::open(config.url.expose()).map_err(|e| e.to_string())?;
        let (tx, rx) = mpsc::channel(4096);
        let stats = Arc::new(StoreStats::default());
        let timeout = config.timeout.get();
        let conns = config.pool_size.max(1);
        let thread_stats = stats.clone();
        std::thread::Builder::new()
            .name("fulcrum-redis".into())
            .spawn(move || serve(client, rx, conns, timeout, thread_stats))
            .map_err(|e| format!("cannot start the redis thread: {e}"))?;
        Ok(Arc::new(Self {
            tx,
            timeout,
            config: config.clone(),
            stats,
        }))
    }

    /// Asks for up to `want` tokens of `key`, giving back `unused`: the tokens
    /// granted (0 when refused) and, when refused, nanoseconds until one fits.
    pub async fn lease(
        &self,
        key: String,
        gcra: Gcra,
        want: u32,
        unused: u32,
    ) -> Result<(u32, u64), StoreError> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            key,
            gcra,
            want,
            unused,
            reply,
        };
        let result = match self.tx.try_send(job) {
            Err(_) => Err(StoreError::Busy),
            Ok(()) => match tokio::time::timeout(self.timeout, answer).await {
                Err(_) => Err(StoreError::Timeout(self.timeout)),
                Ok(Err(_)) => Err(StoreError::Redis("the redis thread stopped".into())),
                Ok(Ok(r)) => r,
            },
        };
        if result.is_err() {
            self.stats.errors.fetch_add(1, Ordering::Relaxed);
        }
        result
    }
}

/// The thread: one task per request over `conns` pipelined connections.
fn serve(
    client: redis::Client,
    mut rx: mpsc::Receiver<Job>,
    conns: usize,
    timeout: Duration,
    stats: Arc<StoreStats>,
) {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        tracing::error!("cannot start the redis runtime: fleet limits fail as configured");
        return;
    };
    let sha: String = Sha1::digest(SCRIPT.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let sha: Arc<str> = sha.into();
    let slots: Vec<Arc<Mutex<Option<MultiplexedConnection>>>> =
        (0..conns).map(|_| Arc::new(Mutex::new(None))).collect();
    // Connecting may take longer than one answer: a fresh TCP or TLS handshake.
    let cfg = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(timeout.max(Duration::from_secs(1))))
        .set_response_timeout(Some(timeout));
    let client = Arc::new(client);
    rt.block_on(async move {
        let mut next = 0usize;
        while let Some(job) = rx.recv().await {
            let slot = slots[next % slots.len()].clone();
            next = next.wrapping_add(1);
            let (client, cfg, sha, stats) =
                (client.clone(), cfg.clone(), sha.clone(), stats.clone());
            tokio::spawn(async move {
                let started = Instant::now();
                let result = call(&client, &cfg, &slot, &sha, &job).await;
                if result.is_ok() {
                    stats.calls.fetch_add(1, Ordering::Relaxed);
                    let us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                    stats.latency_us.fetch_add(us, Ordering::Relaxed);
                }
                let _ = job.reply.send(result);
            });
        }
    });
}

/// One lease request: EVALSHA, and EVAL when the server does not have the script
/// yet (never `SCRIPT LOAD`, which proxies in front of Redis often refuse).
async fn call(
    client: &redis::Client,
    cfg: &AsyncConnectionConfig,
    slot: &Mutex<Option<MultiplexedConnection>>,
    sha: &str,
    job: &Job,
) -> Result<(u32, u64), StoreError> {
    let conn = {
        let mut held = slot.lock().await;
        match &*held {
            Some(c) => c.clone(),
            None => {
                let c = client
                    .get_multiplexed_async_connection_with_config(cfg)
                    .await
                    .map_err(|e| StoreError::Redis(e.to_string()))?;
                *held = Some(c.clone());
                c
            }
        }
    };
    let interval_us = (job.gcra.interval / 1000).max(1);
    let args = |cmd: &mut redis::Cmd| {
        cmd.arg(1)
            .arg(&job.key)
            .arg(interval_us)
            .arg(job.gcra.burst)
            .arg(job.want)
            .arg(job.unused);
    };
    let mut evalsha = redis::cmd("EVALSHA");
    evalsha.arg(sha);
    args(&mut evalsha);
    let mut c = conn.clone();
    let answer: Result<(i64, i64), redis::RedisError> = match evalsha.query_async(&mut c).await {
        Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
            let mut eval = redis::cmd("EVAL");
            eval.arg(SCRIPT);
            args(&mut eval);
            eval.query_async(&mut c).await
        }
        other => other,
    };
    match answer {
        Ok((n, retry_us)) => Ok((
            u32::try_from(n.max(0)).unwrap_or(u32::MAX),
            u64::try_from(retry_us.max(0))
                .unwrap_or(0)
                .saturating_mul(1000),
        )),
        Err(e) => {
            // A server's refusal leaves the connection good; anything else drops it.
            if matches!(e.kind(), redis::ErrorKind::Server(_)) {
                tracing::debug!("redis refused the lease script: {e}");
            } else {
                *slot.lock().await = None;
            }
            Err(StoreError::Redis(e.to_string()))
        }
    }
}
