//! TLS termination and re-encryption with real handshakes: certificates made in
//! the test, rustls clients and backends, hyper speaking HTTP/1.1 or HTTP/2 over
//! them as ALPN decides.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::support::*;
use crate::support_tls::*;

/// A config with an https listener `secure` over `certs` (`(cert, key)` paths,
/// the first the default) plus `tls_extra` in its tls table, an admin listener, and
/// one pool `p` over `backend`.
fn https_config(certs: &[(String, String)], tls_extra: &str, backend: &Backend) -> String {
    let list: Vec<String> = certs
        .iter()
        .map(|(c, k)| format!("{{ cert = {c:?}, key = {k:?} }}"))
        .collect();
    format!(
        "workers = 1\n[admin]\naddress = \"127.0.0.1:0\"\n\n[listeners.secure]\naddress = \"127.0.0.1:0\"\n\
         protocol = \"https\"\ntls = {{ certificates = [{}]{tls_extra} }}\n\n\
         [[routes]]\npool = \"p\"\n\n[pools.p]\nbackends = [{}]\n",
        list.join(", "),
        quoted(backend)
    )
}

async fn metrics(f: &Fulcrum) -> String {
    let admin = f.admin_addr().await;
    let (_, _, body) = get(&client(), &format!("http://{admin}/metrics")).await;
    String::from_utf8(body.to_vec()).unwrap()
}

#[tokio::test]
async fn min_version_1_3_refuses_tls_1_2() {
    within(async {
        let ca = Ca::new("Test CA");
        let dir = TempDir::new();
        let backend = Backend::start("app").await;
        let f = Fulcrum::start(&https_config(
            &[ca.leaf(&["a.test"], false).write(&dir, "a")],
            ", min_version = \"1.3\"",
            &backend,
        ));
        let addr = f.addr("secure");
        assert!(connect(addr, "a.test", client_config_tls12(&[ca.der()]))
            .await
            .is_err());
        let s = connect(addr, "a.test", client_config(&[ca.der()], &["h2"], None))
            .await
            .unwrap();
        assert_eq!(
            s.tls.get_ref().1.protocol_version(),
            Some(rustls::ProtocolVersion::TLSv1_3)
        );
        assert_eq!(get_over(s, "a.test", "/").await.unwrap().0, 200);
        let m = metrics(&f).await;
        assert!(
            m.contains("fulcrum_tls_handshakes_total{listener=\"secure\",result=\"protocol\"} 1"),
            "{m}"
        );
        assert!(
            m.contains("fulcrum_tls_handshakes_total{listener=\"secure\",result=\"ok\"} 1"),
            "{m}"
        );
    })
    .await;
}

/// Reads until the server closes; the bytes read.
async fn read_to_close(s: &mut tokio::net::TcpStream) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test]
async fn slow_and_broken_clients_are_closed_and_others_served() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    within(async {
        let ca = Ca::new("Test CA");
        let dir = TempDir::new();
        let backend = Backend::start("app").await;
        let config = https_config(
            &[ca.leaf(&["a.test"], false).write(&dir, "a")],
            "",
            &backend,
        )
        .replace(
            "protocol = \"https\"\n",
            "protocol = \"https\"\nheader_timeout = \"2s\"\n",
        );
        let f = Fulcrum::start(&config);
        let addr = f.addr("secure");
        let good = client_config(&[ca.der()], &["http/1.1"], None);

        // 100 connections that never say anything, and one that stops halfway
        // through its ClientHello: none blocks a client that does handshake.
        let mut silent = Vec::new();
        for _ in 0..100 {
            silent.push(tokio::net::TcpStream::connect(addr).await.unwrap());
        }
        let mut half = tokio::net::TcpStream::connect(addr).await.unwrap();
        half.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01])
            .await
            .unwrap();
        let s = connect(addr, "a.test", good.clone()).await.unwrap();
        assert_eq!(get_over(s, "a.test", "/").await.unwrap().0, 200);
        // Each is closed by header_timeout, with nothing but (at most) an alert.
        for mut s in silent.into_iter().chain([half]) {
            let got = read_to_close(&mut s).await;
            assert!(got.is_empty() || got[0] == 0x15, "{got:?}");
        }

        // A record that does not decrypt, after a good handshake: an alert and a
        // close for that connection only.
        let mut s = connect(addr, "a.test", good.clone()).await.unwrap();
        let mut garbage = vec![0x17, 0x03, 0x03, 0x00, 0x20];
        garbage.extend_from_slice(&[0x5a; 32]);
        s.tls.get_mut().0.write_all(&garbage).await.unwrap();
        let mut rest = Vec::new();
        let closed = s.tls.read_to_end(&mut rest).await;
        assert!(closed.is_err() || rest.is_empty(), "{closed:?} {rest:?}");
        let s = connect(addr, "a.test", good).await.unwrap();
        assert_eq!(get_over(s, "a.test", "/").await.unwrap().0, 200);

        let m = metrics(&f).await;
        assert!(
            m.contains("fulcrum_tls_handshakes_total{listener=\"secure\",result=\"timeout\"} 101"),
            "{m}"
        );
        assert!(
            m.contains("fulcrum_tls_handshakes_total{listener=\"secure\",result=\"ok\"} 3"),
            "{m}"
        );
    })
    .await;
}

