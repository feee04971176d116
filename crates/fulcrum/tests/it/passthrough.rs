//! TLS passthrough: Fulcrum reads the ClientHello's server name without terminating
//! TLS, picks the pool by `sni`, and splices the bytes to a real rustls backend,
//! which completes the handshake with the client end to end.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::support::*;

/// A TLS server for `names` on port 0: after the handshake it writes its `label`
/// and a newline, then echoes.
struct TlsBackend {
    addr: SocketAddr,
    cert: CertificateDer<'static>,
    accepted: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl TlsBackend {
    async fn start(label: &'static str, names: &[&str]) -> Self {
        let key = rcgen::KeyPair::generate().unwrap();
        let params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        let cert = params.self_signed(&key).unwrap();
        let der = CertificateDer::from(cert.der().to_vec());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![der.clone()], key)
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        let task = tokio::spawn(async move {
            while let Ok((io, _)) = l.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(io).await else {
                        return;
                    };
                    let _ = tls.write_all(format!("{label}\n").as_bytes()).await;
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = tls.read(&mut buf).await {
                        if n == 0 || tls.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    let _ = tls.shutdown().await;
                });
            }
        });
        Self {
            addr,
            cert: der,
            accepted,
            task,
        }
    }
}

impl Drop for TlsBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A client config that trusts exactly the backends' own certificates.
fn client_config(backends: &[&TlsBackend]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for b in backends {
        roots.add(b.cert.clone()).unwrap();
    }
    Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth(),
    )
}

/// A TLS handshake with `name` through `addr`, writing the ClientHello in pieces of
/// `piece` bytes (with a pause between them, so they leave as separate segments);
/// returns the first line the backend wrote and checks an echo.
fn handshake(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    name: &str,
    piece: usize,
) -> String {
    let mut conn =
        rustls::ClientConnection::new(config, ServerName::try_from(name.to_owned()).unwrap())
            .unwrap();
    let mut tcp = std::net::TcpStream::connect(addr).unwrap();
    tcp.set_nodelay(true).unwrap();
    tcp.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut hello = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut hello).unwrap();
    }
    for part in hello.chunks(piece) {
        tcp.write_all(part).unwrap();
        if piece < hello.len() {
            // Not a readiness wait: it only makes the pieces separate segments.
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let mut tls = rustls::Stream::new(&mut conn, &mut tcp);
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\n") {
        tls.read_exact(&mut byte).unwrap();
        line.push(byte[0]);
    }
    tls.write_all(b"ping").unwrap();
    let mut back = [0u8; 4];
    tls.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"ping");
    String::from_utf8(line).unwrap().trim().to_owned()
}

fn config(a: &TlsBackend, b: &TlsBackend, default_route: bool) -> String {
    let fallback = if default_route {
        "[[routes]]\nlistener = \"tls\"\npool = \"a\"\n"
    } else {
        ""
    };
    format!(
        "workers = 1\n\n[listeners.tls]\naddress = \"127.0.0.1:0\"\nprotocol = \"tls-passthrough\"\n\
         header_timeout = \"2s\"\n\n\
         [[routes]]\nlistener = \"tls\"\nsni = \"a.example.com\"\npool = \"a\"\n\n\
         [[routes]]\nlistener = \"tls\"\nsni = \"*.b.example.com\"\npool = \"b\"\n\n{fallback}\n\
         [pools.a]\nbackends = [\"{}\"]\n\n[pools.b]\nbackends = [\"{}\"]\n",
        a.addr, b.addr
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_by_server_name_without_terminating_tls() {
    within(async {
        let a = TlsBackend::start("backend-a", &["a.example.com"]).await;
        let b = TlsBackend::start("backend-b", &["*.b.example.com"]).await;
        let f = Fulcrum::start(&config(&a, &b, false));
        let (addr, cc) = (f.addr("tls"), client_config(&[&a, &b]));
        tokio::task::spawn_blocking(move || {
            assert_eq!(
                handshake(addr, cc.clone(), "a.example.com", 1 << 16),
                "backend-a"
            );
            assert_eq!(
                handshake(addr, cc.clone(), "x.b.example.com", 1 << 16),
                "backend-b"
            );
            assert_eq!(
                handshake(addr, cc.clone(), "A.Example.COM", 1 << 16),
                "backend-a"
            );
            // A ClientHello split across several segments still routes.
            assert_eq!(
                handshake(addr, cc.clone(), "y.b.example.com", 40),
                "backend-b"
            );
            assert_eq!(handshake(addr, cc, "a.example.com", 7), "backend-a");
        })
        .await
        .unwrap();
        assert_eq!(a.accepted.load(Ordering::SeqCst), 3);
        assert_eq!(b.accepted.load(Ordering::SeqCst), 2);
        let log = f.wait_access_log(5);
        assert!(log.iter().all(|l| l["proto"] == "TLS"), "{log:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_unknown_names_get_the_connection_closed() {
    within(async {
        let a = TlsBackend::start("backend-a", &["a.example.com"]).await;
        let b = TlsBackend::start("backend-b", &["*.b.example.com"]).await;
        let f = Fulcrum::start(&config(&a, &b, false));
        let addr = f.addr("tls");
        // Not TLS: closed with nothing written back, no backend contacted.
        let answer = raw(
            addr,
            b"GET / HTTP/1.1\r\nhost: a.example.com\r\n\r\n",
            TIMEOUT,
        );
        assert_eq!(answer, "");
        // A name no route takes.
        let cc = client_config(&[&a, &b]);
        let refused = tokio::task::spawn_blocking(move || {
            let mut conn = rustls::ClientConnection::new(
                cc,
                ServerName::try_from("nope.example.org".to_owned()).unwrap(),
            )
            .unwrap();
            let mut tcp = std::net::TcpStream::connect(addr).unwrap();
            tcp.set_read_timeout(Some(TIMEOUT)).unwrap();
            conn.complete_io(&mut tcp).is_err()
        })
        .await
        .unwrap();
        assert!(refused, "a handshake with an unrouted name completed");
        assert_eq!(a.accepted.load(Ordering::SeqCst), 0);
        assert_eq!(b.accepted.load(Ordering::SeqCst), 0);

        // With a route without sni, unknown names (and none) go there.
        let g = Fulcrum::start(&config(&a, &b, true));
        let (addr, cc) = (g.addr("tls"), client_config(&[&a, &b]));
        let got = tokio::task::spawn_blocking(move || {
            // The backend's certificate does not name it: the client refuses it,
            // after Fulcrum routed it to pool a.
            let mut conn = rustls::ClientConnection::new(
                cc,
                ServerName::try_from("other.example.org".to_owned()).unwrap(),
            )
            .unwrap();
            let mut tcp = std::net::TcpStream::connect(addr).unwrap();
            tcp.set_read_timeout(Some(TIMEOUT)).unwrap();
            let _ = conn.complete_io(&mut tcp);
        });
        got.await.unwrap();
        until("pool a took the unnamed connection", || {
            a.accepted.load(Ordering::SeqCst) == 1
        })
        .await;
    })
    .await;
}
