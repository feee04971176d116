//! The file format: serde types for `fulcrum.toml`, their defaults, and parsing with
//! every error reported as `file:line: key: reason`.
//!
//! These types are the stable interface users write; the runtime (`fulcrum::state`)
//! compiles them into its own types and never deserializes directly.

mod address;
mod backend;
mod cidr;
mod discover;
mod duration;
mod health;
mod limits;
mod locate;
mod methods;
mod observe;
mod pieces;
mod retries;
mod rules;
mod schema;
mod secret;
mod shape;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_balance;
#[cfg(test)]
mod tests_discover;
#[cfg(test)]
mod tests_health;
#[cfg(test)]
mod tests_jwt;
#[cfg(test)]
mod tests_l4;
#[cfg(test)]
mod tests_limits;
#[cfg(test)]
mod tests_observe;
#[cfg(test)]
mod tests_pieces;
#[cfg(test)]
mod tests_retries;
#[cfg(test)]
mod tests_routes;
#[cfg(test)]
mod tests_shape;
#[cfg(test)]
mod tests_tls;
mod tls;
mod validate;

use std::collections::BTreeMap;
use std::num::NonZeroU32;

use serde::Deserialize;

pub use cidr::{AccessList, Cidr, ProxyProtocolConfig};
pub use discover::{DiscoverConfig, DnsConfig, FamilyConfig};
pub use duration::{Duration, DurationError};
pub use health::{CheckKind, HealthCheckConfig, OutlierConfig, StatusRange};
pub use limits::{
    BasicAuthConfig, ForwardAuthConfig, OnRedisError, RateLimitConfig, RateScope, RedisConfig,
};
pub use observe::{RequestIdConfig, SampleRate, TracingConfig};
pub use retries::{Percent, RetriesConfig, RetryOn};
pub use schema::schema_json;
pub use secret::Secret;
pub use shape::{
    CorsConfig, EncodedSlashesConfig, HeaderOpsConfig, RedirectConfig, RewriteConfig, StaticConfig,
};
pub use tls::{
    AcmeChallenge, AcmeConfig, CertificateConfig, ClientAuthConfig, ListenerTlsConfig,
    PoolTlsConfig, TlsVersion,
};
pub use validate::{parse, ConfigError};

/// Checks a backend address (`host:port`, the port not 0) as the config does;
/// for addresses that arrive at run time (a backends file, the admin API).
pub fn backend_address(address: &str) -> Result<(), String> {
    address::backend(address)
}

/// A whole config file.
#[derive(Clone, Debug, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Worker threads, each with its own listener socket and upstream pools. Default: cores.
    #[serde(default)]
    pub workers: Option<usize>,
    /// How long in-flight requests may run after SIGTERM before the process exits.
    #[serde(default = "defaults::shutdown_timeout")]
    pub shutdown_timeout: Duration,
    /// Reloads the file when it changes (checked every second), as SIGHUP does.
    #[serde(default)]
    pub watch: bool,
    /// The admin listener (metrics, API, dashboard).
    #[serde(default)]
    pub admin: Option<AdminConfig>,
    /// Where and how requests are logged.
    #[serde(default)]
    pub access_log: AccessLogConfig,
    /// Trace context and span export.
    #[serde(default)]
    pub tracing: Option<TracingConfig>,
    /// Rate limiters by name, applied by routes that list them in `rate_limit`.
    #[serde(default)]
    pub rate_limits: BTreeMap<String, RateLimitConfig>,
    /// The Redis that `scope = "fleet"` limiters share.
    #[serde(default)]
    pub redis: Option<RedisConfig>,
    /// Listeners by name.
    #[serde(default)]
    pub listeners: BTreeMap<String, ListenerConfig>,
    /// Routes, tried in order; the first match wins.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// Pools of backends by name.
    #[serde(default)]
    pub pools: BTreeMap<String, PoolConfig>,
    /// DNS servers (`"127.0.0.1:5353"`, or an IP for port 53) that backend names
    /// and SRV records are resolved with; `/etc/resolv.conf` when empty.
    #[serde(default)]
    pub resolvers: Vec<String>,
}

/// `[admin]`: loopback unless `allow_public = true`.
#[derive(Clone, Debug, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Address to bind, `host:port`.
    pub address: String,
    /// Allows a non-loopback admin address (refused otherwise).
    #[serde(default)]
    pub allow_public: bool,
    /// When set, every admin request needs `Authorization: Bearer <token>`.
    #[serde(default)]
    pub token: Option<Secret>,
}