#[tokio::test]
async fn sni_picks_the_certificate_and_alpn_the_protocol() {
    within(async {
        let ca = Ca::new("Test CA");
        let a = ca.leaf(&["a.test", "*.wild.test", "127.0.0.1"], false);
        let b = ca.leaf(&["b.test"], false);
        let dir = TempDir::new();
        let backend = Backend::start("app").await;
        let f = Fulcrum::start(&https_config(
            &[a.write(&dir, "a"), b.write(&dir, "b")],
            "",
            &backend,
        ));
        let addr = f.addr("secure");
        let h2 = client_config(&[ca.der()], &["h2", "http/1.1"], None);
        for (name, want) in [("a.test", &a.der), ("x.wild.test", &a.der), ("b.test", &b.der)] {
            let s = connect(addr, name, h2.clone()).await.unwrap();
            assert_eq!(&s.leaf, want, "{name}");
            assert_eq!(s.alpn.as_deref(), Some(&b"h2"[..]), "{name}");
            let (status, body) = get_over(s, name, "/").await.unwrap();
            assert_eq!((status, &body[..]), (200, &b"app"[..]), "{name} {:?} {}", f.access_log(), std::fs::read_to_string(&f.config).unwrap());
            assert_eq!(backend.last_header("x-forwarded-proto").as_deref(), Some("https"));
        }
        // An IP address sends no SNI: the first certificate answers. HTTP/1.1 by ALPN.
        let h1 = client_config(&[ca.der()], &["http/1.1"], None);
        let s = connect(addr, "127.0.0.1", h1).await.unwrap();
        assert_eq!(s.leaf, a.der);
        assert_eq!(s.alpn.as_deref(), Some(&b"http/1.1"[..]));
        let (status, body) = get_over(s, "a.test", "/").await.unwrap();
        assert_eq!((status, &body[..]), (200, &b"app"[..]));
        assert_eq!(backend.last_header("x-forwarded-proto").as_deref(), Some("https"));
        // Session tickets: a second connection resumes without a full handshake.
        let mut resuming = (*client_config(&[ca.der()], &["h2"], None)).clone();
        resuming.resumption = rustls::client::Resumption::default();
        let resuming = Arc::new(resuming);
        let s = connect(addr, "b.test", resuming.clone()).await.unwrap();
        assert_eq!(get_over(s, "b.test", "/").await.unwrap().0, 200);
        let s = connect(addr, "b.test", resuming).await.unwrap();
        let kind = s.tls.get_ref().1.handshake_kind();
        assert_eq!(kind, Some(rustls::HandshakeKind::Resumed));
        assert_eq!(get_over(s, "b.test", "/").await.unwrap().0, 200);
        // TLS 1.2 is served too.
        let tls12 = client_config_tls12(&[ca.der()]);
        let s = connect(addr, "b.test", tls12).await.unwrap();
        let version = s.tls.get_ref().1.protocol_version();
        assert_eq!(version, Some(rustls::ProtocolVersion::TLSv1_2));
        assert_eq!(get_over(s, "b.test", "/").await.unwrap().0, 200);
        // A client that trusts another authority fails its handshake.
        let other = client_config(&[Ca::new("Other").der()], &["h2"], None);
        assert!(connect(addr, "a.test", other).await.is_err());
        // Plain HTTP on the TLS port is refused, and the process keeps serving.
        let reply = raw(addr, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", std::time::Duration::from_secs(10));
        assert!(!reply.contains("200"), "{reply}");
        let m = metrics(&f).await;
        assert!(m.contains("fulcrum_tls_handshakes_total{listener=\"secure\",result=\"ok\"} 7"), "{m}");
        assert!(!m.contains("result=\"protocol\"} 0"), "{m}");
        assert!(m.contains("fulcrum_tls_resumed_handshakes_total{listener=\"secure\"} 1"), "{m}");
        assert!(m.contains("fulcrum_tls_certificate_expiry_seconds{listener=\"secure\",certificate=\"a.test\"}"), "{m}");
        assert!(m.contains("fulcrum_access_log_dropped_lines_total 0"), "{m}");
        // The access log names each request's TLS session.
        let log = f.wait_access_log(7);
        let of = |host: &str, proto: &str, version: &str| {
            log.iter().any(|l| {
                l["host"] == host && l["proto"] == proto && l["tls_version"] == version
                    && l["tls_cipher"].as_str().is_some_and(|c| c.starts_with("TLS"))
            })
        };
        assert!(of("x.wild.test", "HTTP/2", "TLSv1.3"), "{log:?}");
        assert!(of("b.test", "HTTP/2", "TLSv1.2"), "{log:?}");
        assert!(of("a.test", "HTTP/1.1", "TLSv1.3"), "{log:?}");
        assert!(log.iter().any(|l| l["sni"] == "x.wild.test"), "{log:?}");
        // The IP-address client sent no server name.
        assert!(log.iter().any(|l| l["proto"] == "HTTP/1.1" && l["sni"].is_null()), "{log:?}");
        // The API (and the dashboard, which reads it) lists the certificates.
        let admin = f.admin_addr().await;
        let (_, _, status) = get(&client(), &format!("http://{admin}/api/status")).await;
        let status: serde_json::Value = serde_json::from_slice(&status).unwrap();
        let certs = status["certificates"].as_array().unwrap();
        assert_eq!(certs.len(), 2, "{status}");
        assert_eq!(certs[0]["listener"], "secure");
        assert_eq!(certs[0]["names"], serde_json::json!(["a.test", "*.wild.test"]));
        let left = certs[1]["seconds_left"].as_i64().unwrap();
        assert!(left > 0, "{status}");
    })
    .await;
}

#[tokio::test]
async fn a_changed_certificate_is_served_without_a_failed_request() {
    within(async {
        let ca = Ca::new("Test CA");
        let first = ca.leaf(&["a.test"], false);
        let dir = TempDir::new();
        let backend = Backend::start("app").await;
        let files = first.write(&dir, "a");
        let f = Fulcrum::start(&https_config(
            std::slice::from_ref(&files),
            ", watch_interval = \"50ms\"",
            &backend,
        ));
        let addr = f.addr("secure");
        let config = client_config(&[ca.der()], &["h2", "http/1.1"], None);
        let (stop, ok, failed) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicUsize::new(0)),
            Arc::new(Mutex::new(Vec::<String>::new())),
        );
        let mut load = Vec::new();
        for _ in 0..4 {
            let (stop, ok, failed, config) =
                (stop.clone(), ok.clone(), failed.clone(), config.clone());
            load.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let r = async {
                        let s = connect(addr, "a.test", config.clone()).await?;
                        get_over(s, "a.test", "/")
                            .await
                            .map_err(std::io::Error::other)
                    }
                    .await;
                    match r {
                        Ok((200, _)) => drop(ok.fetch_add(1, Ordering::Relaxed)),
                        other => failed.lock().unwrap().push(format!("{other:?}")),
                    }
                }
            }));
        }
        until("requests flowing", || ok.load(Ordering::Relaxed) >= 20).await;
        // A connection open across the swap keeps working.
        let held = connect(addr, "a.test", config.clone()).await.unwrap();
        let io = hyper_util::rt::TokioIo::new(held.tls);
        let (mut held, conn) =
            hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
                .await
                .unwrap();
        tokio::spawn(conn);
        let request = || {
            hyper::Request::get("https://a.test/")
                .body(http_body_util::Full::new(bytes::Bytes::new()))
                .unwrap()
        };
        assert_eq!(held.send_request(request()).await.unwrap().status(), 200);
        // A new key and certificate for the same name, written in place.
        let second = ca.leaf(&["a.test"], false);
        second.write(&dir, "a");
        loop {
            let s = connect(addr, "a.test", config.clone()).await.unwrap();
            if s.leaf == second.der {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(held.send_request(request()).await.unwrap().status(), 200);
        let before = ok.load(Ordering::Relaxed);
        until("requests after the swap", || {
            ok.load(Ordering::Relaxed) >= before + 20
        })
        .await;
        stop.store(true, Ordering::Relaxed);
        for t in load {
            t.await.unwrap();
        }
        assert_eq!(failed.lock().unwrap().clone(), Vec::<String>::new());
        // A broken file is reported and the certificate in use stays.
        let skip = f.log.len();
        std::fs::write(&files.0, "not a certificate").unwrap();
        f.wait_line("certificate not reloaded", skip).await;
        let s = connect(addr, "a.test", config.clone()).await.unwrap();
        assert_eq!(s.leaf, second.der);
        assert_eq!(get_over(s, "a.test", "/").await.unwrap().0, 200);
    })
    .await;
}

