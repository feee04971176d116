//! JSON Web Tokens (RFC 7519) as far as routing and hashing need them: a bearer
//! token's claims, verified against one configured key.
//!
//! Verification is strict and small:
//! - the compact form only (`header.payload.signature`, base64url without padding);
//! - the header's `alg` must be exactly the configured key's algorithm (`HS256`,
//!   `RS256` or `ES256`): `none` and any other value are refused, so a token cannot
//!   choose how it is checked (algorithm confusion); a `crit` header is refused;
//! - HS256 compares its HMAC-SHA256 in constant time; RS256 is RSASSA-PKCS1-v1_5
//!   with SHA-256 (keys of 2048 bits or more); ES256 is ECDSA P-256 with SHA-256,
//!   the signature as the 64 bytes `r || s` (RFC 7518 §3.4);
//! - `exp` and `nbf`, when present, must be numbers: a token is refused at or after
//!   `exp` and before `nbf`, against the caller's clock (unix seconds), no leeway.
//!
//! Time is an argument and nothing here does I/O: reading a PEM file is the
//! caller's job, which hands its text to [`JwtKey::from_pem`].

use std::borrow::Cow;
use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use p256::pkcs8::DecodePublicKey as _;
use rsa::pkcs1::DecodeRsaPublicKey as _;
use rsa::signature::Verifier as _;
use rsa::traits::PublicKeyParts as _;
use serde_json::{Map, Value};
use sha2::Sha256;

mod lazy;

pub use lazy::RequestTokens;

/// A token's claims: the payload's JSON object.
pub type Claims = Map<String, Value>;

/// A key that verifies tokens, of one algorithm.
#[derive(Clone)]
pub enum JwtKey {
    /// HMAC-SHA256 with a shared secret.
    Hs256(Box<[u8]>),
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256(Box<rsa::pkcs1v15::VerifyingKey<Sha256>>),
    /// ECDSA on P-256 with SHA-256.
    Es256(Box<p256::ecdsa::VerifyingKey>),
}

impl fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A shared secret stays out of logs and panics.
        write!(f, "JwtKey({})", self.alg())
    }
}

/// Why a PEM public key cannot verify tokens.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Neither an RSA nor a P-256 public key.
    #[error("not an RSA or EC P-256 public key in PEM form (\"-----BEGIN PUBLIC KEY-----\")")]
    Unrecognized,
    /// An RSA key below 2048 bits.
    #[error("RSA key of {0} bits: at least 2048 are required")]
    RsaTooShort(usize),
}

/// Why a token was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// Not three base64url parts, or a part is not valid base64url.
    #[error("malformed token")]
    Malformed,
    /// The header or payload is not a JSON object (or a field has the wrong type).
    #[error("malformed JSON in token")]
    Json,
    /// `alg` is not the configured key's algorithm (`none` included).
    #[error("algorithm does not match the key")]
    Algorithm,
    /// The header has a `crit` member, whose extensions are not understood.
    #[error("critical header extensions are not supported")]
    Critical,
    /// The signature does not verify.
    #[error("bad signature")]
    Signature,
    /// `now` is at or after `exp`.
    #[error("expired")]
    Expired,
    /// `now` is before `nbf`.
    #[error("not yet valid")]
    NotYetValid,
}

impl JwtKey {
    /// An HS256 key from a shared secret.
    pub fn hs256(secret: &[u8]) -> Self {
        Self::Hs256(secret.into())
    }

