//! STUB, being written: random and power of two.

use super::{Backend, BackendId, Balancer, PickCtx};

/// STUB.
#[derive(Debug, Default)]
pub struct Random;

impl Random {
    /// STUB.
    #[allow(unused_variables)]
    pub fn new(pool: &[Backend]) -> Self {
        Self
    }
}

impl Balancer for Random {
    fn pick(&self, pool: &[Backend], ctx: &PickCtx<'_>) -> Option<BackendId> {
        (0..pool.len()).find(|&i| super::is_eligible(&pool[i], i, ctx.exclude)).and_then(BackendId::from_index)
    }
}

/// STUB.
#[derive(Debug, Default)]
pub struct PowerOfTwo;

impl PowerOfTwo {
    /// STUB.
    #[allow(unused_variables)]
    pub fn new(load: crate::config::LoadConfig) -> Self {
        Self
    }
}

impl Balancer for PowerOfTwo {
    fn pick(&self, pool: &[Backend], ctx: &PickCtx<'_>) -> Option<BackendId> {
        (0..pool.len()).find(|&i| super::is_eligible(&pool[i], i, ctx.exclude)).and_then(BackendId::from_index)
    }
}