/// Shortest admin `token` accepted, in bytes: 128 bits of a random string.
pub const MIN_ADMIN_TOKEN_BYTES: usize = 16;

/// `[access_log]`.
#[derive(Clone, Debug, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AccessLogConfig {
    /// Whether one line per request is written.
    #[serde(default = "defaults::yes")]
    pub enabled: bool,
    /// `json` (one object per line), `text` (space-separated fields) or
    /// `combined` (Apache/nginx combined).
    #[serde(default)]
    pub format: AccessLogFormat,
    /// `stdout`, `stderr`, or a file path (appended to; reopened on SIGUSR1).
    #[serde(default = "defaults::access_log_path")]
    pub path: String,
    /// The JSON fields to write, in this order (names from [`LOG_FIELDS`]); all
    /// of them when empty. Only with `format = "json"`.
    #[serde(default)]
    pub fields: Vec<String>,
}

/// The access log's JSON field names, in their default order.
pub const LOG_FIELDS: [&str; 26] = [
    "ts",
    "listener",
    "client",
    "proto",
    "method",
    "host",
    "path",
    "status",
    "route",
    "pool",
    "backend",
    "attempts",
    "retries",
    "bytes_in",
    "bytes_out",
    "duration_ms",
    "upstream_connect_ms",
    "upstream_ms",
    "error",
    "user_agent",
    "referer",
    "request_id",
    "trace_id",
    "tls_version",
    "tls_cipher",
    "sni",
];

impl Default for AccessLogConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            format: AccessLogFormat::default(),
            path: defaults::access_log_path(),
            fields: Vec::new(),
        }
    }
}

/// The access log's line format.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AccessLogFormat {
    /// One JSON object per line.
    #[default]
    Json,
    /// Space-separated fields, documented in the README.
    Text,
    /// Apache/nginx "combined", for the parsers that read it (GoAccess, AWStats).
    Combined,
}

