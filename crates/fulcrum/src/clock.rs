//! One monotonic clock for the whole process. Health state is shared by every
//! worker and the health task, and the pure state machines compare instants from
//! all of them, so they must share an epoch.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// Time since the process's epoch (its first call).
pub fn now() -> Duration {
    EPOCH.get_or_init(Instant::now).elapsed()
}

/// [`now`] in nanoseconds, saturating.
pub fn now_ns() -> u64 {
    u64::try_from(now().as_nanos()).unwrap_or(u64::MAX)
}

/// Wall-clock nanoseconds since the Unix epoch (span timestamps).
pub fn unix_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}
