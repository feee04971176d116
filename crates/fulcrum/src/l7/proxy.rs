//! The fixed pipeline shared by HTTP/1.1 and HTTP/2 clients: target → route → pool →
//! backend, plus the header conversions between the two versions.

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fulcrum_core::balance::{self, Backend, BackendId, PickCtx, Pin, PoolLoad};
use fulcrum_core::config::RetryOn;
use fulcrum_core::forward::{self, Forwarded, Hop};
use fulcrum_core::health::{may_eject, Outcome};
use fulcrum_core::http1::Framing;
use fulcrum_core::jwt::RequestTokens;
use fulcrum_core::retry;
use fulcrum_core::route::{Headers, Request, Route};
use http::header::{HeaderMap, HeaderName, HeaderValue};

use super::error::{ProxyError, Side};
use crate::access_log::Entry;
use crate::clock;
use crate::io::Conn;
use crate::state::{Listener, Member, Pool, PoolState, Snapshot};
use crate::stats::ErrorKind;
use crate::upstream;
use crate::worker::Worker;

pub use fulcrum_core::forward::Target;

/// Splits a request target (see [`fulcrum_core::forward::parse_target`]).
pub fn target<'a>(raw: &'a [u8], host: Option<&'a [u8]>) -> Result<Target<'a>, ProxyError> {
    fulcrum_core::forward::parse_target(raw, host).map_err(|e| ProxyError::BadRequest(e.reason()))
}

/// Finds the route and pool for a request; `headers` serve the `header` and
/// `cookie` predicates.
pub fn route<'s>(
    snap: &'s Snapshot,
    l: &'s Listener,
    method: &str,
    t: &Target<'_>,
    headers: &dyn Headers,
    tokens: &RequestTokens,
) -> Result<(&'s Route, &'s Pool), ProxyError> {
    let req = Request {
        method,
        host: Some(t.host).filter(|h| !h.is_empty()),
        path: t.path,
        headers,
    };
    let route = l
        .routes
        .find_with_tokens(&req, tokens)
        .ok_or(ProxyError::NoRoute)?;
    if !t.allowed_by(route.has_host) {
        return Err(ProxyError::NoRoute);
    }
    let pool = snap.pools.get(route.pool).ok_or(ProxyError::NoRoute)?;
    Ok((route, pool))
}

/// The route's `stream_idle_timeout` (an hour when the route is gone from the config).
pub fn stream_idle(snap: &Snapshot, route: &Route) -> Duration {
    snap.config
        .routes
        .get(route.index)
        .map_or(Duration::from_secs(3600), |r| r.stream_idle_timeout.get())
}

/// How long a response body may pass no byte: `upstream_timeout`, except for an
/// event stream (`text/event-stream`), which is alive while quiet and gets the
/// route's `stream_idle_timeout`.
pub fn body_idle<'a>(
    pool: &Pool,
    stream_idle: Duration,
    mut fields: impl Iterator<Item = (&'a [u8], &'a [u8])>,
) -> Duration {
    let event_stream = fields.any(|(n, v)| {
        n.eq_ignore_ascii_case(b"content-type")
            && v.get(..17)
                .is_some_and(|t| t.eq_ignore_ascii_case(b"text/event-stream"))
    });
    if event_stream {
        stream_idle
    } else {
        pool.upstream_timeout
    }
}

/// Wall-clock unix seconds, for cookie expiries and JWT `exp`/`nbf`.
pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A request's sticky cookie, read once when its pool is sticky.
#[derive(Clone, Copy, Debug, Default)]
pub struct Pinned {
    /// The backend a valid, unexpired cookie names.
    pin: Option<Pin>,
    /// Unix seconds when the cookie was read; 0 when the pool is not sticky.
    now_unix: u64,
}