/// `[listeners.NAME]`.
#[derive(Clone, Debug, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    /// Address to bind, `ip:port` (port 0 picks a free port).
    pub address: String,
    /// What the listener speaks.
    #[serde(default)]
    pub protocol: ListenerProtocol,
    /// Pool for L4 listeners (tcp, udp, tls-passthrough); HTTP listeners use routes.
    #[serde(default)]
    pub pool: Option<String>,
    /// Largest request head (request line + headers) accepted; over it is 431.
    #[serde(default = "defaults::max_header_bytes")]
    pub max_header_bytes: usize,
    /// Largest request body accepted; over it is 413. Unlimited when unset.
    #[serde(default)]
    pub max_body_bytes: Option<u64>,
    /// Time a client has to send a whole request head once it started one, or
    /// its first byte on a new connection.
    #[serde(default = "defaults::header_timeout")]
    pub header_timeout: Duration,
    /// Time an idle keep-alive client connection is kept open.
    #[serde(default = "defaults::keepalive_timeout")]
    pub keepalive_timeout: Duration,
    /// Time allowed between two reads of a request body, or two writes of a response.
    #[serde(default = "defaults::client_timeout")]
    pub client_timeout: Duration,
    /// Time a tcp listener's connection may pass no byte either way before it is
    /// closed; only for tcp listeners. Default (when unset): one hour.
    #[serde(default)]
    pub idle_timeout: Option<Duration>,
    /// Client connections open at once on a tcp or http listener; past it a new
    /// connection is closed at once (counted), never queued. Unlimited when unset.
    #[serde(default)]
    pub max_connections: Option<u32>,
    /// PROXY protocol header every connection must start with (`"v1"` or `"v2"`);
    /// its address becomes the client's. Needs `proxy_protocol_from`.
    #[serde(default)]
    pub proxy_protocol: Option<ProxyProtocolConfig>,
    /// Networks (`"10.0.0.0/8"`, `"::1"`) allowed to send the PROXY header; a
    /// connection from elsewhere is closed.
    #[serde(default)]
    pub proxy_protocol_from: Vec<String>,
    /// A udp listener's session (one client address) ends after this long with no
    /// datagram either way. Default (when unset): 60 s.
    #[serde(default)]
    pub session_idle_timeout: Option<Duration>,
    /// Most sessions a udp listener keeps; past it the one idle longest goes first.
    /// Default (when unset): 65,536.
    #[serde(default)]
    pub max_sessions: Option<u32>,
    /// Certificates and client authentication of an `https` listener.
    #[serde(default)]
    pub tls: Option<ListenerTlsConfig>,
    /// On an http listener: answer every request with a 308 redirect to the same
    /// host and target over HTTPS on this port (443 is left out of the URL).
    #[serde(default)]
    pub redirect_https: Option<u16>,
    /// On an http or https listener: a request ID on every request.
    #[serde(default)]
    pub request_id: Option<RequestIdConfig>,
    /// Connections one client address may hold open at once on this listener (tcp
    /// and http listeners), so that one client cannot take `max_connections` alone.
    /// The client is the PROXY header's source when there is one. Unlimited when unset.
    #[serde(default)]
    pub max_connections_per_client: Option<u32>,
    /// Proxies of yours (`"10.0.0.0/8"`): from these peers only, `X-Forwarded-For`
    /// (or `Forwarded`) names the client for logs, hashing and `allow` / `deny`,
    /// and the chain goes on to backends. From any other peer both are replaced.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// Networks (`"10.0.0.0/8"`, `"::1"`) whose clients may be served; everyone
    /// else is refused (403, or the connection closed on a layer-4 listener). The
    /// client is the PROXY header's source when there is one. Empty: everyone.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Networks whose clients are refused, before `allow` is looked at.
    #[serde(default)]
    pub deny: Vec<String>,
    /// Header rules for requests to backends, before each route's own.
    #[serde(default)]
    pub request_headers: Option<HeaderOpsConfig>,
    /// Header rules for responses to clients, before each route's own.
    #[serde(default)]
    pub response_headers: Option<HeaderOpsConfig>,
    /// An encoded `/` or `\` (`%2F`, `%5C`) in a path: `"reject"` (400, the
    /// default) or `"keep"` (passed on encoded, never a separator).
    #[serde(default)]
    pub encoded_slashes: EncodedSlashesConfig,
    /// Pages for the errors Fulcrum answers itself, by status (`"502"`): files
    /// read with the config. A client asking for JSON gets JSON instead.
    #[serde(default)]
    pub error_pages: BTreeMap<String, String>,
    /// HTTP/3 on an https listener: QUIC on UDP at the same address, with the
    /// listener's certificates (TLS 1.3 only).
    #[serde(default)]
    pub http3: bool,
    /// With `http3`, responses over HTTP/1.1 and HTTP/2 carry
    /// `Alt-Svc: h3=":PORT"; ma=...` so browsers move to HTTP/3.
    #[serde(default = "defaults::yes")]
    pub alt_svc: bool,
    /// The `ma` of that `Alt-Svc`: how long a client may remember it.
    #[serde(default = "defaults::alt_svc_max_age")]
    pub alt_svc_max_age: Duration,
    /// Streams an HTTP/3 client may open at once on one connection.
    #[serde(default = "defaults::max_concurrent_streams")]
    pub max_concurrent_streams: u32,
    /// With `http3`: 0-RTT. Requests that arrive before the handshake completes
    /// (replayable) are forwarded only for safe methods, with `Early-Data: 1`
    /// (RFC 8470); others get 425.
    #[serde(default)]
    pub early_data: bool,
}

/// A udp listener's `session_idle_timeout` when the config leaves it out.
pub const DEFAULT_UDP_SESSION_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// A udp listener's `max_sessions` when the config leaves it out.
pub const DEFAULT_UDP_MAX_SESSIONS: u32 = 65_536;

/// A tcp listener's `idle_timeout` when the config leaves it out.
pub const DEFAULT_TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);

/// `protocol` of a listener.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ListenerProtocol {
    /// HTTP/1.1 and HTTP/2 with prior knowledge (h2c) on the same port.
    #[default]
    Http,
    /// HTTP/1.1 and HTTP/2 (by ALPN) over TLS, terminated here with `tls`.
    Https,
    /// Plain TCP proxy to the listener's `pool`.
    Tcp,
    /// UDP proxy to the listener's `pool`: one session per client address.
    Udp,
    /// TLS passed through unopened, routed by the ClientHello's SNI.
    TlsPassthrough,
}

