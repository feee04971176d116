//! TLS keys: `tls` of an https listener (certificates, client certificates) and
//! `tls` of a pool (re-encryption to its backends, mutual TLS).

use serde::Deserialize;

/// `tls` of an `https` listener.
#[derive(Clone, Debug, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListenerTlsConfig {
    /// Certificates offered, chosen by the client's SNI among the names each
    /// certificate holds; the first is the default for clients without SNI or
    /// with a name none holds.
    #[serde(default)]
    pub certificates: Vec<CertificateConfig>,
    /// Ask clients for a certificate signed by `ca`.
    #[serde(default)]
    pub client_auth: Option<ClientAuthConfig>,
    /// Obtain and renew a certificate for `domains` from an ACME server.
    #[serde(default)]
    pub acme: Option<AcmeConfig>,
    /// Session resumption (TLS 1.3 tickets, TLS 1.2 tickets and session cache);
    /// `false` makes every handshake a full one.
    #[serde(default = "super::defaults::yes")]
    pub resumption: bool,
    /// The oldest TLS version served; "1.3" refuses TLS 1.2 clients.
    #[serde(default)]
    pub min_version: TlsVersion,
    /// How often certificate and key files are checked for changes; a changed file
    /// is loaded without a reload (a bad one keeps the old certificate).
    #[serde(default = "default_watch_interval")]
    pub watch_interval: super::Duration,
}

/// A TLS protocol version, as written in the file.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub enum TlsVersion {
    /// TLS 1.2 (and 1.3).
    #[default]
    #[serde(rename = "1.2")]
    V1_2,
    /// TLS 1.3 only.
    #[serde(rename = "1.3")]
    V1_3,
}

fn default_watch_interval() -> super::Duration {
    super::Duration::from_secs(5)
}

/// One certificate chain and its private key, both PEM files.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CertificateConfig {
    /// The chain, leaf first.
    pub cert: String,
    /// The leaf's private key (PKCS#8, PKCS#1 or SEC1).
    pub key: String,
}

/// `client_auth` of an https listener.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientAuthConfig {
    /// PEM file of the certificate authorities client certificates must chain to.
    pub ca: String,
    /// Whether a client without a certificate is refused (else it is served
    /// without the subject header).
    #[serde(default = "super::defaults::yes")]
    pub required: bool,
    /// Request header that carries the verified certificate's subject to routes
    /// and backends; a client's own header of that name is always removed.
    #[serde(default = "default_subject_header")]
    pub header: String,
}

fn default_subject_header() -> String {
    "x-client-subject".to_owned()
}

/// `tls` of a pool: connections to its backends are TLS.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq, Hash, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PoolTlsConfig {
    /// Server name sent (SNI) and verified; the backend's host when unset (its IP
    /// address for a numeric backend).
    #[serde(default)]
    pub sni: Option<String>,
    /// PEM file of the authorities the backends' certificates chain to; the
    /// system's roots when unset.
    #[serde(default)]
    pub ca: Option<String>,
    /// Verify the backend's certificate. `false` only for testing: any
    /// certificate is then accepted, and the README says why not to.
    #[serde(default = "super::defaults::yes")]
    pub verify: bool,
    /// Client certificate chain (PEM) presented to backends that ask (mutual TLS).
    #[serde(default)]
    pub client_cert: Option<String>,
    /// The client certificate's private key (PEM).
    #[serde(default)]
    pub client_key: Option<String>,
}

/// `acme` of an https listener: a certificate obtained and renewed automatically.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq, Hash, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AcmeConfig {
    /// The ACME server's directory URL (`https://acme-v02.api.letsencrypt.org/directory`).
    pub directory: String,
    /// Contact address given to the ACME server for the account.
    #[serde(default)]
    pub email: Option<String>,
    /// The names the certificate is for (no wildcards: HTTP-01 and TLS-ALPN-01
    /// cannot prove them).
    pub domains: Vec<String>,
    /// Directory that keeps the account, the certificate and its key, and the lock
    /// that stops two instances sharing it from issuing at once.
    pub storage: String,
    /// How the server checks control of the names: `"http-01"` (answered on every
    /// plain http listener, which must be reachable on port 80) or `"tls-alpn-01"`
    /// (answered on this listener, reachable on port 443).
    #[serde(default)]
    pub challenge: AcmeChallenge,
    /// Renew this long before the certificate expires (less a random part of up
    /// to a tenth of it, so a fleet does not renew at once).
    #[serde(default = "default_renew_before")]
    pub renew_before: super::Duration,
    /// PEM file of the authority the ACME server's own HTTPS certificate chains to,
    /// for private or test servers; the system's roots when unset.
    #[serde(default)]
    pub ca: Option<String>,
}

fn default_renew_before() -> super::Duration {
    super::Duration::from_secs(30 * 24 * 3600)
}

/// `challenge` of `acme`.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, Hash, schemars::JsonSchema)]
pub enum AcmeChallenge {
    /// A token served over plain HTTP.
    #[default]
    #[serde(rename = "http-01")]
    Http01,
    /// A special certificate presented for ALPN `acme-tls/1`.
    #[serde(rename = "tls-alpn-01")]
    TlsAlpn01,
}