impl Pinned {
    /// Reads the pool's cookie among `cookies` (the values of every `cookie` field:
    /// HTTP/2 may split them). Nothing is read, and no clock is consulted, when the
    /// pool is not sticky.
    pub fn read<'a>(pool: &Pool, cookies: impl Iterator<Item = &'a [u8]>) -> Self {
        let Some(sticky) = &pool.sticky else {
            return Self::default();
        };
        // Wall-clock seconds: cookie expiries are compared across the fleet.
        let now_unix = now_unix();
        let pin = cookies
            .filter_map(|header| sticky.codec.pin_in_header(&sticky.cookie, header, now_unix))
            .next();
        Self { pin, now_unix }
    }
}

/// An HTTP/2 request's fields as routing reads them (`:authority` and the other
/// pseudo-headers are not fields).
pub struct H2Headers<'a>(pub &'a HeaderMap);

impl Headers for H2Headers<'_> {
    fn any(&self, name: &str, each: &mut dyn FnMut(&[u8]) -> bool) -> bool {
        self.0.get_all(name).iter().any(|v| each(v.as_bytes()))
    }
}

/// The backends one request has tried, and whether it may try another.
///
/// Without a pool `retries` policy, only a failed connect (nothing was sent) moves
/// on, up to `connect_attempts` tries. With one, `on` and `attempts` govern every
/// retry, each retry takes from the pool's budget and waits a jittered backoff,
/// and a failure after the request was sent is retried only when the request can
/// be replayed (an idempotent method without a body).
pub struct Attempts<'p> {
    pool: &'p Pool,
    hash: Option<u64>,
    pinned: Pinned,
    tried: Vec<BackendId>,
    scratch: Vec<BackendId>,
    last: Option<ProxyError>,
    /// The request can be sent again after a failure that followed sending it.
    replayable: bool,
    /// Why the last try failed, when it may be retried.
    why: Option<RetryOn>,
    /// A status retry already cleared the policy and the budget.
    approved: Cell<bool>,
}

impl<'p> Attempts<'p> {
    /// No backend tried yet; `hash` is the request's key for consistent hashing,
    /// `pinned` its sticky cookie, `replayable` whether it may be sent twice.
    pub fn new(pool: &'p Pool, hash: Option<u64>, pinned: Pinned, replayable: bool) -> Self {
        if pool.retries.is_some() {
            pool.state.budget().record_request(clock::now());
        }
        Self {
            pool,
            hash,
            pinned,
            tried: Vec::new(),
            scratch: Vec::new(),
            last: None,
            replayable,
            why: None,
            approved: Cell::new(false),
        }
    }

