//! ACME against a real server: Debian's `pebble`, with `pebble-challtestsrv` as its
//! DNS (every name is 127.0.0.1), checking HTTP-01 on Fulcrum's plain listener and
//! TLS-ALPN-01 on its https listener.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use crate::support::*;
use crate::support_tls::*;

/// A port free now (bound and released): pebble must be told where Fulcrum
/// listens before Fulcrum starts.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Pebble {
    children: Vec<Child>,
    directory: String,
    ca_file: String,
    /// Pebble's management API, which hands out the root it issues under.
    management: SocketAddr,
    listener_ca: rustls::pki_types::CertificateDer<'static>,
    _dir: TempDir,
}

impl Drop for Pebble {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Pebble {
    /// Pebble validating challenges on `http_port` and `tls_port` of 127.0.0.1.
    fn start(http_port: u16, tls_port: u16) -> Self {
        let dir = TempDir::new();
        let ca = Ca::new("Pebble listener CA");
        let (cert, key) = ca
            .leaf(&["localhost", "127.0.0.1"], false)
            .write(&dir, "pebble");
        let ca_file = dir.path("ca.pem").display().to_string();
        std::fs::write(&ca_file, ca.pem()).unwrap();
        let (dns, api, management, dns_admin) =
            (free_port(), free_port(), free_port(), free_port());
        let config = dir.path("pebble.json");
        std::fs::write(
            &config,
            serde_json::json!({ "pebble": {
                "listenAddress": format!("127.0.0.1:{api}"),
                "managementListenAddress": format!("127.0.0.1:{management}"),
                "certificate": cert, "privateKey": key,
                "httpPort": http_port, "tlsPort": tls_port,
                "ocspResponderURL": "", "externalAccountBindingRequired": false,
            }})
            .to_string(),
        )
        .unwrap();
        let challtest = Command::new("pebble-challtestsrv")
            .args([
                "-dns01",
                &format!("127.0.0.1:{dns}"),
                "-http01",
                "",
                "-https01",
                "",
            ])
            .args([
                "-tlsalpn01",
                "",
                "-defaultIPv6",
                "",
                "-defaultIPv4",
                "127.0.0.1",
            ])
            .args(["-management", &format!("127.0.0.1:{dns_admin}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pebble-challtestsrv (apt-get install pebble)");
        let pebble = Command::new("pebble")
            .arg("-config")
            .arg(&config)
            .args(["-dnsserver", &format!("127.0.0.1:{dns}")])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pebble (apt-get install pebble)");
        let p = Self {
            children: vec![challtest, pebble],
            directory: format!("https://127.0.0.1:{api}/dir"),
            ca_file,
            management: format!("127.0.0.1:{management}").parse().unwrap(),
            listener_ca: ca.der(),
            _dir: dir,
        };
        // Both listen once ready (the DNS server's management port stands for it).
        for port in [dns_admin, api, management] {
            let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
            let started = std::time::Instant::now();
            while std::net::TcpStream::connect(addr).is_err() {
                assert!(
                    started.elapsed().as_secs() < 60,
                    "pebble did not listen on {port}"
                );
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
        p
    }
}

impl Pebble {
    /// A client that trusts the root Pebble issues under (from its management API).
    async fn client(&self) -> Arc<rustls::ClientConfig> {
        use rustls::pki_types::pem::PemObject;
        let api = client_config(std::slice::from_ref(&self.listener_ca), &["http/1.1"], None);
        let s = connect(self.management, "localhost", api).await.unwrap();
        let (status, pem) = get_over(s, "localhost", "/roots/0").await.unwrap();
        assert_eq!(status, 200);
        let root = rustls::pki_types::CertificateDer::from_pem_slice(&pem).unwrap();
        client_config(&[root], &["http/1.1"], None)
    }
}

fn config(http_port: u16, tls_port: u16, acme: &str, backend: &Backend) -> String {
    format!(
        "workers = 1\n[admin]\naddress = \"127.0.0.1:0\"\n\
         [listeners.plain]\naddress = \"127.0.0.1:{http_port}\"\n\
         [listeners.secure]\naddress = \"127.0.0.1:{tls_port}\"\nprotocol = \"https\"\n\
         tls = {{ acme = {{ {acme} }} }}\n\n[[routes]]\npool = \"p\"\n[pools.p]\nbackends = [{}]\n",
        quoted(backend)
    )
}

/// The certificate served for app.test, verified against Pebble's root.
async fn served_leaf(
    f: &Fulcrum,
    trust: &Arc<rustls::ClientConfig>,
) -> rustls::pki_types::CertificateDer<'static> {
    let s = connect(f.addr("secure"), "app.test", trust.clone())
        .await
        .unwrap();
    let leaf = s.leaf.clone();
    let (status, body) = get_over(s, "app.test", "/").await.unwrap();
    assert_eq!((status, &body[..]), (200, &b"app"[..]));
    leaf
}

fn names(der: &[u8]) -> Vec<String> {
    fulcrum::tls::describe(der).unwrap().0
}

#[tokio::test]
async fn acme_issues_by_http01_keeps_it_across_a_restart_and_renews() {
    within(async {
        let (http_port, tls_port) = (free_port(), free_port());
        let pebble = Pebble::start(http_port, tls_port);
        let storage = TempDir::new();
        let backend = Backend::start("app").await;
        let acme = |extra: &str| {
            format!(
                "directory = {:?}, domains = [\"app.test\"], storage = {:?}, ca = {:?}, \
                 email = \"ops@app.test\"{extra}",
                pebble.directory,
                storage.0.display().to_string(),
                pebble.ca_file
            )
        };
        let f = Fulcrum::start(&config(http_port, tls_port, &acme(""), &backend));
        f.wait_line("ACME certificate issued", 0).await;
        let trust = pebble.client().await;
        let first = served_leaf(&f, &trust).await;
        assert_eq!(names(&first), ["app.test"]);
        let m = get(
            &client(),
            &format!("http://{}/metrics", f.admin_addr().await),
        )
        .await
        .2;
        let m = String::from_utf8(m.to_vec()).unwrap();
        assert!(
            m.contains("fulcrum_acme_renewals_total{listener=\"secure\",result=\"ok\"} 1"),
            "{m}"
        );
        drop(f);
        // A restart serves the stored certificate at once, without issuing.
        let f = Fulcrum::start(&config(http_port, tls_port, &acme(""), &backend));
        assert_eq!(served_leaf(&f, &trust).await, first);
        drop(f);
        // Renewal: due at once when renew_before exceeds the validity.
        let f = Fulcrum::start(&config(
            http_port,
            tls_port,
            &acme(", renew_before = \"80000h\""),
            &backend,
        ));
        f.wait_line("ACME certificate issued", 0).await;
        loop {
            let leaf = served_leaf(&f, &trust).await;
            if leaf != first {
                assert_eq!(names(&leaf), ["app.test"]);
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(
            !f.log.all().contains("ACME issuance failed"),
            "{}",
            f.log.all()
        );
    })
    .await;
}

#[tokio::test]
async fn acme_issues_by_tls_alpn01() {
    within(async {
        let (http_port, tls_port) = (free_port(), free_port());
        let pebble = Pebble::start(http_port, tls_port);
        let storage = TempDir::new();
        let backend = Backend::start("app").await;
        let acme = format!(
            "directory = {:?}, domains = [\"app.test\"], storage = {:?}, ca = {:?}, \
             challenge = \"tls-alpn-01\"",
            pebble.directory,
            storage.0.display().to_string(),
            pebble.ca_file
        );
        let f = Fulcrum::start(&config(http_port, tls_port, &acme, &backend));
        f.wait_line("ACME certificate issued", 0).await;
        let trust = pebble.client().await;
        assert_eq!(names(&served_leaf(&f, &trust).await), ["app.test"]);
    })
    .await;
}

#[tokio::test]
async fn two_instances_sharing_storage_issue_once() {
    within(async {
        // One plain port shared by both (SO_REUSEPORT), as behind a load balancer:
        // the ACME server's check may reach either instance.
        let http_port = free_port();
        let pebble = Pebble::start(http_port, free_port());
        let storage = TempDir::new();
        let backend = Backend::start("app").await;
        let acme = format!(
            "directory = {:?}, domains = [\"app.test\"], storage = {:?}, ca = {:?}",
            pebble.directory,
            storage.0.display().to_string(),
            pebble.ca_file
        );
        let a = Fulcrum::start(&config(http_port, free_port(), &acme, &backend));
        let b = Fulcrum::start(&config(http_port, free_port(), &acme, &backend));
        let issued = || {
            a.log.all().matches("ACME certificate issued").count()
                + b.log.all().matches("ACME certificate issued").count()
        };
        until("a certificate issued", || issued() >= 1).await;
        let trust = pebble.client().await;
        // The other instance finds it in the storage.
        let mut leaves = Vec::new();
        for f in [&a, &b] {
            loop {
                match connect(f.addr("secure"), "app.test", trust.clone()).await {
                    Ok(s) => {
                        leaves.push(s.leaf.clone());
                        break;
                    }
                    Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
                }
            }
        }
        assert_eq!(leaves[0], leaves[1]);
        assert_eq!(issued(), 1, "{}\n{}", a.log.all(), b.log.all());
    })
    .await;
}
