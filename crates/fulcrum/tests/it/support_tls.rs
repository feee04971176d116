//! Certificates made in the test (rcgen: a CA and leaves it signs), a TLS client
//! that speaks HTTP/1.1 or HTTP/2 by ALPN through hyper, and a TLS backend.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::net::{TcpListener, TcpStream};

use crate::support::*;

/// A certificate authority.
pub struct Ca {
    issuer: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
}

/// A leaf certificate with its key, as DER and PEM.
pub struct Leaf {
    pub der: CertificateDer<'static>,
    pub key: PrivatePkcs8KeyDer<'static>,
    pub cert_pem: String,
    pub key_pem: String,
}

impl Ca {
    pub fn new(name: &str) -> Self {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let key = rcgen::KeyPair::generate().unwrap();
        Self {
            issuer: rcgen::CertifiedIssuer::self_signed(params, key).unwrap(),
        }
    }

    pub fn der(&self) -> CertificateDer<'static> {
        self.issuer.der().clone()
    }

    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A server (or, with `client`, a client) certificate for `names`.
    pub fn leaf(&self, names: &[&str], client: bool) -> Leaf {
        self.leaf_with(names, client, |_| {})
    }

    /// A server certificate for `names` that expires in `days` days.
    pub fn leaf_expiring(&self, names: &[&str], days: i64) -> Leaf {
        self.leaf_with(names, false, |p| {
            let now = time::OffsetDateTime::now_utc();
            p.not_before = now - time::Duration::days(1);
            p.not_after = now + time::Duration::days(days);
        })
    }

    fn leaf_with(
        &self,
        names: &[&str],
        client: bool,
        edit: impl FnOnce(&mut rcgen::CertificateParams),
    ) -> Leaf {
        let mut params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, names[0]);
        params.extended_key_usages = vec![if client {
            rcgen::ExtendedKeyUsagePurpose::ClientAuth
        } else {
            rcgen::ExtendedKeyUsagePurpose::ServerAuth
        }];
        edit(&mut params);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            der: cert.der().clone(),
            key: PrivatePkcs8KeyDer::from(key.serialize_der()),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

impl Leaf {
    /// Writes the certificate and key as `NAME.pem` and `NAME.key` in `dir`;
    /// returns the two paths as config strings.
    pub fn write(&self, dir: &TempDir, name: &str) -> (String, String) {
        let (c, k) = (
            dir.path(&format!("{name}.pem")),
            dir.path(&format!("{name}.key")),
        );
        std::fs::write(&c, &self.cert_pem).unwrap();
        std::fs::write(&k, &self.key_pem).unwrap();
        (c.display().to_string(), k.display().to_string())
    }
}

