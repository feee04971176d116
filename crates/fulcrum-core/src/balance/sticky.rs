//! Sticky sessions: a signed, expiring cookie that pins a client to one backend.
//!
//! The cookie value is base64url (no padding) of 32 bytes:
//!
//! ```text
//! expiry (unix seconds, u64 big-endian) || tag (8) || mac (16)
//! tag = HMAC-SHA256(secret, "fulcrum-sticky-id\0" || backend key)[..8]
//! mac = HMAC-SHA256(secret, "fulcrum-sticky-mac\0" || expiry || tag)[..16]
//! ```
//!
//! * Unforgeable: without the secret no valid `mac` can be made, and the expiry is
//!   covered by it, so it cannot be extended either.
//! * Unreadable: the tag is a keyed hash, so the backend's address cannot be read
//!   back from it (two cookies for the same backend do share a tag).
//! * Cheap to check: the tag is looked up in a table built once per pool snapshot,
//!   so a pick costs one HMAC whatever the pool's size.
//! * Fleet-stable: everything derives from the secret and the backend keys as
//!   written in the config; any Fulcrum with the same config honours the cookie.
//!
//! Time is an argument (`now_unix`): this crate has no clock.
use std::collections::HashMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{Backend, BackendId};

type HmacSha256 = Hmac<Sha256>;

/// Domain separation between the two uses of the secret.
const ID_DOMAIN: &[u8] = b"fulcrum-sticky-id\0";
const MAC_DOMAIN: &[u8] = b"fulcrum-sticky-mac\0";
/// Bytes in a decoded cookie value: expiry, tag, mac.
const RAW_LEN: usize = 8 + TAG_LEN + MAC_LEN;
const TAG_LEN: usize = 8;
const MAC_LEN: usize = 16;
/// Length of the base64url text of [`RAW_LEN`] bytes, without padding.
const TEXT_LEN: usize = (RAW_LEN * 4).div_ceil(3);

/// A valid, unexpired cookie: the backend it names and when it expires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pin {
    /// The backend the cookie names, in this pool snapshot.
    pub backend: BackendId,
    /// Expiry, unix seconds.
    pub expires: u64,
}

/// One pool's sticky-cookie codec: the keyed MAC and the tag of every backend.
#[derive(Clone)]
pub struct Sticky {
    /// Keyed once; cloned per use so the key is not re-hashed per request.
    mac: HmacSha256,
    ttl_secs: u64,
    /// Tag → backend; a (2^-64-unlikely) tag shared by two backends maps to the first.
    by_tag: HashMap<[u8; TAG_LEN], BackendId>,
    /// Tag of each backend, by index.
    tags: Vec<[u8; TAG_LEN]>,
}

impl std::fmt::Debug for Sticky {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never prints key material.
        f.debug_struct("Sticky")
            .field("ttl_secs", &self.ttl_secs)
            .field("backends", &self.tags.len())
            .finish_non_exhaustive()
    }
}

impl Sticky {
    /// Builds the codec for `pool` (off the data path, on each reload).
    pub fn new(secret: &[u8], ttl_secs: u64, pool: &[Backend]) -> Self {
        // HMAC accepts keys of any length, so this never fails.
        let mac = match HmacSha256::new_from_slice(secret) {
            Ok(mac) => mac,
            Err(_) => unreachable!("HMAC takes keys of any length"),
        };
        let mut by_tag = HashMap::with_capacity(pool.len());
        let mut tags = Vec::with_capacity(pool.len());
        for (i, backend) in pool.iter().enumerate() {
            let mut m = mac.clone();
            m.update(ID_DOMAIN);
            m.update(backend.key.0.as_bytes());
            let mut tag = [0; TAG_LEN];
            tag.copy_from_slice(&m.finalize().into_bytes()[..TAG_LEN]);
            if let Some(id) = BackendId::from_index(i) {
                by_tag.entry(tag).or_insert(id);
            }
            tags.push(tag);
        }
        Self {
            mac,
            ttl_secs,
            by_tag,
            tags,
        }
    }

    /// The cookie's lifetime in seconds.
    pub fn ttl_secs(&self) -> u64 {
        self.ttl_secs
    }

