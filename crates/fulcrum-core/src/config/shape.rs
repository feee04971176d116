//! Config of shaping at the edge: header rules, path rewrites, redirects and the
//! listener's path policy.

use std::collections::BTreeMap;

use serde::Deserialize;

/// `request_headers` / `response_headers`: `{ set = {..}, add = {..}, remove = [..] }`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HeaderOpsConfig {
    /// Fields set, replacing any the other side sent under that name. Values may
    /// use `{client_ip}`, `{host}`, `{request_id}`, `{scheme}`, `{route}`.
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    /// Fields added beside any the other side sent; same placeholders.
    #[serde(default)]
    pub add: BTreeMap<String, String>,
    /// Fields removed (either spelling, dash or underscore).
    #[serde(default)]
    pub remove: Vec<String>,
}

/// `rewrite = { regex = '^/old/(.*)$', to = "/new/$1" }` on a route.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RewriteConfig {
    /// Regex on the normalized path (after `strip_prefix`), query excluded.
    pub regex: String,
    /// Replacement path; `$1`, `${name}` name captures. The query is kept.
    pub to: String,
}

/// `redirect = { to = "https://example.com{path}{query}", status = 301 }` on a route.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RedirectConfig {
    /// The `Location`; may use `{scheme}`, `{host}`, `{path}`, `{query}` (with its
    /// `?`), `{client_ip}`, `{request_id}`, `{route}`.
    pub to: String,
    /// 301, 302 (default), 307 or 308.
    #[serde(default = "default_redirect_status")]
    pub status: u16,
}

fn default_redirect_status() -> u16 {
    302
}

/// `encoded_slashes` on a listener: what an encoded `/` or `\` in a path gets.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum EncodedSlashesConfig {
    /// 400: a backend that decodes them would see other segments than the routes did.
    #[default]
    Reject,
    /// Kept encoded, as ordinary characters, never separators.
    Keep,
}

/// `cors = { origins = [...], methods = [...], ... }` on a route.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CorsConfig {
    /// Allowed origins: `"https://app.example.com"`, `"https://*.example.com"`, or `"*"`.
    pub origins: Vec<String>,
    /// Methods a preflight allows. Default: `["GET", "HEAD", "POST"]`.
    #[serde(default = "default_cors_methods")]
    pub methods: Vec<String>,
    /// Request fields a preflight allows. Default: none beyond the CORS-safelisted.
    #[serde(default)]
    pub headers: Vec<String>,
    /// Response fields scripts may read (`Access-Control-Expose-Headers`).
    #[serde(default)]
    pub expose: Vec<String>,
    /// Cookies and HTTP authentication allowed (`Access-Control-Allow-Credentials`).
    #[serde(default)]
    pub credentials: bool,
    /// How long a browser may keep a preflight's answer (`Access-Control-Max-Age`).
    #[serde(default)]
    pub max_age: Option<super::Duration>,
}

fn default_cors_methods() -> Vec<String> {
    vec!["GET".into(), "HEAD".into(), "POST".into()]
}

/// `static = { root = "/var/www/site", index = "index.html", fallback = "/index.html" }`
/// on a route: files served from disk; the route then names no pool.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StaticConfig {
    /// The directory served; nothing outside it is ever sent.
    pub root: String,
    /// The file served for a directory's URL (ending in `/`). Default: `index.html`.
    #[serde(default = "default_index")]
    pub index: String,
    /// A path under `root` served (200) when the asked file does not exist: a
    /// single-page app's `/index.html`. Default: unset (404).
    #[serde(default)]
    pub fallback: Option<String>,
    /// A directory without its index is listed (else 403). Default: false.
    #[serde(default)]
    pub list: bool,
    /// Symbolic links may lead outside `root`. Default: false (such a link is a 404).
    #[serde(default)]
    pub follow_symlinks: bool,
}

fn default_index() -> String {
    "index.html".into()
}
