//! TLS termination: an https listener's rustls config (its certificates behind a
//! swappable resolver, ALPN h2 and http/1.1, TLS 1.2 and 1.3 with ring's modern
//! suites, tickets from one rotating key for the process), the handshake of each
//! connection with its counters, and the watcher that reloads changed files.

use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use fulcrum_core::config::{ListenerTlsConfig, TlsVersion};
use rustls::server::{ProducesTickets, WebPkiClientVerifier};
use rustls::{RootCertStore, ServerConfig};
use tokio::net::TcpStream;

use super::certs::{self, CertSet, Resolver};
use super::stream::{handshake, HandshakeError, TlsConn};
use crate::stats::HandshakeStats;

/// An https listener's TLS.
#[derive(Debug)]
pub struct Terminator {
    /// What each handshake uses.
    pub config: Arc<ServerConfig>,
    /// The same certificates and settings for QUIC (HTTP/3): ALPN `h3`, and TLS
    /// 1.3 whatever `min_version` says, as QUIC requires.
    pub quic: Arc<ServerConfig>,
    /// Its certificates, swapped when their files change.
    pub resolver: Arc<Resolver>,
    /// The request header (lowercase) that carries a verified client certificate's
    /// subject.
    pub subject_header: Option<String>,
    /// How often the files are checked.
    pub watch_interval: Duration,
}

/// The rustls crypto provider: ring, which builds without cmake, with the
/// AES-128-GCM suites first (the server picks in this order). Their SHA-256 key
/// schedule runs on the CPU's SHA instructions where SHA-384's cannot, and
/// AES-128 takes 10 rounds to AES-256's 14: a profile of resumed handshakes had
/// 15% of the proxy's time in SHA-512 blocks (README, "Performance").
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    use rustls::CipherSuite as S;
    let mut p = rustls::crypto::ring::default_provider();
    p.cipher_suites.sort_by_key(|s| {
        !matches!(
            s.suite(),
            S::TLS13_AES_128_GCM_SHA256
                | S::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
                | S::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
        )
    });
    Arc::new(p)
}

/// Session tickets: one rotating key set for the whole process, so a client
/// resumes on any worker and across reloads.
fn ticketer() -> Option<Arc<dyn ProducesTickets>> {
    static TICKETER: OnceLock<Option<Arc<dyn ProducesTickets>>> = OnceLock::new();
    TICKETER
        .get_or_init(|| rustls::crypto::ring::Ticketer::new().ok())
        .clone()
}

/// Sessions of QUIC clients that may resume with 0-RTT: one cache for the whole
/// process, so a client resumes on any worker and across reloads.
fn quic_sessions() -> Arc<dyn rustls::server::StoresServerSessions> {
    static SESSIONS: OnceLock<Arc<rustls::server::ServerSessionMemoryCache>> = OnceLock::new();
    SESSIONS
        .get_or_init(|| rustls::server::ServerSessionMemoryCache::new(QUIC_SESSIONS))
        .clone()
}

/// Sessions that cache holds (a few hundred bytes each).
const QUIC_SESSIONS: usize = 8192;

/// The versions served by `min_version`.
const BOTH: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];
const TLS13_ONLY: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];

impl Terminator {
    /// Loads the certificates and the client CA of `tls`; errors name the file.
    /// `early_data`: QUIC connections may resume with 0-RTT.
    pub fn build(tls: &ListenerTlsConfig, early_data: bool) -> Result<Self, String> {
        let mut loaded = Vec::new();
        for (i, c) in tls.certificates.iter().enumerate() {
            loaded
                .push(certs::load(&c.cert, &c.key).map_err(|e| format!("certificates[{i}]: {e}"))?);
        }
        // A certificate ACME stored earlier serves at once (until then, only
        // clients whose name another certificate holds get a handshake).
        if let Some(acme) = &tls.acme {
            let (cert, key) = super::acme::stored_files(acme);
            if let Ok(l) = certs::load(&cert, &key) {
                loaded.push(l);
            }
        }
        let resolver = Arc::new(Resolver {
            set: ArcSwap::from_pointee(CertSet::new(loaded)),
        });
        let builder = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(match tls.min_version {
                TlsVersion::V1_2 => BOTH,
                TlsVersion::V1_3 => TLS13_ONLY,
            })
            .map_err(|e| e.to_string())?;
        let builder = match &tls.client_auth {
            None => builder.with_no_client_auth(),
            Some(auth) => {
                let mut roots = RootCertStore::empty();
                let cas =
                    certs::read_chain(&auth.ca).map_err(|e| format!("client_auth.ca: {e}"))?;
                for ca in cas {
                    roots
                        .add(ca)
                        .map_err(|e| format!("client_auth.ca: {}: {e}", auth.ca))?;
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider());
                let verifier = if auth.required {
                    verifier.build()
                } else {
                    verifier.allow_unauthenticated().build()
                };
                builder.with_client_cert_verifier(
                    verifier.map_err(|e| format!("client_auth.ca: {}: {e}", auth.ca))?,
                )
            }
        };
        let mut config = builder.with_cert_resolver(resolver.clone());
        config.ignore_client_order = true;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        if tls
            .acme
            .as_ref()
            .is_some_and(|a| a.challenge == fulcrum_core::config::AcmeChallenge::TlsAlpn01)
        {
            config
                .alpn_protocols
                .push(super::acme::ACME_TLS_ALPN.to_vec());
        }
        // Before the ticketer: rustls takes 0-RTT only on stateful resumption, where
        // each ticket is used once, so a replayed handshake gets no early data.
        let mut quic = config.clone();
        if !tls.resumption {
            config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
            config.send_tls13_tickets = 0;
        } else if let Some(t) = ticketer() {
            config.ticketer = t;
        }
        if early_data && tls.resumption {
            quic.session_storage = quic_sessions();
            // QUIC allows no other size (RFC 9001 §4.6.1).
            quic.max_early_data_size = u32::MAX;
        } else {
            quic.session_storage = config.session_storage.clone();
            quic.send_tls13_tickets = config.send_tls13_tickets;
            quic.ticketer = config.ticketer.clone();
        }
        quic.alpn_protocols = vec![b"h3".to_vec()];
        Ok(Self {
            config: Arc::new(config),
            quic: Arc::new(quic),
            resolver,
            subject_header: tls
                .client_auth
                .as_ref()
                .map(|a| a.header.to_ascii_lowercase()),
            watch_interval: tls.watch_interval.get(),
        })
    }

