//! A pool's circuit limits at the door: `max_requests` (scaled by the warm share,
//! `fulcrum_core::forward::admission_limit`) and `max_connections` with a bounded
//! queue of `max_pending` waiters.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use fulcrum_core::forward::admission_limit;

use crate::http::ProxyError;
use crate::state::{Pool, PoolState};

/// Holds one request against a pool's `max_requests` until dropped.
pub struct RequestSlot(Arc<PoolState>);

impl Drop for RequestSlot {
    fn drop(&mut self) {
        self.0.requests.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Admits a request to `pool`, or refuses it at once past its limit.
pub fn admit(pool: &Pool) -> Result<RequestSlot, ProxyError> {
    let st = &pool.state;
    let limit = admission_limit(
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

/// Holds one upstream connection against a pool's `max_connections` until
/// dropped; wakes one request waiting for a slot.
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
fn try_take(counter: &AtomicU32, max: u32) -> bool {
    counter
        .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| {
            (n < max).then_some(n + 1)
        })
        .is_ok()
}
