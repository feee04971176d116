//! Pool → backend. STUB: replaced by the balancer work.
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;

use crate::config::BalanceConfig;

/// Position of a backend in one pool snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BackendId(pub u32);

/// Stable identity of a backend across reloads.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BackendKey(pub String);

/// Live state of one backend.
#[derive(Debug, Default)]
pub struct BackendState {
    /// Requests in flight.
    pub in_flight: AtomicU32,
}

/// One backend as a balancer sees it.
#[derive(Debug)]
pub struct Backend {
    /// Stable key.
    pub key: BackendKey,
    /// Resolved address.
    pub addr: SocketAddr,
    /// Weight.
    pub weight: NonZeroU32,
    /// Shared state.
    pub state: Arc<BackendState>,
}

/// Inputs to one pick.
#[derive(Debug, Default)]
pub struct PickCtx<'a> {
    /// Hash key.
    pub hash: Option<u64>,
    /// Already tried.
    pub exclude: &'a [BackendId],
    /// Random bits.
    pub entropy: u64,
}

/// Chooses a backend.
pub trait Balancer: Send + Sync + std::fmt::Debug {
    /// Picks.
    fn pick(&self, pool: &[Backend], ctx: &PickCtx<'_>) -> Option<BackendId>;
}

#[derive(Debug, Default)]
struct Rr(AtomicUsize);

impl Balancer for Rr {
    fn pick(&self, pool: &[Backend], ctx: &PickCtx<'_>) -> Option<BackendId> {
        for _ in 0..pool.len() {
            let i = self.0.fetch_add(1, Ordering::Relaxed) % pool.len();
            let id = BackendId(i as u32);
            if !ctx.exclude.contains(&id) {
                return Some(id);
            }
        }
        None
    }
}

/// Builds a balancer.
pub fn build(_cfg: BalanceConfig, _pool: &[Backend]) -> Box<dyn Balancer> {
    Box::<Rr>::default()
}