    /// The next backend to try (recorded in the access log entry), or `None` when
    /// the request may not be tried again or the pool has no backend left. A sticky
    /// cookie's backend comes first while it is available and untried; then the
    /// balancer picks, with slow-start ramps applied unless the pool hashes.
    pub async fn next<'e>(&mut self, w: &Worker, e: &mut Entry<'e>) -> Option<&'p Backend>
    where
        'p: 'e,
    {
        if !self.tried.is_empty() && !self.may_go_on(w).await {
            return None;
        }
        let pinned = self.pinned.pin.map(|p| p.backend).filter(|id| {
            !self.tried.contains(id)
                && self
                    .pool
                    .backends
                    .get(id.index())
                    .is_some_and(|b| b.state.is_available())
        });
        let id = match pinned {
            Some(id) => id,
            None => self.pick(w, true).or_else(|| {
                // With a retry policy, a pool with nothing untried left may retry a
                // backend already tried (a single-backend pool after a reset).
                self.pool.retries.as_ref().and_then(|_| self.pick(w, false))
            })?,
        };
        let backend = self.pool.backends.get(id.index())?;
        self.tried.push(id);
        self.why = None;
        e.backend = Some(backend.addr);
        e.member = self.pool.members.get(id.index()).map(|m| &m.stats);
        e.attempts += 1;
        Some(backend)
    }

    fn pick(&mut self, w: &Worker, exclude_tried: bool) -> Option<BackendId> {
        let ctx = PickCtx {
            hash: self.hash,
            exclude: if exclude_tried { &self.tried } else { &[] },
            entropy: w.entropy(),
            now_ns: w.now_ns(),
            // Pool-wide counters: bounded loads in O(1). `requests` counts this
            // request already (admitted before the pick).
            load: Some(PoolLoad {
                in_flight: u64::from(self.pool.state.requests.load(Ordering::Relaxed))
                    .saturating_sub(1),
                eligible: u64::from(self.pool.state.available.load(Ordering::Relaxed)),
            }),
        };
        if self.pool.hash_key.is_some() {
            // Hashing keeps its affinity: slow start does not move keys around.
            return self.pool.balancer.pick(&self.pool.backends, &ctx);
        }
        balance::pick_ramped(
            self.pool.balancer.as_ref(),
            &self.pool.backends,
            &ctx,
            &mut self.scratch,
        )
    }

    /// Whether a request whose last try failed may be tried again; waits the
    /// backoff when it may.
    async fn may_go_on(&mut self, w: &Worker) -> bool {
        let Some(policy) = &self.pool.retries else {
            return retry::connect_retry(self.tried.len(), self.why, self.pool.connect_attempts);
        };
        if !self.approved.replace(false) {
            let Some(why) = self.why else { return false };
            if !policy.allows(self.tried.len(), why, self.replayable) || !self.take_budget() {
                return false;
            }
        }
        self.pool.state.retries.fetch_add(1, Ordering::Relaxed);
        let retry = u32::try_from(self.tried.len() - 1).unwrap_or(u32::MAX);
        let delay = retry::backoff(retry, policy.backoff, w.entropy());
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        true
    }

    fn take_budget(&self) -> bool {
        let ok = self.pool.state.budget().try_retry(clock::now());
        if !ok {
            self.pool
                .state
                .budget_refused
                .fetch_add(1, Ordering::Relaxed);
        }
        ok
    }

    /// Whether a response with `status` from the current try is to be dropped and
    /// the request retried: the policy lists it, tries are left, the request can be
    /// replayed and the budget allows. A `true` has taken the budget already.
    pub fn retry_status(&self, status: u16) -> bool {
        let Some(policy) = &self.pool.retries else {
            return false;
        };
        let ok = policy.allows_status(
            self.tried.len(),
            status,
            self.replayable,
            self.has_another(),
        ) && self.take_budget();
        self.approved.set(ok);
        ok
    }

    /// Whether some available backend exists to retry on.
    fn has_another(&self) -> bool {
        self.pool.backends.iter().any(|b| b.state.is_available())
    }

    /// The per-try limit on the wait for a response head.
    pub fn head_timeout(&self) -> Duration {
        let up = self.pool.upstream_timeout;
        self.pool
            .retries
            .as_ref()
            .map_or(up, |r| r.head_timeout(up))
    }

    /// The health record of the backend last returned by [`Self::next`].
    pub fn member(&self) -> Option<&'p Member> {
        self.member_arc().map(|m| &**m)
    }

    /// [`Self::member`], for a holder that outlives the request.
    pub fn member_arc(&self) -> Option<&'p std::sync::Arc<Member>> {
        let id = self.tried.last()?;
        self.pool.members.get(id.index())
    }

    /// The `Set-Cookie` value a response from the backend last returned by
    /// [`Self::next`] needs: `None` when the pool is not sticky, or the request's
    /// cookie already names that backend and is not yet due for refresh.
    pub fn set_cookie(&self) -> Option<String> {
        let sticky = self.pool.sticky.as_ref()?;
        let id = *self.tried.last()?;
        let now = self.pinned.now_unix;
        sticky
            .codec
            .needs_refresh(self.pinned.pin, id, now)
            .then(|| sticky.codec.set_cookie(&sticky.cookie, id, now))
    }

    /// Remembers why the current try failed, and counts it against the backend
    /// when the backend is to blame.
    pub fn failed(&mut self, w: &Worker, err: ProxyError) {
        self.why = match &err {
            ProxyError::Connect { .. } => Some(RetryOn::ConnectFailure),
            ProxyError::BackendTimeout => Some(RetryOn::Timeout),
            ProxyError::BadResponse(_) => Some(RetryOn::Reset),
            ProxyError::Retried(status) => Some(RetryOn::Status(*status)),
            _ => None,
        };
        if err.side() == Side::Backend && !matches!(err, ProxyError::Retried(_)) {
            if let Some(m) = self.member() {
                m.stats.error(match err {
                    ProxyError::Connect { .. } => ErrorKind::Connect,
                    ProxyError::BackendTimeout => ErrorKind::Timeout,
                    _ => ErrorKind::Reset,
                });
                outcome(w, self.pool, m, Outcome::gateway_failure());
            }
        }
        self.last = Some(err);
    }

    /// The error once nothing is left: 502 after a failed connect, 503 when nothing
    /// could be tried.
    pub fn exhausted(self) -> ProxyError {
        self.last.unwrap_or(ProxyError::NoBackend)
    }
}

