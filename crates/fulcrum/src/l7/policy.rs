//! Edge policies: the one ordered slot of the forward step where a policy may answer
//! a request itself (a redirect, an ACME check, later 429, 401, 403, a CORS
//! preflight or a static file) or change it, and later change its response. Every
//! client protocol goes through the same slot, once.
//!
//! In order: the ACME HTTP-01 answer (plain listeners, before anything else), the
//! listener's `allow` / `deny`, `redirect_https`, then the matched route's `allow` /
//! `deny`.

use bytes::Bytes;
use fulcrum_core::config::AccessList;
use fulcrum_core::jwt::RequestTokens;
use fulcrum_core::route::{Fields, Route};

use crate::http::{ProxyError, Request};
use crate::state::{Listener, Snapshot};

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
    /// Answers 401 when the matched route has `jwt_required` and the request's
    /// bearer token does not verify (missing, forged, expired, not yet valid).
    JwtRequired,
    /// Answers with a permanent redirect to HTTPS on this port (308 keeps the
    /// method and body).
    RedirectHttps(u16),
}

/// The policies that apply to a request on `l`, in order.
pub fn policies<'a>(l: &'a Listener, req: &Request<'_>) -> impl Iterator<Item = Policy<'a>> {
    let acme = (!req.target.secure).then_some(Policy::AcmeHttp01);
    let access = l.gate.access.as_ref().map(Policy::Access);
    let redirect = l.redirect_https.map(Policy::RedirectHttps);
    acme.into_iter()
        .chain(access)
        .chain(redirect)
        .chain([Policy::RouteAccess, Policy::JwtRequired])
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
    /// Looks at a request (and its route, when one matched): `Some` answers it.
    pub fn on_request(
        self,
        snap: &Snapshot,
        req: &Request<'_>,
        route: Option<&Route>,
        tokens: &RequestTokens,
    ) -> Result<Option<Answer>, ProxyError> {
        match self {
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
