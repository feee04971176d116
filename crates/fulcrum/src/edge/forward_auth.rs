//! `forward_auth`: each request is first asked of an auth service, as nginx's
//! `auth_request` and Traefik's ForwardAuth do. The subrequest carries the
//! original method, the headers (without the body) and `X-Forwarded-Method`,
//! `-Proto`, `-Host`, `-Uri` and `-For`; a 2xx lets the request through with the
//! chosen fields of the answer added, any other status is the client's answer.
//! Each worker keeps its own pooled keep-alive client to the service.

use std::net::IpAddr;
use std::time::Duration;

use bytes::Bytes;
use fulcrum_core::config::ForwardAuthConfig;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// Largest body of a refusal passed to the client.
const MAX_BODY: usize = 64 * 1024;

/// Fields of a refusal passed on to the client (the framing is Fulcrum's own).
const PASSED: [&str; 6] = [
    "content-type",
    "www-authenticate",
    "location",
    "set-cookie",
    "retry-after",
    "cache-control",
];

/// Fields never sent to the auth service: hop-by-hop, the framing of a body it does
/// not get, and the ones Fulcrum sets.
const NOT_SENT: [&str; 16] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
    "expect",
    "forwarded",
    "x-forwarded-method",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-uri",
    "x-forwarded-for",
];

thread_local! {
    static CLIENT: Client<HttpConnector, Empty<Bytes>> = {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector)
    };
}

/// A route's `forward_auth`.
#[derive(Debug)]
pub struct ForwardAuth {
    uri: http::Uri,
    /// Fields copied from a 2xx answer onto the request (lowercase); a client's own
    /// fields of these names never reach the backend.
    pub copy: Vec<String>,
    timeout: Duration,
}

/// The service's verdict.
#[derive(Debug)]
pub enum Outcome {
    /// 2xx: go on, with these fields added to the request.
    Allow(Vec<(String, Bytes)>),
    /// Any other status: the client gets it, with these fields and this body.
    Refuse {
        /// The service's status.
        status: u16,
        /// The fields of [`PASSED`] it sent.
        fields: Vec<(&'static str, String)>,
        /// Its body (at most 64 KiB).
        body: Bytes,
    },
    /// Unreachable, too slow, or no valid HTTP answer.
    Unavailable(String),
}

/// What of the request the service is told.
#[derive(Clone, Copy, Debug)]
pub struct Asked<'a> {
    /// Method.
    pub method: &'a str,
    /// `http` or `https`.
    pub proto: &'a str,
    /// Host the client asked for.
    pub host: &'a str,
    /// Path and query.
    pub uri: &'a str,
    /// The client's address.
    pub client: IpAddr,
}

impl ForwardAuth {
    /// The route's setting; `url` was checked with the config.
    pub fn new(config: &ForwardAuthConfig) -> Result<Self, String> {
        let uri: http::Uri = config
            .url
            .parse()
            .map_err(|e| format!("{:?}: {e}", config.url))?;
        Ok(Self {
            uri,
            copy: config
                .copy_headers
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            timeout: config.timeout.get(),
        })
    }

    /// Asks the service about a request with `fields`.
    pub async fn ask<'a>(
        &self,
        asked: Asked<'_>,
        fields: impl Iterator<Item = (&'a [u8], &'a [u8])>,
    ) -> Outcome {
        let mut b = http::Request::builder()
            .method(asked.method)
            .uri(self.uri.clone());
        for (name, value) in fields {
            let skip = NOT_SENT
                .iter()
                .any(|n| n.as_bytes().eq_ignore_ascii_case(name))
                || self
                    .copy
                    .iter()
                    .any(|c| fulcrum_core::forward::same_name(name, c.as_bytes()));
            if !skip {
                b = b.header(name, value);
            }
        }
        let client = asked.client.to_string();
        let req = b
            .header("x-forwarded-method", asked.method)
            .header("x-forwarded-proto", asked.proto)
            .header("x-forwarded-host", asked.host)
            .header("x-forwarded-uri", asked.uri)
            .header("x-forwarded-for", client)
            .body(Empty::new());
        let req = match req {
            Ok(r) => r,
            Err(e) => return Outcome::Unavailable(format!("cannot build the subrequest: {e}")),
        };
        let client = CLIENT.with(Clone::clone);
        let exchange =
            async {
                let resp = client.request(req).await.map_err(|e| e.to_string())?;
                let (parts, body) = resp.into_parts();
                if parts.status.is_success() {
                    let added =
                        self.copy
                            .iter()
                            .flat_map(|name| {
                                parts.headers.get_all(name.as_str()).iter().map(move |v| {
                                    (name.clone(), Bytes::copy_from_slice(v.as_bytes()))
                                })
                            })
                            .collect();
                    return Ok(Outcome::Allow(added));
                }
                let body = Limited::new(body, MAX_BODY)
                    .collect()
                    .await
                    .map_err(|e| format!("reading the refusal: {e}"))?
                    .to_bytes();
                let fields = PASSED
                    .iter()
                    .flat_map(|&name| {
                        parts
                            .headers
                            .get_all(name)
                            .iter()
                            .filter_map(move |v| Some((name, v.to_str().ok()?.to_owned())))
                    })
                    .collect();
                Ok::<_, String>(Outcome::Refuse {
                    status: parts.status.as_u16(),
                    fields,
                    body,
                })
            };
        match tokio::time::timeout(self.timeout, exchange).await {
            Err(_) => Outcome::Unavailable(format!("no answer within {:?}", self.timeout)),
            Ok(Err(e)) => Outcome::Unavailable(e),
            Ok(Ok(o)) => o,
        }
    }
}
