//! Tests of the TLS keys: an https listener's certificates and client
//! authentication, a pool's re-encryption, each accepted only where it acts.

use super::tests::{errors, parse_ok, BASE};
use super::{ListenerProtocol, PoolProtocol};

/// `BASE` plus an https listener `secure` (from line 9) with `body`.
fn https(body: &str) -> String {
    format!(
        "{BASE}[listeners.secure]\naddress = \"127.0.0.1:8443\"\nprotocol = \"https\"\n{body}\n"
    )
}

#[test]
fn an_https_listener_takes_certificates_and_client_auth() {
    let c = parse_ok(&https(
        "tls = { certificates = [{ cert = \"a.pem\", key = \"a.key\" }, \
         { cert = \"b.pem\", key = \"b.key\" }], \
         client_auth = { ca = \"ca.pem\", required = false }, watch_interval = \"1s\", \
         resumption = false, min_version = \"1.3\" }",
    ));
    let l = &c.listeners["secure"];
    assert_eq!(l.protocol, ListenerProtocol::Https);
    let tls = l.tls.as_ref().unwrap();
    assert_eq!(tls.certificates.len(), 2);
    assert_eq!(tls.certificates[1].key, "b.key");
    let auth = tls.client_auth.as_ref().unwrap();
    assert!(!auth.required);
    assert_eq!(auth.header, "x-client-subject");
    assert_eq!(tls.watch_interval.get(), std::time::Duration::from_secs(1));
    assert!(!tls.resumption);
    assert_eq!(tls.min_version, super::TlsVersion::V1_3);
    let c = parse_ok(&https(
        "tls = { certificates = [{ cert = \"a.pem\", key = \"a.key\" }] }",
    ));
    let tls = c.listeners["secure"].tls.as_ref().unwrap();
    assert_eq!(tls.min_version, super::TlsVersion::V1_2);
}

#[test]
fn an_unknown_tls_version_is_refused_on_its_line() {
    let e = errors(&https(
        "tls = { certificates = [{ cert = \"a.pem\", key = \"a.key\" }], min_version = \"1.1\" }",
    ));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("f.toml:12: listeners.secure.tls.min_version: "),
        "{e:?}"
    );
    assert!(e[0].contains("1.1") && e[0].contains("1.3"), "{e:?}");
}

#[test]
fn tls_keys_are_checked_where_they_act() {
    assert_eq!(
        errors(&https("")),
        [
            "f.toml:9: listeners.secure.tls: an https listener needs tls = { certificates = \
          [{ cert = \"PATH\", key = \"PATH\" }] }"
        ]
    );
    assert_eq!(
        errors(&https("tls = { certificates = [] }")),
        ["f.toml:12: listeners.secure.tls.certificates: needs at least one { cert = \"PATH\", key = \"PATH\" } (or acme)"]
    );
    assert_eq!(
        errors(&https(
            "tls = { certificates = [{ cert = \"\", key = \"k\" }], \
             client_auth = { ca = \"ca.pem\", header = \"bad header\" } }"
        )),
        [
            "f.toml:12: listeners.secure.tls.certificates[0].cert: must be the path of a PEM file",
            "f.toml:12: listeners.secure.tls.client_auth.header: invalid header name \"bad header\"",
        ]
    );
    let plain = BASE.replace(
        "address = \"0.0.0.0:8080\"",
        "address = \"0.0.0.0:8080\"\ntls = { certificates = [{ cert = \"a\", key = \"b\" }] }",
    );
    assert_eq!(
        errors(&plain),
        [
            "f.toml:3: listeners.public.tls: only https listeners terminate TLS \
          (a tls-passthrough listener passes it on unopened)"
        ]
    );
}

#[test]
fn a_pool_re_encrypts_with_tls() {
    let c = parse_ok(&format!(
        "{BASE}protocol = \"h2\"\ntls = {{ sni = \"api.internal\", ca = \"ca.pem\", \
         client_cert = \"c.pem\", client_key = \"c.key\" }}\n"
    ));
    let pool = &c.pools["api"];
    assert_eq!(pool.protocol, PoolProtocol::H2);
    let tls = pool.tls.as_ref().unwrap();
    assert_eq!(tls.sni.as_deref(), Some("api.internal"));
    assert!(tls.verify);
    assert_eq!(tls.client_key.as_deref(), Some("c.key"));
}

