//! A request's sticky-session cookie, read once when its pool is sticky.

use fulcrum_core::balance::Pin;

use crate::state::Pool;

/// Wall-clock unix seconds, for cookie expiries and JWT `exp`/`nbf`.
pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A request's sticky cookie.
#[derive(Clone, Copy, Debug, Default)]
pub struct Pinned {
    /// The backend a valid, unexpired cookie names.
    pub(super) pin: Option<Pin>,
    /// Unix seconds when the cookie was read; 0 when the pool is not sticky.
    pub(super) now_unix: u64,
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