/// A rustls client trusting `roots`, offering `alpn`, with an optional client
/// certificate.
pub fn client_config(
    roots: &[CertificateDer<'static>],
    alpn: &[&str],
    identity: Option<&Leaf>,
) -> Arc<rustls::ClientConfig> {
    let mut store = rustls::RootCertStore::empty();
    for r in roots {
        store.add(r.clone()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(store);
    let mut config = match identity {
        Some(l) => builder
            .with_client_auth_cert(vec![l.der.clone()], PrivateKeyDer::Pkcs8(l.key.clone_key()))
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    // Each connection a full handshake, so it shows the certificate served now.
    config.resumption = rustls::client::Resumption::disabled();
    Arc::new(config)
}

/// A rustls client that speaks TLS 1.2 only, trusting `roots`, offering h2.
pub fn client_config_tls12(roots: &[CertificateDer<'static>]) -> Arc<rustls::ClientConfig> {
    let mut store = rustls::RootCertStore::empty();
    for r in roots {
        store.add(r.clone()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut c = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(store)
        .with_no_client_auth();
    c.alpn_protocols = vec![b"h2".to_vec()];
    c.resumption = rustls::client::Resumption::disabled();
    Arc::new(c)
}

/// One TLS connection's outcome: the protocol agreed and the server's leaf.
pub struct Session {
    pub alpn: Option<Vec<u8>>,
    pub leaf: CertificateDer<'static>,
    pub tls: tokio_rustls::client::TlsStream<TcpStream>,
}

/// Connects to `addr` with SNI `name` (an IP address sends none).
pub async fn connect(
    addr: SocketAddr,
    name: &str,
    config: Arc<rustls::ClientConfig>,
) -> std::io::Result<Session> {
    let tcp = TcpStream::connect(addr).await?;
    let server_name = ServerName::try_from(name.to_owned()).unwrap();
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(server_name, tcp)
        .await?;
    let (_, conn) = tls.get_ref();
    Ok(Session {
        alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
        leaf: conn.peer_certificates().unwrap()[0].clone(),
        tls,
    })
}

/// GET `path` over the session (HTTP/2 if ALPN said h2): status and body.
pub async fn get_over(s: Session, host: &str, path: &str) -> hyper::Result<(u16, Bytes)> {
    get_with(s, host, path, &[]).await
}

/// [`get_over`] with extra request header fields.
pub async fn get_with(
    s: Session,
    host: &str,
    path: &str,
    fields: &[(&str, &str)],
) -> hyper::Result<(u16, Bytes)> {
    let io = hyper_util::rt::TokioIo::new(s.tls);
    let uri = format!("https://{host}{path}");
    let res = if s.alpn.as_deref() == Some(b"h2") {
        let (mut send, conn) =
            hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io).await?;
        tokio::spawn(conn);
        let req = hyper::Request::get(uri)
            .body(Full::new(Bytes::new()))
            .unwrap();
        send.send_request(req).await?
    } else {
        let (mut send, conn) = hyper::client::conn::http1::handshake(io).await?;
        tokio::spawn(conn);
        // Origin-form: an absolute target is for forward proxies, and refused.
        let mut req = hyper::Request::get(path)
            .header("host", host)
            .body(Full::new(Bytes::new()))
            .unwrap();
        for (k, v) in fields {
            req.headers_mut().append(
                hyper::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        send.send_request(req).await?
    };
    let status = res.status().as_u16();
    let body = res.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

/// An HTTPS backend: hyper over rustls with `leaf`, answering `200 <label>` and
/// the request's `x-forwarded-proto`; HTTP/2 when the client asks by ALPN;
/// requiring a client certificate from `client_ca` when given.
pub struct TlsHttpBackend {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TlsHttpBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TlsHttpBackend {
    pub async fn start(label: &'static str, leaf: &Leaf, client_ca: Option<&Ca>) -> Self {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = match client_ca {
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                roots.add(ca.der()).unwrap();
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .build()
                .unwrap();
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = builder
            .with_single_cert(
                vec![leaf.der.clone()],
                PrivateKeyDer::Pkcs8(leaf.key.clone_key()),
            )
            .unwrap();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let task = tokio::spawn(async move {
            while let Ok((io, _)) = l.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(io).await else {
                        return;
                    };
                    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
                    let svc = hyper::service::service_fn(
                        move |req: hyper::Request<hyper::body::Incoming>| {
                            let proto = req
                                .headers()
                                .get("x-forwarded-proto")
                                .map(|v| v.to_str().unwrap_or("").to_owned())
                                .unwrap_or_default();
                            let version = format!("{:?}", req.version());
                            async move {
                                Ok::<_, std::convert::Infallible>(
                                    hyper::Response::builder()
                                        .header("x-backend", label)
                                        .header("x-seen-proto", proto)
                                        .header("x-seen-version", version)
                                        .body(Full::new(Bytes::from(label)))
                                        .unwrap(),
                                )
                            }
                        },
                    );
                    serve_conn(tls, h2, svc).await;
                });
            }
        });
        Self { addr, task }
    }
}