#[tokio::test]
async fn client_certificates_are_required_and_verified() {
    within(async {
        let ca = Ca::new("Test CA");
        let server = ca.leaf(&["a.test"], false);
        let clients = Ca::new("Client CA");
        let dir = TempDir::new();
        let ca_file = dir.path("clients.pem");
        std::fs::write(&ca_file, clients.pem()).unwrap();
        let backend = Backend::start("app").await;
        let f = Fulcrum::start(&https_config(
            &[server.write(&dir, "a")],
            &format!(
                ", client_auth = {{ ca = {:?} }}",
                ca_file.display().to_string()
            ),
            &backend,
        ));
        let addr = f.addr("secure");
        let attempt = |config: Arc<rustls::ClientConfig>| async move {
            let s = connect(addr, "a.test", config).await?;
            get_over(s, "a.test", "/")
                .await
                .map_err(std::io::Error::other)
        };
        let good = clients.leaf(&["client.test"], true);
        let ok = attempt(client_config(&[ca.der()], &["h2"], Some(&good))).await;
        assert_eq!(ok.unwrap().0, 200);
        let ok = attempt(client_config(&[ca.der()], &["http/1.1"], Some(&good))).await;
        assert_eq!(ok.unwrap().0, 200);
        // No certificate, or one from another authority: refused.
        assert!(attempt(client_config(&[ca.der()], &["h2"], None))
            .await
            .is_err());
        let stranger = Ca::new("Stranger").leaf(&["client.test"], true);
        assert!(
            attempt(client_config(&[ca.der()], &["h2"], Some(&stranger)))
                .await
                .is_err()
        );
        assert_eq!(backend.requests(), 2);
        let m = metrics(&f).await;
        assert!(m.contains("result=\"certificate\"} 2"), "{m}");
    })
    .await;
}

