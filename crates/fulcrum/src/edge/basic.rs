//! `basic_auth`: users from an htpasswd file (bcrypt, argon2), read when the config
//! is built, so a reload picks up a changed file. A hash check costs milliseconds
//! of CPU by design, so it runs on the blocking pool, one at a time per process,
//! and a successful check is remembered for a minute: a client sending the same
//! good credentials on every request pays for one check, and a flood of bad ones
//! cannot take more than one core.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use crate::clock;

/// How long a good `Authorization` value is trusted without a new hash check.
const REMEMBER: Duration = Duration::from_secs(60);
/// Remembered values at most (the memory is cleared when full).
const REMEMBER_MAX: usize = 10_000;

/// A hash an unknown user is checked against, so the answer takes as long as for a
/// known one (bcrypt cost 5, as `htpasswd -B` makes by default).
const DUMMY: &str = "$2y$05$vo9MTMXgB5mi4tjEni8/de6D6Le/NYmpjsVOlrtekuC7Vchm3HbK.";

/// One stored password hash.
#[derive(Debug)]
enum Hash {
    Bcrypt(String),
    Argon2(String),
}

impl Hash {
    fn verify(&self, password: &[u8]) -> bool {
        match self {
            Self::Bcrypt(h) => bcrypt::verify(password, h).unwrap_or(false),
            Self::Argon2(h) => {
                use argon2::password_hash::{PasswordHash, PasswordVerifier};
                PasswordHash::new(h).is_ok_and(|parsed| {
                    argon2::Argon2::default()
                        .verify_password(password, &parsed)
                        .is_ok()
                })
            }
        }
    }
}

/// A route's `basic_auth`: its users and realm.
#[derive(Debug)]
pub struct BasicAuth {
    /// The realm of the challenge.
    pub realm: String,
    users: HashMap<String, Arc<Hash>>,
    /// SHA-256 of `Authorization` values that verified → when they stop counting.
    remembered: Mutex<HashMap<[u8; 32], Duration>>,
}

/// One check at a time per process.
static CHECKS: Semaphore = Semaphore::const_new(1);

impl BasicAuth {
    /// Reads the htpasswd file at `path`; the reason names the line at fault.
    pub fn load(path: &str, realm: &str) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
        let mut users = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let at = || format!("{path}:{}", i + 1);
            let (user, hash) = line
                .split_once(':')
                .ok_or_else(|| format!("{}: expected user:hash", at()))?;
            let hash = if ["$2y$", "$2b$", "$2a$"].iter().any(|p| hash.starts_with(p)) {
                hash.parse::<bcrypt::HashParts>()
                    .map_err(|e| format!("{}: {e}", at()))?;
                Hash::Bcrypt(hash.to_owned())
            } else if hash.starts_with("$argon2") {
                argon2::password_hash::PasswordHash::new(hash)
                    .map_err(|e| format!("{}: {e}", at()))?;
                Hash::Argon2(hash.to_owned())
            } else {
                return Err(format!(
                    "{}: user {user:?}: only bcrypt ($2y$, htpasswd -B) and argon2 hashes are accepted; MD5, SHA-1 and crypt hashes are too weak",
                    at()
                ));
            };
            if users.insert(user.to_owned(), Arc::new(hash)).is_some() {
                return Err(format!("{}: user {user:?} is listed twice", at()));
            }
        }
        Ok(Self {
            realm: realm.to_owned(),
            users,
            remembered: Mutex::new(HashMap::new()),
        })
    }

    /// Whether `authorization` (the field's value, if any) names a user of this file
    /// with the right password.
    pub async fn check(&self, authorization: Option<&[u8]>) -> bool {
        let Some(value) = authorization else {
            return false;
        };
        let digest: [u8; 32] = Sha256::digest(value).into();
        let now = clock::now();
        {
            let mut seen = self.remembered.lock().unwrap_or_else(|e| e.into_inner());
            match seen.get(&digest) {
                Some(&until) if until > now => return true,
                Some(_) => {
                    seen.remove(&digest);
                }
                None => {}
            }
        }
        let Some((user, password)) = credentials(value) else {
            return false;
        };
        let (hash, known) = match self.users.get(&user) {
            Some(h) => (h.clone(), true),
            None => (Arc::new(Hash::Bcrypt(DUMMY.to_owned())), false),
        };
        let Ok(_permit) = CHECKS.acquire().await else {
            return false;
        };
        let verified = tokio::task::spawn_blocking(move || hash.verify(&password))
            .await
            .unwrap_or(false);
        if !(verified && known) {
            return false;
        }
        let mut seen = self.remembered.lock().unwrap_or_else(|e| e.into_inner());
        if seen.len() >= REMEMBER_MAX {
            seen.clear();
        }
        seen.insert(digest, now + REMEMBER);
        true
    }
}