/// One `[[routes]]` entry. Every predicate set must match.
#[derive(Clone, Debug, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// A name for logs and traces (the route's index when unset); unique.
    #[serde(default)]
    pub name: Option<String>,
    /// Listener name; when unset the route applies to every HTTP listener.
    #[serde(default)]
    pub listener: Option<String>,
    /// Host, exact (`api.example.com`) or a suffix wildcard (`*.example.com`).
    #[serde(default)]
    pub host: Option<String>,
    /// Exact path.
    #[serde(default)]
    pub path: Option<String>,
    /// Path prefix.
    #[serde(default)]
    pub path_prefix: Option<String>,
    /// Regex the whole path (query excluded) must match: anchored at both ends.
    #[serde(default)]
    pub path_regex: Option<String>,
    /// Methods, case-sensitive and uppercase: `"GET"` or `["GET", "HEAD"]`.
    #[serde(default)]
    pub method: Option<MethodsConfig>,
    /// Header name (any case) → value: exact, or `~regex` (anchored at both ends).
    #[serde(default)]
    pub header: BTreeMap<String, String>,
    /// Cookie name (case-sensitive) → value: exact, or `~regex`.
    #[serde(default)]
    pub cookie: BTreeMap<String, String>,
    /// Query parameter name (case-sensitive, raw) → raw value: exact, or `~regex`.
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// Claim of the request's verified bearer token → value: exact, or `~regex`.
    /// Needs `jwt_secret` or `jwt_public_key`.
    #[serde(default)]
    pub jwt_claim: BTreeMap<String, String>,
    /// HS256 secret that verifies tokens for `jwt_claim`, at least 32 bytes.
    #[serde(default)]
    pub jwt_secret: Option<Secret>,
    /// PEM file of the RSA (RS256) or EC P-256 (ES256) public key that verifies
    /// tokens for `jwt_claim`.
    #[serde(default)]
    pub jwt_public_key: Option<String>,
    /// Pool that serves matching requests; a route with `redirect` or `static` has none.
    #[serde(default)]
    pub pool: String,
    /// `Upgrade` protocols passed to the backend (`Connection: upgrade` kept for that
    /// hop); any other upgrade a client asks for is ignored, as RFC 9110 lets a
    /// server do. Default: `["websocket"]`.
    #[serde(default = "defaults::upgrades")]
    pub upgrades: Vec<String>,
    /// Time an upgraded connection (WebSocket) or an event stream may pass no byte
    /// before it is closed; the listener's keep-alive and the pool's upstream
    /// timeouts do not apply to it. Default: one hour.
    #[serde(default = "defaults::stream_idle_timeout")]
    pub stream_idle_timeout: Duration,
    /// Longest life of an upgraded connection; unlimited when unset.
    #[serde(default)]
    pub max_stream_duration: Option<Duration>,
    /// Server name a TLS ClientHello must carry, exact or `*.example.com`, on a
    /// `tls-passthrough` listener (the route names it); unset matches any name or
    /// none.
    #[serde(default)]
    pub sni: Option<String>,
    /// Networks whose clients this route serves (403 for the others); empty: all.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Networks whose clients this route refuses with 403, before `allow`.
    #[serde(default)]
    pub deny: Vec<String>,
    /// Requests need a bearer token that verifies with this route's `jwt_secret` or
    /// `jwt_public_key`: a missing, invalid or expired one gets 401 with
    /// `WWW-Authenticate: Bearer` instead of falling through to later routes.
    #[serde(default)]
    pub jwt_required: bool,
    /// Limiters (`[rate_limits.NAME]`) every request of this route passes, in order;
    /// the first over its limit answers 429.
    #[serde(default)]
    pub rate_limit: Vec<String>,
    /// Requests need a user and password from this htpasswd file (401 otherwise).
    #[serde(default)]
    pub basic_auth: Option<BasicAuthConfig>,
    /// Requests are first asked of this auth service (nginx's `auth_request`).
    #[serde(default)]
    pub forward_auth: Option<ForwardAuthConfig>,
    /// Header rules for requests to the backend, after the listener's.
    #[serde(default)]
    pub request_headers: Option<HeaderOpsConfig>,
    /// Header rules for responses to the client, after the listener's.
    #[serde(default)]
    pub response_headers: Option<HeaderOpsConfig>,
    /// Taken off the front of the path (on a segment boundary) before it is sent.
    #[serde(default)]
    pub strip_prefix: Option<String>,
    /// Rewrites the path (after `strip_prefix`) before it is sent.
    #[serde(default)]
    pub rewrite: Option<RewriteConfig>,
    /// Answers at the edge with a redirect; the route then names no pool.
    #[serde(default)]
    pub redirect: Option<RedirectConfig>,
    /// Largest request body on this route (413 over it), instead of the listener's.
    #[serde(default)]
    pub max_body_bytes: Option<u64>,
    /// The pool's `upstream_timeout` for this route's requests.
    #[serde(default)]
    pub upstream_timeout: Option<Duration>,
    /// The pool's `retries.per_try_timeout` for this route's requests.
    #[serde(default)]
    pub per_try_timeout: Option<Duration>,
    /// CORS answered at the edge: preflights from allowed origins get their 204
    /// here; responses carry the allow fields for allowed origins only.
    #[serde(default)]
    pub cors: Option<CorsConfig>,
    /// Error pages for this route's requests, over its listener's.
    #[serde(default)]
    pub error_pages: BTreeMap<String, String>,
    /// Codings responses are compressed with, in order of preference, as the
    /// client's `Accept-Encoding` allows: `"zstd"`, `"br"`, `"gzip"`. Empty: none.
    #[serde(default)]
    pub compress: Vec<String>,
    /// Levels by coding (`{ gzip = 1 }`); unset ones take gzip 5, zstd 3 (Caddy's
    /// defaults) and brotli 4.
    #[serde(default)]
    pub compress_level: BTreeMap<String, i32>,
    /// Responses known to be smaller than this are sent as they are. Default: 512.
    #[serde(default = "defaults::compress_min_bytes")]
    pub compress_min_bytes: u64,
    /// Content types compressed (`"text/"` is a prefix); empty: text and the
    /// usual structured types (JSON, JavaScript, XML, SVG, WebAssembly, fonts).
    #[serde(default)]
    pub compress_types: Vec<String>,
    /// Serves files from disk; the route then names no pool.
    #[serde(default, rename = "static")]
    pub static_files: Option<StaticConfig>,
}

