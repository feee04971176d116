//! The one attempt loop, for every client protocol, both HTTP legs and layer 4:
//! pick a backend (a sticky cookie's first, then the balancer with slow-start
//! ramps), take a connection slot and count the request in flight, run one try,
//! record its outcome, and retry while the pool's policy, its budget and the
//! request allow (`fulcrum_core::retry` decides; this only does the waiting).

use std::cell::Cell;
use std::sync::atomic::Ordering;
use std::time::Duration;

use fulcrum_core::balance::{self, Backend, BackendId, PickCtx, PoolLoad};
use fulcrum_core::config::RetryOn;
use fulcrum_core::retry;

use super::admission::{conn_slot, ConnSlot};
use super::lease::Lease;
use super::sticky::Pinned;
use crate::access_log::Entry;
use crate::clock;
use crate::http::{Failed, ProxyError, Side};
use crate::state::{Member, Pool};
use crate::stats::ErrorKind;
use crate::worker::Worker;

/// How one try on one backend ended.
pub enum Step<T> {
    /// It worked: the value (a response, a switched connection, a socket) goes on.
    Done(T),
    /// It failed before the client got anything. A backend's fault is counted
    /// against it and may be retried; any other ends the request.
    Failed(ProxyError),
    /// The request failed in a way no retry can mend (the client already got part
    /// of a response, or a deadline of the client's own passed).
    Fatal(Failed),
}

/// A try that worked, and what it holds until its response has been delivered.
pub struct Tried<'p, T> {
    /// What the try produced.
    pub value: T,
    /// The backend that produced it.
    pub backend: &'p Backend,
    /// The request in flight on that backend.
    pub lease: Lease,
    /// The pool's `max_connections` slot, when it has a limit and asked for one.
    pub slot: Option<ConnSlot>,
}

/// Runs `leg` on backends picked one after another until a try works, the policy
/// stops retrying, or no backend is left (503 when none could be tried, the last
/// failure otherwise). `slots`: each try holds one of the pool's connection slots
/// (an HTTP/1.1 or layer-4 connection; HTTP/2 multiplexes and takes none).
pub async fn run<'p, 'e, T, F>(
    w: &Worker,
    attempts: &mut Attempts<'p>,
    e: &mut Entry<'e>,
    slots: bool,
    mut leg: F,
) -> Result<Tried<'p, T>, Failed>
where
    'p: 'e,
    F: AsyncFnMut(&'p Backend, &Attempts<'p>, &mut Entry<'e>) -> Step<T>,
{
    while let Some(backend) = attempts.next(w, e).await {
        // Queued for a connection slot before counting as in flight on the backend:
        // a waiting request must not skew least-connections or hold up a drain.
        let slot = if slots {
            conn_slot(attempts.pool).await?
        } else {
            None
        };
        let lease = Lease::new(&backend.state);
        let began = e.tries.as_ref().map(|_| (clock::unix_ns(), w.random_u64()));
        let step = leg(backend, attempts, e).await;
        if let (Some(tries), Some((start_ns, id))) = (e.tries.as_mut(), began) {
            tries.push(crate::spans::Try {
                backend: backend.addr,
                span_id: id.max(1).to_be_bytes(),
                start_ns,
                end_ns: clock::unix_ns(),
                error: match &step {
                    Step::Done(_) => None,
                    Step::Failed(err) => Some(err.to_string()),
                    Step::Fatal(f) => Some(f.err.to_string()),
                },
            });
        }
        match step {
            Step::Done(value) => {
                return Ok(Tried {
                    value,
                    backend,
                    lease,
                    slot,
                })
            }
            Step::Failed(err) if err.side() == Side::Backend => attempts.failed(w, err),
            Step::Failed(err) => return Err(err.into()),
            Step::Fatal(f) => return Err(f),
        }
    }
    Err(attempts.exhausted().into())
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
    /// The route's `upstream_timeout`, when it overrides the pool's.
    upstream_timeout: Option<Duration>,
    /// The route's `per_try_timeout`, when it overrides the pool's retries'.
    per_try: Option<Duration>,
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
            upstream_timeout: None,
            per_try: None,
        }
    }

    /// A route's own `upstream_timeout` and `per_try_timeout`, over the pool's.
    pub fn with_timeouts(mut self, upstream: Option<Duration>, per_try: Option<Duration>) -> Self {
        self.upstream_timeout = upstream;
        self.per_try = per_try;
        self
    }

    /// The wait for a backend's response head, and between two reads of its body.
    pub fn upstream_timeout(&self) -> Duration {
        self.upstream_timeout.unwrap_or(self.pool.upstream_timeout)
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
        let up = self.upstream_timeout();
        match self.per_try {
            Some(t) => t.min(up),
            None => self
                .pool
                .retries
                .as_ref()
                .map_or(up, |r| r.head_timeout(up)),
        }
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
                let kind = match err {
                    ProxyError::Connect { .. } => ErrorKind::Connect,
                    ProxyError::BackendTimeout => ErrorKind::Timeout,
                    _ => ErrorKind::Reset,
                };
                super::passive::failed(w, self.pool, m, kind);
            }
        }
        self.last = Some(err);
    }

    /// The error once nothing is left: 502 after a failed connect, 503 when nothing
    /// could be tried.
    pub fn exhausted(&mut self) -> ProxyError {
        self.last.take().unwrap_or(ProxyError::NoBackend)
    }
}
