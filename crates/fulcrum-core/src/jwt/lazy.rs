//! One request's bearer token, decoded lazily and at most once per key.

use std::sync::{Arc, Mutex, OnceLock};

use super::{bearer, decode_unverified, verify, Claims, JwtKey};
use crate::route::Headers;

/// The bearer token of one request and what it was found to claim, computed on
/// first use: a request no route or pool asks about never decodes its token,
/// and one that several ask about verifies it once per distinct key (keys are
/// told apart by their `Arc`, so share one `Arc` for equal keys).
#[derive(Debug)]
pub struct RequestTokens {
    /// Unix seconds, read only when a token is verified (for `exp` and `nbf`):
    /// requests that no JWT route or pool looks at never read the clock.
    clock: fn() -> u64,
    /// The first `authorization` field's bearer token, copied out of the head.
    token: OnceLock<Option<Box<str>>>,
    unverified: OnceLock<Option<Arc<Claims>>>,
    /// Key address → its outcome (`None`: the token did not verify).
    pub(super) verified: Mutex<Vec<(usize, Option<Arc<Claims>>)>>,
}

impl RequestTokens {
    /// Checks `exp` and `nbf` against `clock()` (Unix seconds), called only when
    /// a token is verified; time stays the caller's, as everywhere in core.
    pub fn new(clock: fn() -> u64) -> Self {
        Self {
            clock,
            token: OnceLock::new(),
            unverified: OnceLock::new(),
            verified: Mutex::new(Vec::new()),
        }
    }

    /// The request's claims: verified with `key` when given (`None` when the
    /// token is missing or invalid), else decoded without any check.
    pub fn claims(&self, headers: &dyn Headers, key: Option<&Arc<JwtKey>>) -> Option<Arc<Claims>> {
        let token = self.token(headers)?;
        let Some(key) = key else {
            return self
                .unverified
                .get_or_init(|| decode_unverified(token).ok().map(Arc::new))
                .clone();
        };
        let id = Arc::as_ptr(key) as usize;
        let mut verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, claims)) = verified.iter().find(|(k, _)| *k == id) {
            return claims.clone();
        }
        let claims = verify(token, key, (self.clock)()).ok().map(Arc::new);
        verified.push((id, claims.clone()));
        claims
    }

    fn token(&self, headers: &dyn Headers) -> Option<&str> {
        self.token
            .get_or_init(|| {
                let mut found = None;
                // The first field decides, as for other hash keys.
                headers.any("authorization", &mut |v| {
                    found = bearer(v).map(Into::into);
                    true
                });
                found
            })
            .as_deref()
    }
}
