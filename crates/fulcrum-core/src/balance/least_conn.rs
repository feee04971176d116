//! STUB, being written: least connections.

use super::{Backend, BackendId, Balancer, PickCtx};

/// STUB.
#[derive(Debug, Default)]
pub struct LeastConnections;

impl LeastConnections {
    /// STUB.
    #[allow(unused_variables)]
    pub fn new() -> Self {
        Self
    }
}

impl Balancer for LeastConnections {
    fn pick(&self, pool: &[Backend], ctx: &PickCtx<'_>) -> Option<BackendId> {
        (0..pool.len()).find(|&i| super::is_eligible(&pool[i], i, ctx.exclude)).and_then(BackendId::from_index)
    }
}