impl Default for RouteConfig {
    /// A route to no pool with every key at its file default.
    fn default() -> Self {
        Self {
            jwt_required: false,
            rate_limit: Vec::new(),
            basic_auth: None,
            forward_auth: None,
            request_headers: None,
            response_headers: None,
            strip_prefix: None,
            rewrite: None,
            redirect: None,
            max_body_bytes: None,
            upstream_timeout: None,
            per_try_timeout: None,
            cors: None,
            error_pages: BTreeMap::new(),
            compress: Vec::new(),
            compress_level: BTreeMap::new(),
            compress_min_bytes: defaults::compress_min_bytes(),
            compress_types: Vec::new(),
            static_files: None,
            allow: Vec::new(),
            deny: Vec::new(),
            name: None,
            listener: None,
            host: None,
            path: None,
            path_prefix: None,
            path_regex: None,
            method: None,
            header: BTreeMap::new(),
            cookie: BTreeMap::new(),
            query: BTreeMap::new(),
            jwt_claim: BTreeMap::new(),
            jwt_secret: None,
            jwt_public_key: None,
            pool: String::new(),
            upgrades: defaults::upgrades(),
            stream_idle_timeout: defaults::stream_idle_timeout(),
            max_stream_duration: None,
            sni: None,
        }
    }
}

/// `method` of a route: `"GET"` or `["GET", "HEAD"]`; the request's method must
/// be one of them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MethodsConfig(pub Vec<String>);