    /// The keyed MAC over `expiry || tag`, untruncated.
    fn mac_for(&self, expiry: &[u8; 8], tag: &[u8; TAG_LEN]) -> HmacSha256 {
        let mut m = self.mac.clone();
        m.update(MAC_DOMAIN);
        m.update(expiry);
        m.update(tag);
        m
    }

    /// The pin in a cookie value, or `None` when it is malformed, forged, expired
    /// or names no backend of this pool.
    pub fn pin(&self, cookie_value: &[u8], now_unix: u64) -> Option<Pin> {
        if cookie_value.len() != TEXT_LEN {
            return None;
        }
        let mut raw = [0u8; RAW_LEN];
        let n = URL_SAFE_NO_PAD
            .decode_slice(cookie_value, &mut raw)
            .ok()
            .filter(|&n| n == RAW_LEN)?;
        let (expiry, rest) = raw.get(..n)?.split_first_chunk::<8>()?;
        let (tag, mac) = rest.split_first_chunk::<TAG_LEN>()?;
        // Constant time, so the mac cannot be found byte by byte.
        self.mac_for(expiry, tag).verify_truncated_left(mac).ok()?;
        let expires = u64::from_be_bytes(*expiry);
        if expires <= now_unix {
            return None;
        }
        let backend = *self.by_tag.get(tag)?;
        Some(Pin { backend, expires })
    }

    /// The backend a cookie value names, when it is genuine, unexpired and known.
    pub fn backend_for(&self, cookie_value: &[u8], now_unix: u64) -> Option<BackendId> {
        self.pin(cookie_value, now_unix).map(|p| p.backend)
    }

    /// The first valid pin among the cookies called `name` in one `Cookie` header
    /// (`a=1; NAME=VALUE`). A client may send stale duplicates; any genuine one counts.
    pub fn pin_in_header(&self, name: &str, header: &[u8], now_unix: u64) -> Option<Pin> {
        header
            .split(|&b| b == b';')
            .filter_map(|pair| {
                let pair = pair.trim_ascii();
                let eq = pair.iter().position(|&b| b == b'=')?;
                let (k, v) = pair.split_at(eq);
                (k.trim_ascii() == name.as_bytes())
                    .then(|| v.get(1..).unwrap_or_default().trim_ascii())
            })
            .find_map(|v| self.pin(v, now_unix))
    }

    /// A fresh cookie value naming backend `id`, expiring `ttl` after `now_unix`.
    /// Empty when `id` is not in this pool (a caller bug, never a client's doing).
    pub fn cookie_value(&self, id: BackendId, now_unix: u64) -> String {
        let Some(tag) = self.tags.get(id.index()) else {
            return String::new();
        };
        let expiry = now_unix.saturating_add(self.ttl_secs).to_be_bytes();
        let mac = self.mac_for(&expiry, tag).finalize().into_bytes();
        let mut raw = [0u8; RAW_LEN];
        raw[..8].copy_from_slice(&expiry);
        raw[8..8 + TAG_LEN].copy_from_slice(tag);
        raw[8 + TAG_LEN..].copy_from_slice(&mac[..MAC_LEN]);
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// Whether a response from `answered` must (re)set the cookie: the request had
    /// no valid pin, a pin for another backend, or one within half its ttl of expiry.
    pub fn needs_refresh(&self, pin: Option<Pin>, answered: BackendId, now_unix: u64) -> bool {
        match pin {
            Some(p) if p.backend == answered => {
                p.expires.saturating_sub(now_unix) < self.ttl_secs.div_ceil(2)
            }
            _ => true,
        }
    }

    /// The whole `Set-Cookie` value naming `id`: `NAME=VALUE; Path=/; HttpOnly;
    /// SameSite=Lax; Max-Age=TTL`.
    pub fn set_cookie(&self, name: &str, id: BackendId, now_unix: u64) -> String {
        format!(
            "{name}={}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}",
            self.cookie_value(id, now_unix),
            self.ttl_secs
        )
    }
}

/// Whether `name` is a valid cookie name: an RFC 9110 token (RFC 6265 §4.1.1).
pub fn is_cookie_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests;
