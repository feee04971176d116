//! TLS to backends: a pool's `tls` as a rustls client config (its CA or the
//! system's roots, a client certificate for mutual TLS, ALPN for HTTP/2), and the
//! handshake of each new backend connection. A certificate that does not verify
//! fails the connect, as a refused connection does.

use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use fulcrum_core::config::PoolTlsConfig;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore};
use tokio::net::TcpStream;

use super::certs;
use super::server::provider;
use super::stream::{handshake, HandshakeError, TlsConn};

/// Why a pool's `tls` could not be built.
pub type UpstreamError = String;

/// A pool's TLS to its backends.
#[derive(Debug)]
pub struct Upstream {
    /// ALPN as the pool speaks (`h2` or `http/1.1`).
    config: Arc<ClientConfig>,
    /// ALPN for the other protocol: health probes speak HTTP/1.1 or gRPC whatever
    /// the pool forwards with.
    other: Arc<ClientConfig>,
    h2: bool,
    sni: Option<ServerName<'static>>,
    /// Tells pooled connections of different TLS settings apart (0 is plain TCP).
    pub id: u64,
}

impl Upstream {
    /// Builds the client config; `h2` offers ALPN `h2`, else `http/1.1`.
    pub fn build(tls: &PoolTlsConfig, h2: bool) -> Result<Self, UpstreamError> {
        let builder = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| e.to_string())?;
        let builder = if tls.verify {
            let mut roots = RootCertStore::empty();
            match &tls.ca {
                Some(ca) => {
                    for c in certs::read_chain(ca).map_err(|e| format!("ca: {e}"))? {
                        roots.add(c).map_err(|e| format!("ca: {ca}: {e}"))?;
                    }
                }
                None => {
                    let found = rustls_native_certs::load_native_certs();
                    for c in found.certs {
                        let _ = roots.add(c);
                    }
                    if roots.is_empty() {
                        return Err("ca: unset, and no system roots were found".into());
                    }
                }
            }
            builder.with_root_certificates(roots)
        } else {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCert(provider())))
        };
        let mut config = match (&tls.client_cert, &tls.client_key) {
            (Some(cert), Some(key)) => {
                let chain = certs::read_chain(cert).map_err(|e| format!("client_cert: {e}"))?;
                let der = PrivateKeyDer::from_pem_file(key)
                    .map_err(|e| format!("client_key: {key}: {e:?}"))?;
                builder
                    .with_client_auth_cert(chain, der)
                    .map_err(|e| format!("client_key: {key}: {e}"))?
            }
            _ => builder.with_no_client_auth(),
        };
        let mut other = config.clone();
        config.alpn_protocols = vec![if h2 {
            b"h2".to_vec()
        } else {
            b"http/1.1".to_vec()
        }];
        other.alpn_protocols = vec![if h2 {
            b"http/1.1".to_vec()
        } else {
            b"h2".to_vec()
        }];
        let sni = match &tls.sni {
            Some(name) => Some(
                ServerName::try_from(name.clone()).map_err(|e| format!("sni: {name:?}: {e}"))?,
            ),
            None => None,
        };
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (tls, h2).hash(&mut h);
        Ok(Self {
            config: Arc::new(config),
            other: Arc::new(other),
            h2,
            sni,
            id: h.finish() | 1,
        })
    }

    /// Whether the pool forwards with HTTP/2.
    pub fn speaks_h2(&self) -> bool {
        self.h2
    }

    /// The TLS handshake over a new connection to `addr`, within `limit`, offering
    /// ALPN `h2` or `http/1.1`.
    pub async fn connect(
        &self,
        tcp: TcpStream,
        addr: SocketAddr,
        limit: Duration,
        h2: bool,
    ) -> Result<TlsConn, HandshakeError> {
        let config = if h2 == self.h2 {
            &self.config
        } else {
            &self.other
        };
        let name = self
            .sni
            .clone()
            .unwrap_or_else(|| ServerName::IpAddress(addr.ip().into()));
        let mut tls: rustls::Connection =
            rustls::ClientConnection::new(config.clone(), name)?.into();
        tokio::time::timeout(limit, handshake(&tcp, &mut tls, &[]))
            .await
            .unwrap_or(Err(HandshakeError::Timeout))?;
        Ok(TlsConn::new(tcp, tls))
    }
}

/// Accepts any certificate but still checks the handshake's signatures, so a
/// probe passes only when the backend completes a real handshake.
#[derive(Debug)]
pub struct AnyCert(pub Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