#[test]
fn pool_tls_mistakes_are_refused() {
    assert_eq!(
        errors(&format!("{BASE}protocol = \"h2\"\n")),
        [
            "f.toml:9: pools.api.protocol: protocol = \"h2\" is HTTP/2 over TLS and needs \
          tls = { ... } (\"h2c\" is HTTP/2 in the clear)"
        ]
    );
    assert_eq!(
        errors(&format!(
            "{BASE}protocol = \"h2c\"\ntls = {{ client_cert = \"c.pem\", sni = \"*.x\" }}\n"
        )),
        [
            "f.toml:9: pools.api.protocol: h2c is HTTP/2 in the clear: with tls, use protocol = \"h2\"",
            "f.toml:10: pools.api.tls.client_key: needed with client_cert",
            "f.toml:10: pools.api.tls.sni: invalid server name \"*.x\": expected a DNS name or an IP address",
        ]
    );
}

#[test]
fn only_http_listeners_redirect_to_https() {
    let c = parse_ok(&BASE.replace(
        "address = \"0.0.0.0:8080\"",
        "address = \"0.0.0.0:8080\"\nredirect_https = 8443",
    ));
    assert_eq!(c.listeners["public"].redirect_https, Some(8443));
    assert_eq!(
        errors(&https(
            "tls = { certificates = [{ cert = \"a\", key = \"b\" }] }\nredirect_https = 443"
        )),
        ["f.toml:13: listeners.secure.redirect_https: only an http listener redirects to HTTPS"]
    );
}

#[test]
fn acme_takes_the_place_of_certificates() {
    let c = parse_ok(&https(
        "tls = { acme = { directory = \"https://acme.test/dir\", domains = [\"a.test\"], \
         storage = \"/var/lib/fulcrum/acme\", challenge = \"tls-alpn-01\" } }",
    ));
    let acme = c.listeners["secure"]
        .tls
        .as_ref()
        .unwrap()
        .acme
        .clone()
        .unwrap();
    assert_eq!(acme.challenge, super::AcmeChallenge::TlsAlpn01);
    assert_eq!(
        acme.renew_before.get(),
        std::time::Duration::from_secs(30 * 86400)
    );
    assert_eq!(
        errors(&https(
            "tls = { acme = { directory = \"http://acme.test\", domains = [\"*.a.test\", \"\"], \
             storage = \"\", renew_before = \"0s\" } }"
        )),
        [
            "f.toml:12: listeners.secure.tls.acme.directory: must be an https:// URL",
            "f.toml:12: listeners.secure.tls.acme.domains[0]: no wildcards: http-01 and tls-alpn-01 cannot prove them",
            "f.toml:12: listeners.secure.tls.acme.domains[1]: invalid domain \"\"",
            "f.toml:12: listeners.secure.tls.acme.storage: must be a directory path",
            "f.toml:12: listeners.secure.tls.acme.renew_before: must be greater than 0",
        ]
    );
}

#[test]
fn early_data_needs_http3_and_resumption() {
    let cert = "tls = { certificates = [{ cert = \"a\", key = \"b\" }] }";
    let c = parse_ok(&https(&format!("{cert}\nhttp3 = true\nearly_data = true")));
    assert!(c.listeners["secure"].early_data);
    assert!(!parse_ok(&https(cert)).listeners["secure"].early_data);
    assert_eq!(
        errors(&https(&format!("{cert}\nearly_data = true"))),
        ["f.toml:13: listeners.secure.early_data: 0-RTT is served over HTTP/3 only: set http3 = true"]
    );
    assert_eq!(
        errors(&https(
            "tls = { certificates = [{ cert = \"a\", key = \"b\" }], resumption = false }\n\
             http3 = true\nearly_data = true"
        )),
        ["f.toml:14: listeners.secure.early_data: 0-RTT resumes a session: it needs tls.resumption = true"]
    );
}
