//! Certificates from PEM files, the names they hold and when they expire, and the
//! SNI lookup over a listener's set: an exact name first, then a wildcard one label
//! up, then the listener's first certificate.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// Why a certificate or key file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// A file could not be read or holds no PEM block of the kind expected.
    #[error("{file}: {reason}")]
    File {
        /// The file, as configured.
        file: String,
        /// What was wrong with it.
        reason: String,
    },
    /// The key does not belong to the certificate, or is of an unusable kind.
    #[error("{cert}: {reason}")]
    Pair {
        /// The certificate file.
        cert: String,
        /// What was wrong.
        reason: String,
    },
}

/// One loaded certificate chain and key.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// What handshakes present.
    pub key: Arc<CertifiedKey>,
    /// DNS names of the leaf (subject alternative names, or its common name),
    /// lowercase; `*.example.com` for wildcards.
    pub names: Vec<String>,
    /// The leaf's end of validity, in seconds since the Unix epoch.
    pub not_after: i64,
    /// The files, as configured, and their modification times when loaded.
    pub cert_file: String,
    /// See `cert_file`.
    pub key_file: String,
    stamps: (Option<SystemTime>, Option<SystemTime>),
}

impl Loaded {
    /// Whether either file changed since it was loaded.
    pub fn changed(&self) -> bool {
        stamps(&self.cert_file, &self.key_file) != self.stamps
    }
}

fn stamps(cert: &str, key: &str) -> (Option<SystemTime>, Option<SystemTime>) {
    let modified = |f: &str| std::fs::metadata(f).and_then(|m| m.modified()).ok();
    (modified(cert), modified(key))
}

/// Reads a PEM chain (leaf first) and its private key.
pub fn load(cert: &str, key: &str) -> Result<Loaded, CertError> {
    let file_err = |file: &str, reason: String| CertError::File {
        file: file.to_owned(),
        reason,
    };
    let stamps = stamps(cert, key);
    let chain = read_chain(cert)?;
    let der = PrivateKeyDer::from_pem_file(key).map_err(|e| file_err(key, pem_reason(e)))?;
    let signer = rustls::crypto::ring::sign::any_supported_type(&der)
        .map_err(|e| file_err(key, format!("unusable private key: {e}")))?;
    let certified = CertifiedKey::new(chain, signer);
    certified.keys_match().map_err(|e| CertError::Pair {
        cert: cert.to_owned(),
        reason: format!("the key in {key} does not belong to this certificate ({e})"),
    })?;
    let leaf = certified.end_entity_cert().map_err(|e| CertError::Pair {
        cert: cert.to_owned(),
        reason: e.to_string(),
    })?;
    let (names, not_after) = describe(leaf).map_err(|reason| file_err(cert, reason))?;
    Ok(Loaded {
        key: Arc::new(certified),
        names,
        not_after,
        cert_file: cert.to_owned(),
        key_file: key.to_owned(),
        stamps,
    })
}

/// Every certificate of a PEM file (a chain, or a set of authorities).
pub fn read_chain(file: &str) -> Result<Vec<CertificateDer<'static>>, CertError> {
    let err = |reason: String| CertError::File {
        file: file.to_owned(),
        reason,
    };
    let chain = CertificateDer::pem_file_iter(file)
        .map_err(|e| err(pem_reason(e)))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(pem_reason(e)))?;
    if chain.is_empty() {
        return Err(err("no CERTIFICATE block".into()));
    }
    Ok(chain)
}

fn pem_reason(e: rustls::pki_types::pem::Error) -> String {
    match e {
        rustls::pki_types::pem::Error::Io(e) => e.to_string(),
        rustls::pki_types::pem::Error::NoItemsFound => "no PEM block of the expected kind".into(),
        other => format!("bad PEM: {other:?}"),
    }
}

/// The DNS names and the end of validity of a DER certificate.
pub fn describe(der: &[u8]) -> Result<(Vec<String>, i64), String> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|e| format!("not a certificate: {e}"))?;
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(n) = name {
                names.push(n.to_ascii_lowercase());
            }
        }
    }
    if names.is_empty() {
        names.extend(
            cert.subject()
                .iter_common_name()
                .filter_map(|cn| cn.as_str().ok())
                .map(str::to_ascii_lowercase),
        );
    }
    Ok((names, cert.validity().not_after.timestamp()))
}

/// The subject of a DER certificate as text (`CN=client,O=Example`).
pub fn subject(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(cert.subject().to_string())
}

/// A listener's certificates, indexed by name.
#[derive(Debug)]
pub struct CertSet {
    /// In config order; the first is the default.
    pub certs: Vec<Loaded>,
    exact: HashMap<String, usize>,
    wildcard: HashMap<String, usize>,
}

impl CertSet {
    /// Indexes `certs`; an earlier certificate wins a name two of them hold.
    pub fn new(certs: Vec<Loaded>) -> Self {
        let (mut exact, mut wildcard) = (HashMap::new(), HashMap::new());
        for (i, c) in certs.iter().enumerate() {
            for name in &c.names {
                match name.strip_prefix("*.") {
                    Some(parent) => wildcard.entry(parent.to_owned()).or_insert(i),
                    None => exact.entry(name.clone()).or_insert(i),
                };
            }
        }
        Self {
            certs,
            exact,
            wildcard,
        }
    }

    /// The certificate for `sni`: exact, then wildcard (one label), then the default.
    pub fn find(&self, sni: Option<&str>) -> Option<&Loaded> {
        let index = sni.and_then(|name| {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            self.exact.get(&name).copied().or_else(|| {
                let (_, parent) = name.split_once('.')?;
                self.wildcard.get(parent).copied()
            })
        });
        self.certs.get(index.unwrap_or(0))
    }
}

/// The resolver rustls asks on each handshake; its set is swapped when files change.
#[derive(Debug)]
pub struct Resolver {
    /// The current certificates.
    pub set: ArcSwap<CertSet>,
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        // An ACME server checking a TLS-ALPN-01 challenge (RFC 8737).
        let acme = hello
            .alpn()
            .is_some_and(|mut p| p.any(|p| p == super::acme::ACME_TLS_ALPN));
        if acme {
            return super::acme::challenges().alpn01(hello.server_name()?);
        }
        self.set
            .load()
            .find(hello.server_name())
            .map(|c| c.key.clone())
    }
}