/// `[pools.NAME]`.
#[derive(Clone, Debug, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PoolConfig {
    /// The balancing algorithm.
    #[serde(default)]
    pub balance: BalanceConfig,
    /// The backends; at least one unless `discover` finds them. A name
    /// (`"api.internal:8080"`) is one member per A/AAAA record, re-resolved as
    /// its TTL runs out.
    #[serde(default)]
    pub backends: Vec<BackendConfig>,
    /// How names among `backends` and the `discover.srv` records are re-resolved.
    #[serde(default)]
    pub dns: DnsConfig,
    /// Members found at run time: SRV records or a watched file.
    #[serde(default)]
    pub discover: Option<DiscoverConfig>,
    /// What the pool speaks to its backends.
    #[serde(default)]
    pub protocol: PoolProtocol,
    /// Time to establish a connection to a backend.
    #[serde(default = "defaults::connect_timeout")]
    pub connect_timeout: Duration,
    /// Time a backend has to start its response (and between two reads of it).
    #[serde(default = "defaults::upstream_timeout")]
    pub upstream_timeout: Duration,
    /// `Host` sent to the backends (`"backend.internal"`); the client's passes
    /// through when unset.
    #[serde(default)]
    pub host: Option<String>,
    /// Backends tried when connecting fails before any byte was sent.
    #[serde(default = "defaults::connect_attempts")]
    pub connect_attempts: NonZeroU32,
    /// Idle keep-alive connections kept per backend and worker.
    #[serde(default = "defaults::max_idle_per_backend")]
    pub max_idle_per_backend: usize,
    /// Time an idle upstream connection is kept.
    #[serde(default = "defaults::idle_timeout")]
    pub idle_timeout: Duration,
    /// What `ring_hash` and `maglev` hash: `client_ip` (default), `header:NAME`,
    /// `cookie:NAME`, `query:NAME`, `jwt:CLAIM`, `path`. A request without the key
    /// gets a random pick.
    #[serde(default)]
    pub hash_key: Option<String>,
    /// HS256 secret that verifies the token of a `jwt:CLAIM` hash key (at least 32
    /// bytes); an invalid token counts as no key. Unverified when neither key is set.
    #[serde(default)]
    pub jwt_secret: Option<Secret>,
    /// PEM file of the RSA (RS256) or EC P-256 (ES256) public key that verifies the
    /// token of a `jwt:CLAIM` hash key.
    #[serde(default)]
    pub jwt_public_key: Option<String>,
    /// Points per unit of weight on the `ring_hash` ring.
    #[serde(default = "defaults::virtual_nodes")]
    pub virtual_nodes: u32,
    /// `ring_hash` with bounded loads: no backend takes more than this times the mean
    /// in-flight count (for example 1.25). Unbounded when unset.
    #[serde(default)]
    pub balance_factor: Option<f64>,
    /// Size of the `maglev` lookup table; a prime.
    #[serde(default = "defaults::table_size")]
    pub table_size: u32,
    /// What `power_of_two` compares.
    #[serde(default)]
    pub load: LoadConfig,
    /// Sticky sessions: a signed cookie pins each client to the backend that first
    /// answered it. Off when unset.
    #[serde(default)]
    pub sticky: Option<StickyConfig>,
    /// Active health check. Off when unset: backends take traffic at once.
    #[serde(default)]
    pub health: Option<HealthCheckConfig>,
    /// Passive outlier detection. Off when unset.
    #[serde(default)]
    pub outlier: Option<OutlierConfig>,
    /// Slow-start window ("30s"): a joining or returning backend ramps from 10% to
    /// full weight. Off when unset.
    #[serde(default)]
    pub slow_start: Option<Duration>,
    /// How long a drained or removed backend's in-flight requests may run before it
    /// is released.
    #[serde(default = "defaults::drain_timeout")]
    pub drain_timeout: Duration,
    /// Percent of available backends under which the pool routes to every checked
    /// backend (Envoy's panic mode); 0 disables.
    #[serde(default = "defaults::panic_threshold")]
    pub panic_threshold: u32,
    /// Retries after a failed attempt. When unset, only connect failures are
    /// retried (`connect_attempts`).
    #[serde(default)]
    pub retries: Option<RetriesConfig>,
    /// Open upstream connections of the pool, all workers together; past it a
    /// request waits (`max_pending`) or gets 503 with Retry-After. Unlimited when unset.
    #[serde(default)]
    pub max_connections: Option<u32>,
    /// Requests waiting for a connection once `max_connections` is reached; past
    /// it a request gets 503 with Retry-After at once. Needs `max_connections`.
    #[serde(default)]
    pub max_pending: Option<u32>,
    /// Requests in flight to the pool; past it a request gets 503 with Retry-After
    /// at once. Unlimited when unset.
    #[serde(default)]
    pub max_requests: Option<u32>,
    /// PROXY protocol header (`"v1"` or `"v2"`) sent first on every backend
    /// connection, carrying the client's address. Unset: none.
    #[serde(default)]
    pub send_proxy_protocol: Option<ProxyProtocolConfig>,
    /// Backend connections are TLS (re-encryption), verified against `ca`.
    #[serde(default)]
    pub tls: Option<PoolTlsConfig>,
}

