//! Edge policies: the one ordered slot of the forward step where a policy may answer
//! a request itself (a redirect, an ACME check, 429, 401, 403, later a CORS
//! preflight or a static file) or change it, and later change its response. Every
//! client protocol goes through the same slot, once.
//!
//! In order: the ACME HTTP-01 answer (plain listeners, before anything else), the
//! listener's `allow` / `deny`, `redirect_https`, then for the matched route: its
//! `allow` / `deny`, its rate limits (before any authentication, as nginx's
//! `limit_req` comes before `auth_basic`, so a flood cannot make the auth checks
//! spend CPU or the auth service's time), a CORS preflight's answer (browsers send
//! preflights without credentials), `jwt_required`, `basic_auth`,
//! `forward_auth`, and last a route's `redirect` (so every check that guards a
//! route guards its redirect too).

use std::sync::Arc;

use bytes::Bytes;
use fulcrum_core::config::AccessList;
use fulcrum_core::jwt::RequestTokens;
use fulcrum_core::route::{Fields, Route};

use crate::edge::forward_auth::{Asked, Outcome};
use crate::edge::limits::{RateLimiter, Verdict};
use crate::http::{ProxyError, Request};
use crate::state::{Listener, RouteShape, Snapshot};

/// Fields a policy adds to the request before it goes to the backend (the
/// `forward_auth` service's `copy_headers`), and the names of the client's own
/// fields it removes.
#[derive(Debug, Default)]
pub struct Added<'s> {
    /// Lowercase names of client fields dropped (an underscore counts as a dash).
    pub dropped: &'s [String],
    /// Fields added, in order.
    pub fields: Vec<(String, Bytes)>,
}