/// Feeds one request outcome to a backend's passive outlier detection, ejecting it
/// (at once, for every worker) when a detector fires and the pool guard allows.
pub fn outcome(w: &Worker, pool: &Pool, m: &Member, outcome: Outcome) {
    if !m.outlier_enabled() {
        return;
    }
    let now = clock::now();
    let now_ns = clock::now_ns();
    let ejection = m.health().record(outcome, now, || {
        let ejected = pool.members.iter().filter(|o| o.is_ejected(now_ns)).count();
        let percent = pool.health.outlier.map_or(0, |o| o.max_ejection_percent);
        may_eject(ejected, pool.members.len(), percent)
    });
    if let Some(ej) = ejection {
        m.state.set_available(false);
        let until = now_ns.saturating_add(ej.until.saturating_sub(now).as_nanos() as u64);
        m.set_ejected_until(until);
        tracing::warn!(
            pool = %pool.name,
            backend = %m.key.0,
            reason = ?ej.reason,
            count = ej.count,
            seconds = ej.until.saturating_sub(now).as_secs_f64(),
            "backend ejected"
        );
        w.registry.changed.notify_one();
    }
}

/// Holds one request against a pool's `max_requests` until dropped.
pub struct RequestSlot(Arc<PoolState>);

impl Drop for RequestSlot {
    fn drop(&mut self) {
        self.0.requests.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Admits a request to `pool`, or refuses it at once past `max_requests` (scaled
/// by the pool's warm share during slow start, so a pool that returns cold from an
/// outage does not take full load in one instant).
pub fn admit(pool: &Pool) -> Result<RequestSlot, ProxyError> {
    let st = &pool.state;
    let limit = forward::admission_limit(
        pool.limits.max_requests,
        st.warm_permille.load(Ordering::Relaxed),
    );
    let before = st.requests.fetch_add(1, Ordering::Relaxed);
    let slot = RequestSlot(st.clone());
    if before >= limit {
        st.overloaded.fetch_add(1, Ordering::Relaxed);
        return Err(ProxyError::Overloaded);
    }
    Ok(slot)
}

/// Holds one upstream HTTP/1.1 connection against a pool's `max_connections`
/// until dropped; wakes one request waiting for a slot.
pub struct ConnSlot(Arc<PoolState>);

impl Drop for ConnSlot {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::Relaxed);
        self.0.freed.notify_one();
    }
}

/// Takes a connection slot of `pool` (`None` when unlimited): at once while under
/// `max_connections`; else waits in a queue of at most `max_pending` requests for
/// up to `connect_timeout`; else refuses at once (503 with `Retry-After`).
pub async fn conn_slot(pool: &Pool) -> Result<Option<ConnSlot>, ProxyError> {
    let max = pool.limits.max_connections;
    if max == u32::MAX {
        return Ok(None);
    }
    let st = &pool.state;
    if try_take(&st.connections, max) {
        return Ok(Some(ConnSlot(st.clone())));
    }
    if !try_take(&st.pending, pool.limits.max_pending) {
        st.overloaded.fetch_add(1, Ordering::Relaxed);
        return Err(ProxyError::Overloaded);
    }
    let _pending = Pending(st);
    let deadline = tokio::time::Instant::now() + pool.connect_timeout;
    loop {
        // Registered before the check, so a slot freed in between still wakes us.
        let freed = st.freed.notified();
        tokio::pin!(freed);
        freed.as_mut().enable();
        if try_take(&st.connections, max) {
            return Ok(Some(ConnSlot(st.clone())));
        }
        if tokio::time::timeout_at(deadline, freed).await.is_err() {
            st.overloaded.fetch_add(1, Ordering::Relaxed);
            return Err(ProxyError::Overloaded);
        }
    }
}

/// Counts one waiter in `max_pending` until dropped.
struct Pending<'a>(&'a PoolState);

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.0.pending.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Increments `counter` if it is below `max`.
fn try_take(counter: &std::sync::atomic::AtomicU32, max: u32) -> bool {
    counter
        .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| {
            (n < max).then_some(n + 1)
        })
        .is_ok()
}

