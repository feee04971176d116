//! STUB, being written: ring hash.

use super::{Backend, BackendId, Balancer, PickCtx};

/// STUB.
#[derive(Debug, Default)]
pub struct RingHash;

impl RingHash {
    /// STUB.
    #[allow(unused_variables)]
    pub fn new(pool: &[Backend], virtual_nodes: u32, balance_factor: Option<f64>) -> Self {
        Self
    }
}

impl Balancer for RingHash {
    fn pick(&self, pool: &[Backend], ctx: &PickCtx<'_>) -> Option<BackendId> {
        (0..pool.len()).find(|&i| super::is_eligible(&pool[i], i, ctx.exclude)).and_then(BackendId::from_index)
    }
}
