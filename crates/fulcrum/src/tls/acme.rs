//! Automatic certificates (RFC 8555) with `instant-acme`: for each https listener
//! with `acme`, a task that keeps a certificate for its domains in the storage
//! directory and in the listener's certificate set.
//!
//! The task loads what the storage holds first (a restart, or another instance
//! sharing the directory, does not issue again) and sleeps until the certificate is
//! due: `renew_before` its expiry, less a random part of up to a tenth of that. To
//! issue, it takes the storage's lock file (created exclusively; one older than
//! ten minutes is a crashed holder's and is broken), looks at the storage again
//! (another instance may have just renewed), orders, answers the challenges and
//! writes the key and the chain by rename. The file watcher of the listener then
//! serves the new files like any certificate whose files changed.
//!
//! Challenges are answered from a process-wide table: HTTP-01 tokens by every
//! plain http listener (before routing), TLS-ALPN-01 certificates by the https
//! listener's resolver to clients that offer ALPN `acme-tls/1`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fulcrum_core::config::{AcmeChallenge, AcmeConfig};
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};
use rustls::sign::CertifiedKey;

/// The ALPN protocol of TLS-ALPN-01 (RFC 8737).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// Path prefix of HTTP-01 requests.
pub const HTTP01_PREFIX: &str = "/.well-known/acme-challenge/";

/// A lock file older than this is a crashed holder's.
const STALE_LOCK: Duration = Duration::from_secs(600);

/// Challenge answers in flight, and renewal counts, for the whole process.
#[derive(Default)]
pub struct Challenges {
    http: Mutex<HashMap<String, String>>,
    alpn: Mutex<HashMap<String, Arc<CertifiedKey>>>,
    /// Entries in either table: the HTTP path looks at the tables only when some.
    pending: AtomicUsize,
    renewals: Mutex<BTreeMap<String, [u64; 2]>>,
}

/// The process's challenge table.
pub fn challenges() -> &'static Challenges {
    static TABLE: OnceLock<Challenges> = OnceLock::new();
    TABLE.get_or_init(Challenges::default)
}

impl Challenges {
    /// The key authorization for an HTTP-01 `path`, if it is one in flight: this
    /// process's, or one that another instance sharing an `acme.storage` of
    /// `config` wrote there (a load balancer may send the ACME server's check to any
    /// instance of a fleet).
    pub fn http01(&self, path: &str, config: &fulcrum_core::config::Config) -> Option<String> {
        let token = path.strip_prefix(HTTP01_PREFIX)?;
        if self.pending.load(Ordering::Relaxed) > 0 {
            if let Some(k) = lock(&self.http).get(token) {
                return Some(k.clone());
            }
        }
        // Tokens are base64url: nothing else names a file.
        let valid = !token.is_empty()
            && token.len() <= 256
            && token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid {
            return None;
        }
        config
            .listeners
            .values()
            .filter_map(|l| l.tls.as_ref()?.acme.as_ref())
            .find_map(|a| std::fs::read_to_string(shared_token(&a.storage, token)).ok())
    }

    /// The TLS-ALPN-01 certificate for `name`, if one is in flight.
    pub fn alpn01(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        lock(&self.alpn).get(&name.to_ascii_lowercase()).cloned()
    }

    /// Renewals by listener: `[ok, failed]`.
    pub fn renewals(&self) -> BTreeMap<String, [u64; 2]> {
        lock(&self.renewals).clone()
    }