#[tokio::test]
async fn the_verified_subject_routes_and_reaches_the_backend() {
    within(async {
        let ca = Ca::new("Test CA");
        let clients = Ca::new("Client CA");
        let dir = TempDir::new();
        let ca_file = dir.path("clients.pem");
        std::fs::write(&ca_file, clients.pem()).unwrap();
        let (cert, key) = ca.leaf(&["a.test"], false).write(&dir, "a");
        let (known, anon) = (Backend::start("known").await, Backend::start("anon").await);
        let f = Fulcrum::start(&format!(
            "workers = 1\n[listeners.secure]\naddress = \"127.0.0.1:0\"\nprotocol = \"https\"\n\
             tls = {{ certificates = [{{ cert = {cert:?}, key = {key:?} }}], client_auth = {{ \
             ca = {:?}, required = false, header = \"X-Client-Subject\" }} }}\n\n\
             [[routes]]\nheader = {{ x-client-subject = \"~CN=client\\\\.test\" }}\npool = \"known\"\n\
             [[routes]]\npool = \"anon\"\n\n\
             [pools.known]\nbackends = [{}]\n[pools.anon]\nbackends = [{}]\n",
            ca_file.display().to_string(),
            quoted(&known),
            quoted(&anon)
        ));
        let addr = f.addr("secure");
        let good = clients.leaf(&["client.test"], true);
        let spoof = [("x-client-subject", "CN=client.test"), ("x_client_subject", "CN=client.test")];
        for alpn in ["h2", "http/1.1"] {
            let with_cert = client_config(&[ca.der()], &[alpn], Some(&good));
            let s = connect(addr, "a.test", with_cert).await.unwrap();
            let (status, body) = get_with(s, "a.test", "/", &spoof).await.unwrap();
            assert_eq!((status, &body[..]), (200, &b"known"[..]), "{alpn}");
            assert_eq!(known.last_header("x-client-subject").as_deref(), Some("CN=client.test"));
            // Without a certificate (allowed here), a client's own header is dropped.
            let s = connect(addr, "a.test", client_config(&[ca.der()], &[alpn], None))
                .await
                .unwrap();
            let (status, body) = get_with(s, "a.test", "/", &spoof).await.unwrap();
            assert_eq!((status, &body[..]), (200, &b"anon"[..]), "{alpn}");
            assert_eq!(anon.last_header("x-client-subject"), None, "{alpn}");
            assert_eq!(anon.last_header("x_client_subject"), None, "{alpn}");
        }
    })
    .await;
}