/// The user and password of a `Basic` credential (RFC 7617).
fn credentials(value: &[u8]) -> Option<(String, Vec<u8>)> {
    let value = value.trim_ascii();
    let scheme = value.get(..6)?;
    if !scheme.eq_ignore_ascii_case(b"basic ") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(value.get(6..)?.trim_ascii())
        .ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    let user = std::str::from_utf8(&decoded[..colon]).ok()?.to_owned();
    Some((user, decoded[colon + 1..].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_read_as_rfc_7617_says() {
        let b64 = base64::engine::general_purpose::STANDARD.encode("alice:pa:ss");
        let got = credentials(format!("Basic {b64}").as_bytes());
        assert_eq!(got, Some(("alice".into(), b"pa:ss".to_vec())));
        assert_eq!(
            credentials(format!("basic  {b64} ").as_bytes()).map(|c| c.0),
            Some("alice".into())
        );
        assert_eq!(credentials(b"Bearer abc"), None);
        assert_eq!(credentials(b"Basic !!!"), None);
        let no_colon = base64::engine::general_purpose::STANDARD.encode("alice");
        assert_eq!(credentials(format!("Basic {no_colon}").as_bytes()), None);
    }

    /// An htpasswd file with an argon2id line (htpasswd cannot make one), read and
    /// checked as a bcrypt one is; a file with another kind of hash is refused.
    #[tokio::test]
    async fn argon2_users_are_checked_and_weak_hashes_refused() {
        use argon2::password_hash::{PasswordHasher, SaltString};
        let salt = SaltString::encode_b64(b"sixteen byte slt").unwrap_or_else(|e| panic!("{e}"));
        let hash = argon2::Argon2::default()
            .hash_password(b"correct horse", &salt)
            .map(|h| h.to_string())
            .unwrap_or_else(|e| panic!("{e}"));
        let dir = std::env::temp_dir().join(format!("fulcrum-basic-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let file = dir.join("users");
        std::fs::write(&file, format!("# ops\n\ndana:{hash}\n")).unwrap_or_default();
        let path = file.display().to_string();
        let auth = BasicAuth::load(&path, "r").unwrap_or_else(|e| panic!("{e}"));
        let value = |user: &str, pw: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"))
            )
        };
        assert!(
            auth.check(Some(value("dana", "correct horse").as_bytes()))
                .await
        );
        assert!(!auth.check(Some(value("dana", "wrong").as_bytes())).await);
        assert!(
            !auth
                .check(Some(value("eve", "correct horse").as_bytes()))
                .await
        );
        assert!(!auth.check(None).await);
        std::fs::write(&file, "a:{SHA}qUqP5cyxm6YcTAhz05Hph5gvu9M=\n").unwrap_or_default();
        let why = BasicAuth::load(&path, "r").err().unwrap_or_default();
        assert!(why.ends_with("users:1: user \"a\": only bcrypt ($2y$, htpasswd -B) and argon2 hashes are accepted; MD5, SHA-1 and crypt hashes are too weak"), "{why}");
        std::fs::write(&file, "no colon here\n").unwrap_or_default();
        let why = BasicAuth::load(&path, "r").err().unwrap_or_default();
        assert!(why.ends_with("users:1: expected user:hash"), "{why}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_dummy_hash_is_a_valid_bcrypt_hash() {
        assert!(DUMMY.parse::<bcrypt::HashParts>().is_ok());
        assert!(!Hash::Bcrypt(DUMMY.into()).verify(b"anything"));
    }
}