    fn count(&self, listener: &str, ok: bool) {
        let mut r = lock(&self.renewals);
        let e = r.entry(listener.to_owned()).or_default();
        e[usize::from(!ok)] += 1;
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The certificate and key files ACME keeps for `cfg`.
pub fn stored_files(cfg: &AcmeConfig) -> (String, String) {
    let s = Stored::new(cfg);
    (path_str(&s.cert()), path_str(&s.key()))
}

/// Where an HTTP-01 answer is shared with the other instances using `storage`.
fn shared_token(storage: &str, token: &str) -> PathBuf {
    Path::new(storage).join("challenges").join(token)
}

/// Where a listener's certificate lives.
struct Stored {
    dir: PathBuf,
}

impl Stored {
    fn new(cfg: &AcmeConfig) -> Self {
        let first = cfg.domains.first().map_or("default", String::as_str);
        Self {
            dir: Path::new(&cfg.storage).join(first),
        }
    }
    fn cert(&self) -> PathBuf {
        self.dir.join("cert.pem")
    }
    fn key(&self) -> PathBuf {
        self.dir.join("key.pem")
    }
    fn account(&self) -> PathBuf {
        self.dir.join("account.json")
    }
    fn lock(&self) -> PathBuf {
        self.dir.join("lock")
    }
}

/// Keeps `listener`'s certificate current, forever, handing each certificate it
/// loads or issues to `install` (which puts it in the listener's resolver).
pub async fn keep<F>(listener: String, cfg: AcmeConfig, install: F)
where
    F: Fn(&str, super::Loaded),
{
    let stored = Stored::new(&cfg);
    let mut backoff = Duration::from_secs(5);
    loop {
        let now = unix_now();
        let due = match super::load(&path_str(&stored.cert()), &path_str(&stored.key())) {
            Ok(loaded) => {
                let due = due_at(loaded.not_after, &cfg);
                install(&listener, loaded);
                due
            }
            Err(_) => now,
        };
        if due > now {
            // Checked again at least hourly: another instance may renew, or the
            // config change.
            let wait = Duration::from_secs(u64::try_from(due - now).unwrap_or(0).min(3600));
            tokio::time::sleep(wait).await;
            continue;
        }
        match issue_locked(&stored, &cfg, &listener).await {
            Ok(Turn::Fresh) => {}
            Ok(Turn::Issued) => {
                challenges().count(&listener, true);
                backoff = Duration::from_secs(5);
                // Served before it is announced.
                let fresh = super::load(&path_str(&stored.cert()), &path_str(&stored.key()));
                let due = fresh.map(|loaded| {
                    let due = due_at(loaded.not_after, &cfg);
                    install(&listener, loaded);
                    due
                });
                tracing::info!(%listener, domains = ?cfg.domains, "ACME certificate issued");
                // A certificate due at once (renew_before beyond its validity) is
                // renewed again after this floor, not in a loop.
                if due.is_ok_and(|due| due <= unix_now()) {
                    tracing::warn!(%listener, "the new certificate is already due: renew_before exceeds its validity");
                    tokio::time::sleep(Duration::from_secs(600)).await;
                }
            }
            // Another instance holds the lock: its files will appear.
            Ok(Turn::Busy) => tokio::time::sleep(Duration::from_secs(2)).await,
            Err(error) => {
                challenges().count(&listener, false);
                tracing::error!(%listener, %error, "ACME issuance failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(3600));
            }
        }
    }
}

fn path_str(p: &Path) -> String {
    p.display().to_string()
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// When a certificate expiring at `not_after` is to be renewed.
fn due_at(not_after: i64, cfg: &AcmeConfig) -> i64 {
    let before = i64::try_from(cfg.renew_before.get().as_secs()).unwrap_or(i64::MAX);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let jitter = (before / 10).max(1);
    let jitter = i64::from(nanos) % jitter;
    not_after.saturating_sub(before).saturating_sub(jitter)
}

/// What a turn at the lock came to.
enum Turn {
    /// A new certificate is stored.
    Issued,
    /// Another instance holds the lock.
    Busy,
    /// Another instance renewed meanwhile: nothing to do.
    Fresh,
}

/// Issues under the storage's lock.
async fn issue_locked(stored: &Stored, cfg: &AcmeConfig, listener: &str) -> Result<Turn, String> {
    std::fs::create_dir_all(&stored.dir).map_err(|e| format!("{}: {e}", stored.dir.display()))?;
    let lock_path = stored.lock();
    let taken = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&lock_path);
    if let Err(e) = taken {
        if e.kind() != std::io::ErrorKind::AlreadyExists {
            return Err(format!("{}: {e}", lock_path.display()));
        }
        let age = std::fs::metadata(&lock_path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|m| m.elapsed().ok());
        if age.is_some_and(|a| a > STALE_LOCK) {
            tracing::warn!(%listener, lock = %lock_path.display(), "breaking a stale ACME lock");
            let _ = std::fs::remove_file(&lock_path);
        }
        return Ok(Turn::Busy);
    }
    let result = async {
        // Another instance may have renewed while this one waited for the lock.
        if let Ok(l) = super::load(&path_str(&stored.cert()), &path_str(&stored.key())) {
            if due_at(l.not_after, cfg) > unix_now() {
                return Ok(Turn::Fresh);
            }
        }
        issue(stored, cfg).await.map(|()| Turn::Issued)
    }
    .await;
    let _ = std::fs::remove_file(&lock_path);
    result
}

/// Orders, proves control of the domains and writes the certificate and its key.
async fn issue(stored: &Stored, cfg: &AcmeConfig) -> Result<(), String> {
    let account = account(stored, cfg).await?;
    let ids: Vec<Identifier> = cfg.domains.iter().cloned().map(Identifier::Dns).collect();
    let mut order = account
        .new_order(&NewOrder::new(&ids))
        .await
        .map_err(|e| format!("new order: {e}"))?;
    let mut answered = Answered::default();
    let mut authorizations = order.authorizations();
    while let Some(authz) = authorizations.next().await {
        let mut authz = authz.map_err(|e| format!("authorization: {e}"))?;
        if authz.status == AuthorizationStatus::Valid {
            continue;
        }
        let kind = match cfg.challenge {
            AcmeChallenge::Http01 => ChallengeType::Http01,
            AcmeChallenge::TlsAlpn01 => ChallengeType::TlsAlpn01,
        };
        let mut challenge = authz
            .challenge(kind.clone())
            .ok_or_else(|| format!("the server offers no {kind:?} challenge"))?;
        let key_auth = challenge.key_authorization();
        let name = challenge.identifier().to_string();
        match cfg.challenge {
            AcmeChallenge::Http01 => {
                let token = challenge.token.clone();
                answered.http(token, key_auth.as_str().to_owned(), &cfg.storage)?;
            }
            AcmeChallenge::TlsAlpn01 => {
                answered.alpn(
                    name,
                    alpn_cert(
                        challenge.identifier().to_string(),
                        key_auth.digest().as_ref(),
                    )?,
                );
            }
        }
        challenge
            .set_ready()
            .await
            .map_err(|e| format!("challenge: {e}"))?;
    }
    let retries = RetryPolicy::new().timeout(Duration::from_secs(60));
    let status = order
        .poll_ready(&retries)
        .await
        .map_err(|e| format!("order: {e}"))?;
    if status != OrderStatus::Ready {
        return Err(format!("order ended {status:?}"));
    }
    let key_pem = order
        .finalize()
        .await
        .map_err(|e| format!("finalize: {e}"))?;
    let chain = order
        .poll_certificate(&retries)
        .await
        .map_err(|e| format!("certificate: {e}"))?;
    drop(answered);
    write_atomic(&stored.key(), key_pem.as_bytes())?;
    write_atomic(&stored.cert(), chain.as_bytes())?;
    Ok(())
}

/// The stored account, or a new one saved for next time.
async fn account(stored: &Stored, cfg: &AcmeConfig) -> Result<Account, String> {
    let builder = match &cfg.ca {
        Some(ca) => Account::builder_with_root(ca),
        None => Account::builder(),
    }
    .map_err(|e| format!("ACME client: {e}"))?;
    if let Ok(text) = std::fs::read_to_string(stored.account()) {
        if let Ok(creds) = serde_json::from_str::<AccountCredentials>(&text) {
            return builder
                .from_credentials(creds)
                .await
                .map_err(|e| format!("account: {e}"));
        }
    }
    let contact = cfg.email.as_ref().map(|e| format!("mailto:{e}"));
    let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
    let (account, creds) = builder
        .create(
            &NewAccount {
                contact: &contacts,
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            cfg.directory.clone(),
            None,
        )
        .await
        .map_err(|e| format!("new account: {e}"))?;
    let text = serde_json::to_string(&creds).map_err(|e| e.to_string())?;
    write_atomic(&stored.account(), text.as_bytes())?;
    Ok(account)
}

/// Writes `data` to a temporary file beside `path`, then renames it over `path`.
fn write_atomic(path: &Path, data: &[u8]) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, data)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// The self-signed certificate of a TLS-ALPN-01 answer for `name` (RFC 8737).
fn alpn_cert(name: String, digest: &[u8]) -> Result<Arc<CertifiedKey>, String> {
    let mut params =
        rcgen::CertificateParams::new(vec![name]).map_err(|e| format!("challenge cert: {e}"))?;
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest)];
    let key = rcgen::KeyPair::generate().map_err(|e| format!("challenge key: {e}"))?;
    let cert = params
        .self_signed(&key)
        .map_err(|e| format!("challenge cert: {e}"))?;
    let der = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let signer = rustls::crypto::ring::sign::any_supported_type(&der)
        .map_err(|e| format!("challenge key: {e}"))?;
    Ok(Arc::new(CertifiedKey::new(
        vec![cert.der().clone()],
        signer,
    )))
}

/// Challenge answers this issuance published; withdrawn when dropped.
#[derive(Default)]
struct Answered {
    http: Vec<(String, PathBuf)>,
    alpn: Vec<String>,
}

impl Answered {
    /// Publishes an HTTP-01 answer here and, for the rest of a fleet, in `storage`.
    fn http(&mut self, token: String, key_auth: String, storage: &str) -> Result<(), String> {
        let file = shared_token(storage, &token);
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        write_atomic(&file, key_auth.as_bytes())?;
        let c = challenges();
        lock(&c.http).insert(token.clone(), key_auth);
        c.pending.fetch_add(1, Ordering::Relaxed);
        self.http.push((token, file));
        Ok(())
    }

    fn alpn(&mut self, name: String, cert: Arc<CertifiedKey>) {
        let c = challenges();
        let name = name.to_ascii_lowercase();
        lock(&c.alpn).insert(name.clone(), cert);
        c.pending.fetch_add(1, Ordering::Relaxed);
        self.alpn.push(name);
    }
}

impl Drop for Answered {
    fn drop(&mut self) {
        let c = challenges();
        let mut http = lock(&c.http);
        for (t, file) in self.http.drain(..) {
            http.remove(&t);
            let _ = std::fs::remove_file(file);
            c.pending.fetch_sub(1, Ordering::Relaxed);
        }
        drop(http);
        let mut alpn = lock(&c.alpn);
        for n in self.alpn.drain(..) {
            alpn.remove(&n);
            c.pending.fetch_sub(1, Ordering::Relaxed);
        }
    }
}
