//! STUB, being written: maglev.

use super::{Backend, BackendId, Balancer, PickCtx};

/// STUB.
#[derive(Debug, Default)]
pub struct Maglev;

impl Maglev {
    /// STUB.
    #[allow(unused_variables)]
    pub fn new(pool: &[Backend], table_size: u32) -> Self {
        Self
    }
}

impl Balancer for Maglev {
    fn pick(&self, pool: &[Backend], ctx: &PickCtx<'_>) -> Option<BackendId> {
        (0..pool.len()).find(|&i| super::is_eligible(&pool[i], i, ctx.exclude)).and_then(BackendId::from_index)
    }
}
