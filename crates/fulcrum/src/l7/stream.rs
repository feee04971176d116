//! An upgraded HTTP/1.1 connection (a WebSocket) after its `101`: the backend socket
//! and what the request held (in-flight lease, request and connection slots, the
//! backend's open-stream count), handed up out of the request's exchange so that
//! the hours of splicing that follow run in a future of a few hundred bytes rather
//! than inside the exchange's (several KB, measured 6.4 KB in a release build).

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::access_log::{Entry, TlsInfo};
use crate::http::Upgrade;
use crate::io::splice::Ended;
use crate::io::Conn;
use crate::state::{Listener, Member, PoolState, Snapshot};
use crate::upstream::{ConnSlot, Lease, RequestSlot};
use crate::worker::Worker;

/// A switched connection's backend side, waiting to be spliced to its client.
pub struct Stream {
    /// The backend socket.
    pub up: Conn,
    /// Counts the request in flight on its backend (least connections, drains).
    pub lease: Lease,
    /// The pool's `max_connections` slot, when it has a limit.
    pub slot: Option<ConnSlot>,
    /// The pool's `max_requests` slot.
    pub admitted: Option<RequestSlot>,
    /// The backend, counted as holding one more open stream until this drops.
    pub member: Option<OpenStream>,
    /// Where the stream's duration is observed.
    pub pool: Arc<PoolState>,
    /// The route's stream timeouts.
    pub idle: Duration,
    /// The route's `max_stream_duration`.
    pub max: Option<Duration>,
    /// When the stream opened.
    pub opened: Instant,
    /// The request's access-log fields, owned: the request's buffers are gone.
    pub log: Logged,
}

impl Stream {
    /// Builds the stream of an upgrade that `upgrade` allowed, on `up`.
    pub fn new(
        up: Conn,
        lease: Lease,
        slot: Option<ConnSlot>,
        member: Option<&Arc<Member>>,
        pool: &Arc<PoolState>,
        upgrade: Upgrade<'_>,
    ) -> Self {
        Self {
            up,
            lease,
            slot,
            admitted: None,
            member: member.map(OpenStream::new),
            pool: pool.clone(),
            idle: upgrade.idle,
            max: upgrade.max,
            opened: Instant::now(),
            log: Logged::default(),
        }
    }

    /// Splices `io` (the client) and the backend until the stream ends, then counts
    /// and logs the request as its exchange would have.
    pub async fn run(self, w: &Worker, snap: &Snapshot, l: &Listener, io: &Conn) {
        let splice = crate::io::splice::splice_conn(io, &self.up, self.idle);
        let done = match self.max {
            Some(max) => tokio::time::timeout(max, splice).await.ok(),
            None => Some(splice.await),
        };
        self.pool.streams.observe(self.opened.elapsed());
        let member = self.member.as_ref().map(|m| &*m.0);
        let mut e = self.log.entry(snap, l, member);
        match done {
            Some(done) => {
                e.bytes_in += done.forward;
                e.bytes_out += done.backward;
                e.error = match done.ended {
                    Ended::Closed => None,
                    Ended::Idle => Some("stream idle timeout".into()),
                    Ended::First(err) => Some(format!("client: {err}")),
                    Ended::Second(err) => Some(format!("backend: {err}")),
                };
            }
            None => e.error = Some("max_stream_duration".into()),
        }
        crate::access_log::record(&e);
        if w.log.enabled() {
            w.log.write(&e);
        }
    }
}

/// Counts one open stream on a backend until dropped; owns its backend so it can
/// outlive the request that opened it.
pub struct OpenStream(Arc<Member>);

impl OpenStream {
    fn new(m: &Arc<Member>) -> Self {
        m.stats.streams_open.fetch_add(1, Ordering::Relaxed);
        Self(m.clone())
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.stats.streams_open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The access-log fields of a request whose stream outlives it, with the text the
/// request's head held copied out.
#[derive(Default)]
pub struct Logged {
    client: Option<SocketAddr>,
    proto: &'static str,
    method: Box<str>,
    host: Box<str>,
    path: Box<str>,
    status: u16,
    route: Option<usize>,
    backend: Option<SocketAddr>,
    attempts: u32,
    bytes_in: u64,
    bytes_out: u64,
    upstream: Option<Duration>,
    connect: Option<Duration>,
    error: Option<String>,
    started: Option<Instant>,
    user_agent: Option<Box<[u8]>>,
    referer: Option<Box<[u8]>>,
    request_id: Box<str>,
    trace_id: Box<str>,
    tls: Option<(&'static str, &'static str, Option<Box<str>>)>,
}

impl Logged {
    /// Copies `e` (a request that began at `started`).
    pub fn new(e: &Entry<'_>, started: Instant) -> Self {
        Self {
            client: e.client,
            proto: if e.proto == "HTTP/1.0" {
                "HTTP/1.0"
            } else {
                "HTTP/1.1"
            },
            method: e.method.into(),
            host: e.host.into(),
            path: e.path.into(),
            status: e.status,
            route: e.route,
            backend: e.backend,
            attempts: e.attempts,
            bytes_in: e.bytes_in,
            bytes_out: e.bytes_out,
            upstream: e.upstream,
            connect: e.connect,
            error: e.error.clone(),
            started: Some(started),
            user_agent: e.user_agent.map(Into::into),
            referer: e.referer.map(Into::into),
            request_id: e.request_id.into(),
            trace_id: e.trace_id.into(),
            tls: e.tls.map(|t| (t.version, t.cipher, t.sni.map(Into::into))),
        }
    }

    /// The entry, with what it borrowed from the configuration found again in `snap`.
    fn entry<'a>(
        &'a self,
        snap: &'a Snapshot,
        l: &'a Listener,
        member: Option<&'a Member>,
    ) -> Entry<'a> {
        Entry {
            listener: &l.name,
            client: self.client,
            proto: self.proto,
            method: &self.method,
            host: &self.host,
            path: &self.path,
            status: self.status,
            route: self.route,
            pool: member.map_or("", |m| &m.pool),
            backend: self.backend,
            member: member.map(|m| &m.stats),
            listener_traffic: Some(&l.traffic),
            route_traffic: self.route.and_then(|r| snap.routes.get(r)).map(|t| &**t),
            attempts: self.attempts,
            bytes_in: self.bytes_in,
            bytes_out: self.bytes_out,
            duration: self.started.map(|s| s.elapsed()).unwrap_or_default(),
            upstream: self.upstream,
            connect: self.connect,
            error: self.error.clone(),
            route_name: self.route.and_then(|r| super::forward::route_name(snap, r)),
            user_agent: self.user_agent.as_deref(),
            referer: self.referer.as_deref(),
            request_id: &self.request_id,
            trace_id: &self.trace_id,
            tls: self.tls.as_ref().map(|(version, cipher, sni)| TlsInfo {
                version,
                cipher,
                sni: sni.as_deref(),
            }),
            tries: None,
            span: None,
        }
    }
}