/// GET `url`: status, and the backend's `x-seen-version`.
async fn version_of(url: &str) -> (u16, String) {
    let res = client().get(url.parse().unwrap()).await.unwrap();
    let v = res
        .headers()
        .get("x-seen-version")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (res.status().as_u16(), v)
}

#[tokio::test]
async fn backends_over_tls_are_verified_and_take_client_certificates() {
    within(async {
        let ca = Ca::new("Backend CA");
        let other = Ca::new("Other CA");
        let proxy_ca = Ca::new("Proxy CA");
        let leaf = ca.leaf(&["backend.test"], false);
        let plain = TlsHttpBackend::start("tls", &leaf, None).await;
        let strict = TlsHttpBackend::start("mtls", &leaf, Some(&proxy_ca)).await;
        let dir = TempDir::new();
        let (ca_file, other_file) = (dir.path("ca.pem"), dir.path("other.pem"));
        std::fs::write(&ca_file, ca.pem()).unwrap();
        std::fs::write(&other_file, other.pem()).unwrap();
        let (cc, ck) = proxy_ca.leaf(&["proxy.test"], true).write(&dir, "proxy");
        let (ca_file, other_file) = (
            ca_file.display().to_string(),
            other_file.display().to_string(),
        );
        let tls = format!("sni = \"backend.test\", ca = {ca_file:?}");
        let pool = |name: &str, addr: std::net::SocketAddr, extra: &str| {
            format!("[pools.{name}]\nbackends = [\"{addr}\"]\n{extra}\n")
        };
        let config = format!(
            "workers = 1\n[admin]\naddress = \"127.0.0.1:0\"\n[listeners.public]\naddress = \"127.0.0.1:0\"\n\n\
             [[routes]]\npath_prefix = \"/good\"\npool = \"good\"\n\
             [[routes]]\npath_prefix = \"/h2\"\npool = \"h2\"\n\
             [[routes]]\npath_prefix = \"/bad\"\npool = \"bad\"\n\
             [[routes]]\npath_prefix = \"/mtls\"\npool = \"mtls\"\n\
             [[routes]]\npath_prefix = \"/nocert\"\npool = \"nocert\"\n\n{}{}{}{}{}{}",
            pool(
                "good",
                plain.addr,
                &format!("tls = {{ {tls} }}\nhealth = {{ path = \"/\", interval = \"200ms\", timeout = \"200ms\" }}")
            ),
            pool(
                "probed",
                plain.addr,
                &format!(
                    "tls = {{ sni = \"backend.test\", ca = {other_file:?} }}\n\
                     health = {{ path = \"/\", interval = \"200ms\", timeout = \"200ms\" }}"
                )
            ),
            pool(
                "h2",
                plain.addr,
                &format!("protocol = \"h2\"\ntls = {{ {tls} }}")
            ),
            pool(
                "bad",
                plain.addr,
                &format!("tls = {{ sni = \"backend.test\", ca = {other_file:?} }}")
            ),
            pool(
                "mtls",
                strict.addr,
                &format!("tls = {{ {tls}, client_cert = {cc:?}, client_key = {ck:?} }}")
            ),
            pool("nocert", strict.addr, &format!("tls = {{ {tls} }}")),
        );
        let f = Fulcrum::start(&config);
        let url = f.url("public");
        // A checked pool serves once its probes (over TLS) have passed.
        while version_of(&format!("{url}/good")).await.0 != 200 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        // Twice each: the second request reuses the pooled TLS connection.
        for _ in 0..2 {
            assert_eq!(
                version_of(&format!("{url}/good")).await,
                (200, "HTTP/1.1".into())
            );
            assert_eq!(
                version_of(&format!("{url}/h2")).await,
                (200, "HTTP/2.0".into())
            );
            assert_eq!(
                version_of(&format!("{url}/mtls")).await,
                (200, "HTTP/1.1".into())
            );
        }
        // A certificate from an authority the pool does not trust, and a backend
        // refusing a proxy without a client certificate: 502, never served.
        assert_eq!(version_of(&format!("{url}/bad")).await.0, 502);
        assert_eq!(version_of(&format!("{url}/nocert")).await.0, 502);
        // Health probes speak TLS to a TLS pool, with its trust: they pass where
        // requests pass and fail where the certificate is not trusted.
        let series = |pool: &str, result: &str| {
            format!("fulcrum_backend_health_checks_total{{pool=\"{pool}\",backend=\"{}\",result=\"{result}\"}}", plain.addr)
        };
        let count = |m: &str, s: &str| -> u64 {
            m.lines()
                .find_map(|l| l.strip_prefix(s))
                .map_or(0, |v| v.trim().parse().unwrap())
        };
        loop {
            let m = metrics(&f).await;
            // A pass is proof enough (a busy machine may time one out).
            if count(&m, &series("good", "pass")) >= 1 && count(&m, &series("probed", "fail")) >= 1 {
                assert_eq!(count(&m, &series("probed", "pass")), 0, "{m}");
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn plain_http_is_redirected_to_https() {
    within(async {
        let backend = Backend::start("app").await;
        let f = Fulcrum::start(&format!(
            "workers = 1\n[listeners.plain]\naddress = \"127.0.0.1:0\"\nredirect_https = 8443\n\
             [listeners.web]\naddress = \"127.0.0.1:0\"\nredirect_https = 443\n\n\
             [[routes]]\npool = \"p\"\n[pools.p]\nbackends = [{}]\n",
            quoted(&backend)
        ));
        let limit = std::time::Duration::from_secs(30);
        let reply = raw(
            f.addr("plain"),
            b"GET /a?b=1 HTTP/1.1\r\nHost: Example.com:8080\r\n\r\nGET /c HTTP/1.1\r\nHost: [::1]:80\r\nConnection: close\r\n\r\n",
            limit,
        );
        assert!(reply.starts_with("HTTP/1.1 308 Permanent Redirect\r\n"), "{reply}");
        assert!(reply.contains("location: https://Example.com:8443/a?b=1\r\n"), "{reply}");
        assert!(reply.contains("location: https://[::1]:8443/c\r\n"), "{reply}");
        let reply = raw(
            f.addr("web"),
            b"POST /form HTTP/1.1\r\nHost: example.com\r\nContent-Length: 3\r\n\r\nabc",
            limit,
        );
        assert!(reply.contains("location: https://example.com/form\r\n"), "{reply}");
        assert!(reply.contains("connection: close\r\n"), "{reply}");
        assert_eq!(backend.arrived(), 0);
    })
    .await;
}