    /// An RS256 or ES256 key from PEM text, chosen by the key's type: an RSA
    /// public key (SubjectPublicKeyInfo `PUBLIC KEY`, or PKCS#1 `RSA PUBLIC KEY`)
    /// or an EC P-256 public key (`PUBLIC KEY`).
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        let rsa = rsa::RsaPublicKey::from_public_key_pem(pem)
            .or_else(|_| rsa::RsaPublicKey::from_pkcs1_pem(pem));
        if let Ok(key) = rsa {
            let bits = key.size() * 8;
            if bits < 2048 {
                return Err(KeyError::RsaTooShort(bits));
            }
            return Ok(Self::Rs256(Box::new(rsa::pkcs1v15::VerifyingKey::new(key))));
        }
        p256::ecdsa::VerifyingKey::from_public_key_pem(pem)
            .map(|key| Self::Es256(Box::new(key)))
            .map_err(|_| KeyError::Unrecognized)
    }

    /// The `alg` a token must name: `HS256`, `RS256` or `ES256`.
    pub fn alg(&self) -> &'static str {
        match self {
            Self::Hs256(_) => "HS256",
            Self::Rs256(_) => "RS256",
            Self::Es256(_) => "ES256",
        }
    }

    /// Whether `sig` signs `input` under this key.
    fn verifies(&self, input: &[u8], sig: &[u8]) -> bool {
        match self {
            Self::Hs256(secret) => {
                let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
                    return false;
                };
                mac.update(input);
                // Constant-time comparison.
                mac.verify_slice(sig).is_ok()
            }
            Self::Rs256(key) => rsa::pkcs1v15::Signature::try_from(sig)
                .is_ok_and(|sig| key.verify(input, &sig).is_ok()),
            Self::Es256(key) => p256::ecdsa::Signature::from_slice(sig)
                .is_ok_and(|sig| key.verify(input, &sig).is_ok()),
        }
    }
}

/// The claims of `token` once its signature, `alg`, `exp` and `nbf` are checked
/// against `key` at `now_unix` seconds.
pub fn verify(token: &str, key: &JwtKey, now_unix: u64) -> Result<Claims, JwtError> {
    let (input, sig) = token.rsplit_once('.').ok_or(JwtError::Malformed)?;
    let (header, payload) = input.split_once('.').ok_or(JwtError::Malformed)?;
    let header: Map<String, Value> = json(&decode(header)?)?;
    let sig = decode(sig)?;
    if header.get("alg").and_then(Value::as_str) != Some(key.alg()) {
        return Err(JwtError::Algorithm);
    }
    if header.contains_key("crit") {
        return Err(JwtError::Critical);
    }
    if !key.verifies(input.as_bytes(), &sig) {
        return Err(JwtError::Signature);
    }
    let claims: Claims = json(&decode(payload)?)?;
    let now = now_unix as f64;
    let time = |name: &str| match claims.get(name) {
        None => Ok(None),
        Some(v) => v.as_f64().map(Some).ok_or(JwtError::Json),
    };
    if time("exp")?.is_some_and(|exp| now >= exp) {
        return Err(JwtError::Expired);
    }
    if time("nbf")?.is_some_and(|nbf| now < nbf) {
        return Err(JwtError::NotYetValid);
    }
    Ok(claims)
}

/// The claims of `token` without any check of its signature or times: for
/// spreading load only, never for a decision that matters for security.
pub fn decode_unverified(token: &str) -> Result<Claims, JwtError> {
    let mut parts = token.split('.');
    let (Some(_), Some(payload), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed);
    };
    json(&decode(payload)?)
}

/// The token of an `Authorization: Bearer <token>` field value (the scheme in
/// any case), or `None` for another scheme or an empty token.
pub fn bearer(value: &[u8]) -> Option<&str> {
    let value = std::str::from_utf8(value).ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim_start();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// A claim's value as routing and hashing see it: a string's content (no
/// quotes), or the JSON text of a number or boolean. `None` for `null`, arrays
/// and objects.
pub fn claim_text(value: &Value) -> Option<Cow<'_, str>> {
    match value {
        Value::String(s) => Some(Cow::Borrowed(s)),
        Value::Number(n) => Some(Cow::Owned(n.to_string())),
        Value::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

/// A compact HS256 token over `claims` (a JSON object): for tests and tools that
/// need a token this module accepts.
pub fn sign_hs256(secret: &[u8], claims: &Claims) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(Value::Object(claims.clone()).to_string());
    let input = format!("{header}.{payload}");
    let sig = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mut mac) => {
            mac.update(input.as_bytes());
            mac.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    };
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

fn decode(part: &str) -> Result<Vec<u8>, JwtError> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| JwtError::Malformed)
}

fn json(bytes: &[u8]) -> Result<Map<String, Value>, JwtError> {
    serde_json::from_slice(bytes).map_err(|_| JwtError::Json)
}

#[cfg(test)]
mod tests;