/// The `set-cookie` field to append to an HTTP/1.1 response head, if any: an
/// iterator of zero or one field, so the head's field iterator keeps one type.
pub fn set_cookie_field(value: Option<&str>) -> std::option::IntoIter<(&[u8], &[u8])> {
    value
        .map(|v| (b"set-cookie".as_slice(), v.as_bytes()))
        .into_iter()
}

/// Adds a `set-cookie` field to an HTTP/2 response's fields, if any (appended: the
/// backend's own cookies stay).
pub fn add_set_cookie(map: &mut HeaderMap, value: Option<String>) {
    if let Some(v) = value.and_then(|v| HeaderValue::try_from(v).ok()) {
        map.append(http::header::SET_COOKIE, v);
    }
}

/// Records a backend's response head: its time for peak-EWMA balancing and the
/// access log, and its status for outlier detection.
pub fn observed(
    w: &Worker,
    pool: &Pool,
    backend: &Backend,
    member: Option<&Member>,
    status: u16,
    rtt: Duration,
    e: &mut Entry<'_>,
) {
    e.upstream = Some(rtt);
    let ns = u64::try_from(rtt.as_nanos()).unwrap_or(u64::MAX);
    backend.state.observe_latency(ns, w.now_ns());
    if let Some(m) = member {
        if status >= 500 {
            m.stats.error(ErrorKind::Status5xx);
        }
        outcome(w, pool, m, Outcome::response(status, rtt));
    }
}

/// An HTTP/1.1 connection to `backend`: an idle pooled one (`true`: reused) or a new one.
///
/// A pool that sends a PROXY header always gets a new connection, its header naming
/// `ends` (the client and the local address it reached): the header is once per
/// connection, so a connection that carried one client's header never carries
/// another client's requests, and callers do not pool it.
pub async fn h1_conn(
    w: &Worker,
    pool: &Pool,
    backend: &Backend,
    ends: Option<(SocketAddr, SocketAddr)>,
) -> Result<(Conn, bool), ProxyError> {
    let header = pool.send_proxy.map(|v| upstream::proxy_header(v, ends));
    if header.is_none() {
        if let Some(s) = w
            .h1_pool
            .take(pool.conn_key(backend.addr), pool.idle_timeout)
        {
            return Ok((s, true));
        }
    }
    let started = std::time::Instant::now();
    let header = header.as_deref().unwrap_or_default();
    let tls = pool.tls.as_deref();
    match upstream::open(backend.addr, pool.connect_timeout, header, tls).await {
        Ok(s) => {
            pool.state.connect.observe(started.elapsed());
            Ok((s, false))
        }
        Err(err) => {
            tracing::warn!(backend = %backend.addr, pool = %pool.name, error = %err, "connect failed");
            Err(ProxyError::Connect {
                addr: backend.addr,
                reason: err.to_string(),
            })
        }
    }
}