    /// Adds `loaded`, replacing the certificate read from the same file.
    pub fn put(&self, loaded: certs::Loaded) {
        let current = self.resolver.set.load();
        if current
            .certs
            .iter()
            .any(|c| c.cert_file == loaded.cert_file && c.key.cert == loaded.key.cert)
        {
            return;
        }
        let mut fresh: Vec<certs::Loaded> = current
            .certs
            .iter()
            .filter(|c| c.cert_file != loaded.cert_file)
            .cloned()
            .collect();
        fresh.push(loaded);
        self.resolver.set.store(Arc::new(CertSet::new(fresh)));
    }

    /// Reloads the certificates whose files changed; a file that fails keeps the
    /// old set and is reported. Returns whether the set was swapped.
    pub fn refresh(&self, listener: &str) -> bool {
        let current = self.resolver.set.load();
        if !current.certs.iter().any(certs::Loaded::changed) {
            return false;
        }
        let mut fresh = Vec::with_capacity(current.certs.len());
        for c in &current.certs {
            match certs::load(&c.cert_file, &c.key_file) {
                Ok(l) => fresh.push(l),
                Err(error) => {
                    tracing::error!(listener, %error, "certificate not reloaded; the old one stays");
                    return false;
                }
            }
        }
        tracing::info!(listener, "certificates reloaded");
        self.resolver.set.store(Arc::new(CertSet::new(fresh)));
        true
    }
}

/// The [`crate::stats::FAILURE_REASONS`] index a failed handshake is counted under.
fn failure_reason(e: &HandshakeError) -> usize {
    match e {
        HandshakeError::Timeout => 0,
        HandshakeError::Io(_) => 1,
        HandshakeError::Tls(t) => match t {
            rustls::Error::PeerIncompatible(_)
            | rustls::Error::PeerMisbehaved(_)
            | rustls::Error::InappropriateMessage { .. }
            | rustls::Error::InappropriateHandshakeMessage { .. }
            | rustls::Error::InvalidMessage(_)
            | rustls::Error::NoApplicationProtocol => 2,
            rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented => 3,
            rustls::Error::AlertReceived(_) => 4,
            _ => 5,
        },
    }
}

/// A connection after its handshake.
pub enum Accepted {
    /// An ACME server's TLS-ALPN-01 check: the handshake was all it wanted.
    Challenge,
    /// The client asked for HTTP/2 by ALPN.
    H2(TlsConn),
    /// HTTP/1.1 (by ALPN, or no ALPN).
    H1(TlsConn),
}

/// Runs the server handshake on `tcp` within `limit`, counting it in `stats`.
pub async fn accept(
    t: &Terminator,
    tcp: TcpStream,
    early: &[u8],
    limit: Duration,
    stats: &HandshakeStats,
) -> Result<Accepted, HandshakeError> {
    let mut tls: rustls::Connection = rustls::ServerConnection::new(t.config.clone())?.into();
    let done = tokio::time::timeout(limit, handshake(&tcp, &mut tls, early))
        .await
        .unwrap_or(Err(HandshakeError::Timeout));
    if let Err(e) = done {
        stats.fail(failure_reason(&e));
        return Err(e);
    }
    stats.ok.fetch_add(1, Ordering::Relaxed);
    if tls.handshake_kind() == Some(rustls::HandshakeKind::Resumed) {
        stats.resumed.fetch_add(1, Ordering::Relaxed);
    }
    if tls.alpn_protocol() == Some(super::acme::ACME_TLS_ALPN) {
        return Ok(Accepted::Challenge);
    }
    let h2 = tls.alpn_protocol() == Some(b"h2");
    let mut conn = TlsConn::new(tcp, tls);
    if t.subject_header.is_some() {
        conn.keep_subject();
    }
    Ok(if h2 {
        Accepted::H2(conn)
    } else {
        Accepted::H1(conn)
    })
}