/// `sticky` of a pool: `{ cookie = "NAME", ttl = "1h", secret = "..." }`.
///
/// The cookie names the backend in a form clients can neither read nor forge (a
/// keyed tag and an HMAC-SHA256 with `secret`); every Fulcrum with the same config
/// and secret honours a cookie another one set.
#[derive(Clone, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StickyConfig {
    /// The cookie's name: a token (letters, digits, `!#$%&'*+-.^_`|~`).
    pub cookie: String,
    /// How long a cookie pins its backend; refreshed once half of it has passed.
    #[serde(default = "defaults::sticky_ttl")]
    pub ttl: Duration,
    /// The signing key, at least 16 bytes. Changing it un-pins every client.
    pub secret: String,
}

impl std::fmt::Debug for StickyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret stays out of logs and panics.
        f.debug_struct("StickyConfig")
            .field("cookie", &self.cookie)
            .field("ttl", &self.ttl)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// `load` of a `power_of_two` pool.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LoadConfig {
    /// Requests in flight (divided by weight).
    #[default]
    InFlight,
    /// Peak-EWMA latency times requests in flight, as linkerd does.
    PeakEwma,
}

/// `balance` of a pool.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BalanceConfig {
    /// Each backend in turn, weights ignored.
    #[default]
    RoundRobin,
    /// Smooth weighted round robin (nginx): exact over a cycle, interleaved.
    WeightedRoundRobin,
    /// Fewest in-flight requests per unit of weight; ties broken at random.
    LeastConnections,
    /// Uniformly at random, weights respected.
    Random,
    /// Two random candidates, the less loaded wins (`load`).
    PowerOfTwo,
    /// Consistent hashing on a ring with virtual nodes (ketama), optionally with bounded loads.
    RingHash,
    /// Maglev consistent hashing: a lookup table of prime size.
    Maglev,
}

/// `protocol` of a pool.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PoolProtocol {
    /// HTTP/1.1 over pooled keep-alive connections.
    #[default]
    Http1,
    /// HTTP/2 with prior knowledge, multiplexed.
    H2c,
    /// HTTP/2 over TLS (the pool's `tls`), agreed by ALPN, multiplexed.
    H2,
}

/// One backend: `"host:port"` or `{ address = "host:port", weight = 2 }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendConfig {
    /// `host:port`; a host name is resolved when the config is loaded.
    pub address: String,
    /// Relative share of requests for weighted algorithms; at least 1.
    pub weight: u32,
}

mod defaults {
    use super::Duration;
    use std::num::NonZeroU32;

    pub(super) fn compress_min_bytes() -> u64 {
        512
    }

    pub fn yes() -> bool {
        true
    }
    pub fn upgrades() -> Vec<String> {
        vec!["websocket".to_owned()]
    }
    pub fn stream_idle_timeout() -> Duration {
        Duration::from_secs(3600)
    }
    pub fn access_log_path() -> String {
        "stdout".to_owned()
    }
    pub fn shutdown_timeout() -> Duration {
        Duration::from_secs(30)
    }
    pub fn max_header_bytes() -> usize {
        32 * 1024
    }
    pub fn header_timeout() -> Duration {
        Duration::from_secs(10)
    }
    pub fn keepalive_timeout() -> Duration {
        Duration::from_secs(60)
    }
    pub fn client_timeout() -> Duration {
        Duration::from_secs(60)
    }
    pub fn connect_timeout() -> Duration {
        Duration::from_secs(5)
    }
    pub fn upstream_timeout() -> Duration {
        Duration::from_secs(60)
    }
    pub fn connect_attempts() -> NonZeroU32 {
        NonZeroU32::MIN.saturating_add(2)
    }
    pub fn max_idle_per_backend() -> usize {
        1024
    }
    pub fn idle_timeout() -> Duration {
        Duration::from_secs(60)
    }
    pub fn virtual_nodes() -> u32 {
        160
    }
    pub fn table_size() -> u32 {
        65_537
    }
    pub fn sticky_ttl() -> Duration {
        Duration::from_secs(3600)
    }
    pub fn drain_timeout() -> Duration {
        Duration::from_secs(30)
    }
    pub fn panic_threshold() -> u32 {
        50
    }
    pub fn alt_svc_max_age() -> Duration {
        Duration::from_secs(86_400)
    }
    pub fn max_concurrent_streams() -> u32 {
        100
    }
}