/// An h2c connection to `backend`, pooled per worker, ready for a new stream.
pub async fn h2_conn(
    w: &Rc<Worker>,
    pool: &Pool,
    backend: &Backend,
) -> Result<h2::client::SendRequest<Bytes>, ProxyError> {
    let addr = backend.addr;
    let key = pool.conn_key(addr);
    if let Some(send) = w.h2_pool.get(key) {
        match send.ready().await {
            Ok(send) => return Ok(send),
            Err(_) => w.h2_pool.remove(key),
        }
    }
    let fail = |reason: String| ProxyError::Connect { addr, reason };
    let started = std::time::Instant::now();
    let io = upstream::open(addr, pool.connect_timeout, &[], pool.tls.as_deref())
        .await
        .map_err(|e| fail(e.to_string()))?;
    pool.state.connect.observe(started.elapsed());
    let mut builder = h2::client::Builder::new();
    builder
        .initial_window_size(1 << 20)
        .initial_connection_window_size(4 << 20);
    let send = match io {
        Conn::Tcp(tcp) => spawn_h2(w, key, &builder, tcp, pool.connect_timeout).await,
        Conn::Tls(tls) => spawn_h2(w, key, &builder, *tls, pool.connect_timeout).await,
    }
    .map_err(fail)?;
    w.h2_pool.put(key, send.clone());
    send.ready().await.map_err(|e| fail(e.to_string()))
}

/// Runs an HTTP/2 client handshake over `io` and spawns its connection task.
async fn spawn_h2<T>(
    w: &Rc<Worker>,
    key: crate::state::ConnKey,
    builder: &h2::client::Builder,
    io: T,
    limit: std::time::Duration,
) -> Result<h2::client::SendRequest<Bytes>, String>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + 'static,
{
    let (send, conn) = tokio::time::timeout(limit, builder.handshake(io))
        .await
        .map_err(|_| "h2 handshake timed out".to_owned())?
        .map_err(|e| e.to_string())?;
    let worker = w.clone();
    tokio::task::spawn_local(async move {
        let _ = conn.await;
        worker.h2_pool.remove(key);
    });
    Ok(send)
}

/// Request fields for an HTTP/2 backend, by the one set of forwarding rules
/// ([`fulcrum_core::forward::request_fields`]).
pub fn h2_request_headers<'a, I>(
    fields: I,
    host: &str,
    client: SocketAddr,
    proto: &str,
    via_version: &str,
) -> HeaderMap
where
    I: Iterator<Item = (&'a [u8], &'a [u8])> + Clone,
{
    let mut map = HeaderMap::new();
    let client_ip = client.ip().to_string();
    let fwd = Forwarded {
        client_ip: &client_ip,
        proto,
        via_version,
    };
    forward::request_fields(fields, Hop::H2, host.as_bytes(), &fwd, |name, value| {
        let value = match value.earlier {
            [] => match value.last {
                [one] => HeaderValue::from_bytes(one),
                more => HeaderValue::from_bytes(&more.concat()),
            },
            _ => HeaderValue::from_bytes(&value.to_vec()),
        };
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name), value) {
            map.append(n, v);
        }
    });
    map
}

/// Response fields for an HTTP/2 client, by the same rules
/// ([`fulcrum_core::forward::response_fields`]).
pub fn h2_response_headers<'a, I>(fields: I) -> HeaderMap
where
    I: Iterator<Item = (&'a [u8], &'a [u8])> + Clone,
{
    let mut map = HeaderMap::new();
    forward::response_fields(fields, Hop::H2, |name, value| {
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
            map.append(n, v);
        }
    });
    map
}

/// Fields of an `http` map as byte pairs, for the HTTP/1.1 writers (which walk them
/// twice, and `HeaderMap`'s iterator cannot be cloned).
pub fn map_fields(map: &HeaderMap) -> Vec<(&[u8], &[u8])> {
    map.iter()
        .map(|(n, v)| (n.as_str().as_bytes(), v.as_bytes()))
        .collect()
}

/// The framing of an HTTP/2 message's body for an HTTP/1.1 peer: its content-length
/// when valid, else chunked (or nothing when the stream already ended).
pub fn h2_body_framing(map: &HeaderMap, ended: bool, chunked_ok: bool) -> Framing {
    if ended {
        return Framing::Empty;
    }
    let len = map
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    match len {
        Some(n) => Framing::Length(n),
        None if chunked_ok => Framing::Chunked,
        None => Framing::UntilClose,
    }
}

/// Whether a method carries a body by convention, so an empty one gets
/// `Content-Length: 0` (some servers answer 411 without it).
pub fn expects_body(method: &str) -> bool {
    matches!(method, "POST" | "PUT" | "PATCH")
}
