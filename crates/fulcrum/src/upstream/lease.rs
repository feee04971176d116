//! The in-flight count of a backend, held for the life of one request.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use fulcrum_core::balance::BackendState;

/// Counts one in-flight request against a backend until dropped.
#[derive(Debug)]
pub struct Lease(Arc<BackendState>);

impl Lease {
    /// Starts counting.
    pub fn new(state: &Arc<BackendState>) -> Self {
        state.in_flight.fetch_add(1, Ordering::Relaxed);
        Self(state.clone())
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}