/// A response a policy makes up.
#[derive(Debug)]
pub struct Answer {
    /// Status.
    pub status: u16,
    /// Fields besides the framing.
    pub fields: Vec<(&'static str, String)>,
    /// The whole body.
    pub body: Bytes,
}

/// One edge policy.
#[derive(Clone, Copy, Debug)]
pub enum Policy<'a> {
    /// Answers the ACME server's HTTP-01 check with the token's key authorization.
    AcmeHttp01,
    /// Refuses (403) a client the listener's `allow` / `deny` does not let in.
    Access(&'a AccessList),
    /// Refuses (403) a client the matched route's `allow` / `deny` does not let in.
    RouteAccess,
    /// Answers 429 when one of the matched route's rate limiters is over its limit.
    RateLimit,
    /// Answers 401 when the matched route has `jwt_required` and the request's
    /// bearer token does not verify (missing, forged, expired, not yet valid).
    JwtRequired,
    /// Answers 401 when the matched route has `basic_auth` and the request's user
    /// and password are not in its file.
    BasicAuth,
    /// Asks the matched route's `forward_auth` service; its refusal is the answer.
    ForwardAuth,
    /// Answers with a permanent redirect to HTTPS on this port (308 keeps the
    /// method and body).
    RedirectHttps(u16),
    /// Answers a route with `redirect` (its shapes on this listener, by route).
    Redirect(&'a [Option<Arc<RouteShape>>]),
    /// Answers a CORS preflight on a route with `cors`: 204 with the allow fields
    /// for an allowed origin, 403 for another. Before authentication, since
    /// browsers send preflights without credentials.
    Cors(&'a [Option<Arc<RouteShape>>]),
}

/// The policies that apply to a request on `l`, in order.
pub fn policies<'a>(l: &'a Listener, req: &Request<'_>) -> impl Iterator<Item = Policy<'a>> {
    let acme = (!req.target.secure).then_some(Policy::AcmeHttp01);
    let access = l.gate.access.as_ref().map(Policy::Access);
    let redirect = l.redirect_https.map(Policy::RedirectHttps);
    // A listener whose routes answer no preflight and redirect nothing skips both.
    let cors = l.answers.cors.then_some(Policy::Cors(&l.shapes));
    let route_redirect = l.answers.redirect.then_some(Policy::Redirect(&l.shapes));
    acme.into_iter()
        .chain(access)
        .chain(redirect)
        .chain([Policy::RouteAccess, Policy::RateLimit])
        .chain(cors)
        .chain([Policy::JwtRequired, Policy::BasicAuth, Policy::ForwardAuth])
        .chain(route_redirect)
}

/// 429 for `limiter`, with `Retry-After` and the IETF httpapi draft's
/// `RateLimit-Policy` and `RateLimit` fields; a gRPC call gets RESOURCE_EXHAUSTED.
fn too_many(req: &Request<'_>, limiter: &RateLimiter, retry_after: u64) -> Answer {
    let mut fields = vec![
        ("retry-after", retry_after.to_string()),
        ("ratelimit-policy", limiter.policy_field()),
        (
            "ratelimit",
            format!("\"{}\";r=0;t={retry_after}", limiter.name),
        ),
    ];
    let grpc = req
        .fields()
        .any(|(n, v)| n.eq_ignore_ascii_case(b"content-type") && fulcrum_core::grpc::is_grpc(v));
    if grpc {
        fields.extend([
            ("content-type", "application/grpc".to_owned()),
            (
                "grpc-status",
                fulcrum_core::grpc::Code::ResourceExhausted
                    .as_str()
                    .to_owned(),
            ),
            (
                "grpc-message",
                format!("rate limit {} exceeded", limiter.name),
            ),
        ]);
        return Answer {
            status: 200,
            fields,
            body: Bytes::new(),
        };
    }
    fields.push(("content-type", "text/plain".into()));
    Answer {
        status: 429,
        fields,
        body: Bytes::from_static(b"Too Many Requests\n"),
    }
}

/// The key of `req` for `limiter`, `None` when the request lacks it.
fn limit_key(
    snap: &Snapshot,
    req: &Request<'_>,
    route: &Route,
    limiter: &RateLimiter,
    tokens: &RequestTokens,
) -> Option<u64> {
    limiter.key.of(
        req.peer.ip(),
        req.target.path,
        route.index,
        |name| {
            req.fields()
                .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
                .map(|(_, v)| v)
        },
        || {
            let key = snap.route_jwt.get(route.index).and_then(Option::as_ref)?;
            tokens.claims(&Fields(req.fields()), Some(key))
        },
    )
}

/// RFC 6750's answer: 401 with a `WWW-Authenticate: Bearer` challenge, saying
/// `invalid_token` when a token came and did not verify.
fn unauthorized(token_sent: bool) -> Answer {
    let challenge = if token_sent {
        "Bearer realm=\"fulcrum\", error=\"invalid_token\"".to_owned()
    } else {
        "Bearer realm=\"fulcrum\"".to_owned()
    };
    Answer {
        status: 401,
        fields: vec![
            ("www-authenticate", challenge),
            ("content-type", "text/plain".into()),
        ],
        body: Bytes::from_static(b"Unauthorized\n"),
    }
}

/// The answer to a client an access list refuses.
fn forbidden() -> Answer {
    Answer {
        status: 403,
        fields: vec![("content-type", "text/plain".into())],
        body: Bytes::from_static(b"Forbidden\n"),
    }
}

impl Policy<'_> {
    /// Looks at a request (and its route, when one matched): `Some` answers it;
    /// fields to add to the request go to `added`.
    pub async fn on_request<'s>(
        self,
        snap: &'s Snapshot,
        req: &Request<'_>,
        route: Option<&Route>,
        tokens: &RequestTokens,
        added: &mut Option<Added<'s>>,
    ) -> Result<Option<Answer>, ProxyError> {
        match self {
            Self::RateLimit => {
                let Some(r) = route else { return Ok(None) };
                let Some(limiters) = snap.edge.route_limits.get(r.index) else {
                    return Ok(None);
                };
                for l in limiters {
                    let Some(key) = limit_key(snap, req, r, l, tokens) else {
                        continue;
                    };
                    // A fleet limiter may wait on Redis: boxed, so the common
                    // request's future stays small.
                    let verdict = match l.check_now(key) {
                        Some(v) => v,
                        None => Box::pin(l.check(key)).await,
                    };
                    if let Verdict::Limited { retry_after } = verdict {
                        return Ok(Some(too_many(req, l, retry_after)));
                    }
                }
                Ok(None)
            }
            Self::BasicAuth => {
                let Some(r) = route else { return Ok(None) };
                let Some(auth) = snap.edge.basic.get(r.index).and_then(Option::as_ref) else {
                    return Ok(None);
                };
                let value = req
                    .fields()
                    .find(|(n, _)| n.eq_ignore_ascii_case(b"authorization"))
                    .map(|(_, v)| v);
                if Box::pin(auth.check(value)).await {
                    return Ok(None);
                }
                Ok(Some(Answer {
                    status: 401,
                    fields: vec![
                        (
                            "www-authenticate",
                            format!("Basic realm=\"{}\", charset=\"UTF-8\"", auth.realm),
                        ),
                        ("content-type", "text/plain".into()),
                    ],
                    body: Bytes::from_static(b"Unauthorized\n"),
                }))
            }
            Self::ForwardAuth => {
                let Some(r) = route else { return Ok(None) };
                let Some(auth) = snap.edge.forward_auth.get(r.index).and_then(Option::as_ref)
                else {
                    return Ok(None);
                };
                let asked = Asked {
                    method: req.method,
                    proto: req.target.proto(),
                    host: fulcrum_core::route::host_name(req.target.host),
                    uri: req.target.path,
                    client: req.peer.ip(),
                };
                match Box::pin(auth.ask(asked, req.fields())).await {
                    Outcome::Allow(fields) => {
                        *added = Some(Added {
                            dropped: &auth.copy,
                            fields,
                        });
                        Ok(None)
                    }
                    Outcome::Refuse {
                        status,
                        fields,
                        body,
                    } => Ok(Some(Answer {
                        status,
                        fields,
                        body,
                    })),
                    Outcome::Unavailable(why) => {
                        tracing::warn!(route = r.index, "forward_auth: {why}");
                        Err(ProxyError::Unavailable("the auth service did not answer"))
                    }
                }
            }
            Self::JwtRequired => {
                let Some(r) = route.filter(|r| r.jwt_required) else {
                    return Ok(None);
                };
                let key = snap.route_jwt.get(r.index).and_then(Option::as_ref);
                let fields = Fields(req.fields());
                // No key (it failed to load): nothing verifies, as with a bad token.
                let verified = key.is_some_and(|k| tokens.claims(&fields, Some(k)).is_some());
                if verified {
                    return Ok(None);
                }
                let sent = req
                    .fields()
                    .any(|(n, _)| n.eq_ignore_ascii_case(b"authorization"));
                Ok(Some(unauthorized(sent)))
            }
            Self::Access(list) => Ok((!list.permits(req.peer.ip())).then(forbidden)),
            Self::RouteAccess => {
                let list = route.and_then(|r| snap.route_access.get(r.index)?.as_ref());
                Ok(list
                    .filter(|l| !l.permits(req.peer.ip()))
                    .map(|_| forbidden()))
            }
            Self::AcmeHttp01 => {
                let path = req.target.path;
                if !path.starts_with(crate::tls::acme::HTTP01_PREFIX) {
                    return Ok(None);
                }
                let key = crate::tls::acme::challenges().http01(path, &snap.config);
                Ok(key.map(|key| Answer {
                    status: 200,
                    fields: vec![("content-type", "text/plain".into())],
                    body: Bytes::from(key),
                }))
            }
            Self::Cors(shapes) => {
                let Some(r) = route else { return Ok(None) };
                let Some(cors) = shapes
                    .get(r.index)
                    .and_then(Option::as_deref)
                    .and_then(|s| s.cors.as_ref())
                else {
                    return Ok(None);
                };
                if !fulcrum_core::shape::cors::is_preflight(req.method, req.fields()) {
                    return Ok(None);
                }
                let origin = super::shaping::origin(req).unwrap_or_default();
                Ok(Some(match cors.preflight(origin) {
                    Some(fields) => Answer {
                        status: 204,
                        fields,
                        body: Bytes::new(),
                    },
                    None => forbidden(),
                }))
            }
            Self::Redirect(shapes) => {
                let Some(r) = route else { return Ok(None) };
                let Some(redirect) = shapes
                    .get(r.index)
                    .and_then(Option::as_deref)
                    .and_then(|s| s.redirect.as_ref())
                else {
                    return Ok(None);
                };
                let request_id = req
                    .request_id
                    .and_then(|(_, v)| v)
                    .and_then(|v| std::str::from_utf8(v).ok())
                    .unwrap_or_default();
                let mut label = String::new();
                let vars = super::shaping::vars(snap, req, r.index, request_id, &mut label);
                Ok(Some(Answer {
                    status: redirect.status,
                    fields: vec![("location", redirect.to.render(&vars))],
                    body: Bytes::new(),
                }))
            }
            Self::RedirectHttps(port) => {
                let host = fulcrum_core::route::host_name(req.target.host);
                if host.is_empty() || host.bytes().any(|b| b <= b' ' || b == 0x7f) {
                    return Err(ProxyError::BadRequest("no host to redirect to"));
                }
                let authority = if port == 443 {
                    host.to_owned()
                } else {
                    format!("{host}:{port}")
                };
                let location = format!("https://{authority}{}", req.target.path);
                Ok(Some(Answer {
                    status: 308,
                    fields: vec![("location", location)],
                    body: Bytes::new(),
                }))
            }
        }
    }
}
