//! The one forward step every client protocol feeds, in this order: route (host,
//! path and predicates, the open-proxy guard) → edge policies → the pool's
//! admission → the attempt loop (`upstream::run`: pick, connect, try, retry) with
//! the pool's backend leg (`upstream::h1` or `upstream::h2`) → the response, handed
//! back to the client codec to encode. Upgrades (WebSocket over HTTP/1.1 and over
//! HTTP/2) and gRPC are cases of this flow.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use fulcrum_core::balance::Backend;
use fulcrum_core::config::PoolProtocol;
use fulcrum_core::forward::{FieldList, Target};
use fulcrum_core::http1::{self, Framing};
use fulcrum_core::jwt::RequestTokens;
use fulcrum_core::retry;
use fulcrum_core::route::{Fields, Route};
use fulcrum_core::shape::path::normalize;

use super::files::FileAnswer;
use super::ids::Ids;
use super::policy::{self, Answer};
use super::shaping::{self, Auth, Outgoing};
use crate::access_log::Entry;
use crate::http::body::Source;
use crate::http::message::Asked;
use crate::http::{Failed, Plan, ProxyError, Request, Response, ResponseBody, Switch, Upgrade};
use crate::state::{Listener, Member, Pool, RouteShape, Snapshot};
use crate::upstream::h1::Exchanged;
use crate::upstream::{self, Attempts, ConnSlot, Lease, Pinned, RequestSlot};
use crate::worker::Worker;

/// Where a request ended up.
pub enum Forwarded<'s, 'r> {
    /// A policy answered it.
    Answered(Answer),
    /// The backend's response, for the client codec to encode.
    Response(Response, Held<'s>),
    /// The backend switched protocols as the client asked.
    Switched(Switch, Held<'s>, Upgrade<'r>),
    /// A static route's file (or its small answer).
    File(FileAnswer),
}

/// What a forwarded request holds until its response has been delivered.
pub struct Held<'s> {
    /// The pool.
    pub pool: &'s Pool,
    /// The backend that answered.
    pub backend: &'s Backend,
    /// Its health record.
    pub member: Option<&'s Arc<Member>>,
    /// The request in flight on it.
    pub lease: Lease,
    /// The pool's connection slot, when limited.
    pub slot: Option<ConnSlot>,
    /// The pool's request slot.
    pub admitted: RequestSlot,
}

impl Held<'_> {
    /// The response was delivered: its connection goes back to the pool when
    /// `whole` (both bodies went through) and the backend allows.
    pub fn release(self, w: &Worker, body: ResponseBody, whole: bool) {
        upstream::h1::release(w, self.pool, self.backend, body, whole);
    }

    /// Streams a backend's response `body` into `sink`, an HTTP/2 or HTTP/3 stream
    /// whose head went out, compressed as `coded` chose and cut at the gRPC
    /// `deadline`; then releases what the request held (`body_done`: the request's
    /// body went through whole). A failure resets the client's stream, so the
    /// client sees the response break, not end cleanly.
    pub async fn stream_body(
        self,
        w: &Worker,
        (mut body, framing, deadline): (ResponseBody, Framing, Option<tokio::time::Instant>),
        mut sink: crate::http::body::Sink<'_>,
        coded: &crate::http::fields::Coded,
        body_done: bool,
        e: &mut Entry<'_>,
    ) -> Result<(), ProxyError> {
        use crate::http::body::{pump_encoded, PumpError};
        let mut src = body.source(framing);
        let mut enc = coded.encoder().map_err(|f| f.err)?;
        let pumped = pump_encoded(&mut src, &mut sink, enc.as_mut());
        let result = match deadline {
            Some(at) => tokio::time::timeout_at(at, pumped)
                .await
                .unwrap_or_else(|_| Err(PumpError::Sink("grpc-timeout passed".into()))),
            None => pumped.await,
        };
        e.bytes_out = sink.sent();
        drop(src);
        match result {
            Ok(()) => self.release(w, body, body_done),
            Err(err) => {
                sink.abort();
                e.error = Some(err.to_string());
            }
        }
        Ok(())
    }
}

/// The client of a request from `peer` on `l`, and the trusted proxy it came
/// through, if it did (`trusted_proxies`).
pub fn client(
    l: &Listener,
    peer: SocketAddr,
    fields: FieldList<'_>,
) -> (SocketAddr, Option<std::net::IpAddr>) {
    if l.trusted.is_empty() || !l.trusted.iter().any(|n| n.contains(peer.ip())) {
        return (peer, None);
    }
    let ip = fulcrum_core::forward::client_address(peer.ip(), fields.iter(), &l.trusted);
    (SocketAddr::new(ip, 0), Some(peer.ip()))
}

/// What the access log takes from the request itself: the fields a codec does not
/// know about, read the same way for every client protocol.
pub fn describe<'a>(e: &mut Entry<'a>, req: &Request<'a>, ids: &'a Ids) {
    e.trace_id = ids.trace_id();
    for (name, value) in req.fields.iter() {
        if name.eq_ignore_ascii_case(b"user-agent") {
            e.user_agent = Some(value);
        } else if name.eq_ignore_ascii_case(b"referer") {
            e.referer = Some(value);
        }
    }
}

/// Forwards `req` (its body in `body`) as `l`'s routes, policies and pools say.
pub async fn forward<'s, 'r>(
    w: &Rc<Worker>,
    snap: &'s Snapshot,
    l: &'s Listener,
    req: &Request<'r>,
    body: &mut Source<'_>,
    e: &mut Entry<'s>,
) -> Result<Forwarded<'s, 'r>, Failed> {
    // Routes, policies and the backend all see the one normal form of the path.
    let orig = req;
    let norm = normalize(req.target.path, l.encoded_slashes)
        .map_err(|err| ProxyError::BadRequest(err.reason()))?;
    let normalized;
    let req = match &norm {
        Cow::Borrowed(_) => req,
        Cow::Owned(path) => {
            normalized = Request {
                target: Target { path, ..req.target },
                ..*req
            };
            &normalized
        }
    };
    // The bearer token is decoded only if a `jwt_claim` route or `jwt:` key asks.
    let tokens = RequestTokens::new(upstream::now_unix);
    let fields = Fields(req.fields());
    let found = route(snap, l, req, &fields, &tokens);
    if let Some((route, _)) = found {
        // Set before the policies, so a request a policy answers (429, 401) is
        // logged with its route.
        e.route = Some(route.index);
        e.route_name = route_name(snap, route.index);
        e.route_traffic = snap.routes.get(route.index).map(|t| &**t);
    }
    let mut added = None;
    for p in policy::policies(l, req) {
        let route = found.map(|(r, _)| r);
        if let Some(mut answer) = p.on_request(snap, req, route, &tokens, &mut added).await? {
            // An auth service's refusal is that service's answer, as it sent it.
            let own = !matches!(p, policy::Policy::ForwardAuth);
            finish_answer(
                &mut answer,
                l,
                route.map(|r| r.index),
                req,
                e.request_id,
                own,
            );
            return Ok(Forwarded::Answered(answer));
        }
    }
    let (route, pool) = found.ok_or(ProxyError::NoRoute)?;
    let shape = l.shapes.get(route.index).and_then(Option::as_deref);
    if let Some(shape) = shape.filter(|s| s.files.is_some()) {
        // Boxed: its future (disk lookups) would otherwise enlarge every request's.
        let answer = Box::pin(static_answer(
            snap,
            l,
            shape,
            route.index,
            req,
            e.request_id,
        ))
        .await?;
        return Ok(Forwarded::File(answer));
    }
    let pool = pool.ok_or(ProxyError::NoRoute)?;
    e.pool = &pool.name;
    let max_body = shape
        .and_then(|s| s.max_body_bytes)
        .unwrap_or(l.max_body_bytes);
    if matches!(req.framing, Framing::Length(n) if n > max_body) {
        return Err(ProxyError::BodyTooLarge.into());
    }
    if max_body != l.max_body_bytes {
        body.set_limit(max_body);
    }
    let hash = pool.hash_key.as_ref().and_then(|key| {
        key.hash_with_claims(
            req.peer.ip(),
            req.target.path,
            |name| {
                req.fields()
                    .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
                    .map(|(_, v)| v)
            },
            || tokens.claims(&fields, pool.jwt_key.as_ref()),
        )
    });
    if hash.is_none() && pool.hash_key.is_some() {
        pool.state.hash_missing.fetch_add(1, Ordering::Relaxed);
    }
    // The sticky cookie may be in any `cookie` field (HTTP/2 may split them).
    let cookies = req
        .fields()
        .filter(|(n, _)| n.eq_ignore_ascii_case(b"cookie"))
        .map(|(_, v)| v);
    let pinned = Pinned::read(pool, cookies);
    let plan = Plan {
        // The original request: the upgrade borrows its fields, which are the same.
        upgrade: upgrade(w, snap, route, pool, orig)?,
        stream_idle: stream_idle(snap, route),
    };
    // The route's rewrite, the pool's host and the header rules, with the fields a
    // policy added (forward_auth) in place of the client's own of those names.
    let mut route_label = String::new();
    let vars = shape.map(|_| shaping::vars(snap, req, route.index, e.request_id, &mut route_label));
    let auth = added.as_ref().map(|a| Auth {
        dropped: a.dropped,
        fields: &a.fields,
    });
    let outgoing = Outgoing::of(req, shape, pool, auth, vars.as_ref());
    let pairs: Vec<(&[u8], &[u8])>;
    let shaped;
    let req = match &outgoing {
        None => req,
        Some(out) => {
            pairs = out.fields(req).collect();
            shaped = Request {
                fields: FieldList::Pairs(&pairs),
                identity: None,
                request_id: None,
                traceparent: None,
                target: Target {
                    path: out.path.as_deref().unwrap_or(req.target.path),
                    host: pool.host.as_deref().unwrap_or(req.target.host),
                    ..req.target
                },
                original_host: pool.host.is_some().then_some(req.target.host),
                ..*req
            };
            &shaped
        }
    };
    let admitted = upstream::admit(pool)?;
    let replayable = req.framing == Framing::Empty
        && (retry::is_retryable_method(req.method) || plan.upgrade.is_some());
    let mut attempts = Attempts::new(pool, hash, pinned, replayable).with_timeouts(
        shape.and_then(|s| s.upstream_timeout),
        shape.and_then(|s| s.per_try_timeout),
    );
    let tried = match pool.protocol {
        PoolProtocol::Http1 => {
            upstream::run(w, &mut attempts, e, true, async |b, a, e| {
                upstream::h1::exchange(w, pool, b, a, req, &plan, body, e).await
            })
            .await?
        }
        PoolProtocol::H2c | PoolProtocol::H2 => {
            upstream::run(w, &mut attempts, e, false, async |b, a, e| {
                upstream::h2::exchange(w, pool, b, a, req, body, e).await
            })
            .await?
        }
    };
    e.bytes_in = body.received();
    let held = Held {
        pool,
        backend: tried.backend,
        member: attempts.member_arc(),
        lease: tried.lease,
        slot: tried.slot,
        admitted,
    };
    match (tried.value, plan.upgrade) {
        (Exchanged::Response(mut resp), _) => {
            if let (Some(shape), Some(vars)) = (shape, &vars) {
                resp.edits = shaping::response_edits(shape, vars, req);
                resp.encode = shaping::coding(shape, req, &resp);
            }
            if let Some(ma) = l.alt_svc {
                shaping::advertise_h3(&mut resp, req, ma);
            }
            Ok(Forwarded::Response(resp, held))
        }
        (Exchanged::Switched(sw), Some(u)) => Ok(Forwarded::Switched(sw, held, u)),
        // The leg accepts a 101 only for an upgrade asked.
        (Exchanged::Switched(_), None) => {
            Err(ProxyError::BadResponse("101 without an upgrade request".into()).into())
        }
    }
}

/// What every answer Fulcrum makes itself gets on its way out: a CORS route's
/// allow fields (so a script on an allowed origin can read a 401, 403 or 429; a
/// preflight's answer has them already), and for Fulcrum's `own` refusals the
/// error page or JSON the client asks for.
fn finish_answer(
    answer: &mut Answer,
    l: &Listener,
    route: Option<usize>,
    req: &Request<'_>,
    request_id: &str,
    own: bool,
) {
    let cors = route
        .and_then(|r| l.shapes.get(r)?.as_deref()?.cors.as_ref())
        .filter(|_| !fulcrum_core::shape::cors::is_preflight(req.method, req.fields()));
    if let Some(cors) = cors {
        answer.fields.extend(cors.actual(shaping::origin(req)));
    }
    if !own || answer.status < 400 {
        return;
    }
    if let Some(body) = shaping::error_body(l, route, req, request_id, answer.status) {
        answer.fields.retain(|(n, _)| *n != "content-type");
        answer
            .fields
            .push(("content-type", body.content_type.into()));
        answer.body = body.body;
    }
}

/// A static route's answer: its file (the path after the route's rewrite), the
/// route's response rules, and the error page for a 4xx.
async fn static_answer(
    snap: &Snapshot,
    l: &Listener,
    shape: &RouteShape,
    route: usize,
    req: &Request<'_>,
    request_id: &str,
) -> Result<FileAnswer, ProxyError> {
    let Some(files) = &shape.files else {
        return Err(ProxyError::NoRoute);
    };
    let rewritten = shape
        .rewrite
        .as_ref()
        .and_then(|r| r.apply(req.target.path));
    let target = rewritten.as_deref().unwrap_or(req.target.path);
    let mut answer = super::files::serve(files, req, target).await?;
    shaping::file_fields(&mut answer, shape, snap, req, route, request_id);
    if answer.status >= 400 {
        if let Some(body) = shaping::error_body(l, Some(route), req, request_id, answer.status) {
            let framing = |n: &&str| matches!(*n, "content-type" | "content-length");
            answer.fields.retain(|(n, _)| !framing(n));
            answer
                .fields
                .push(("content-type", body.content_type.into()));
            answer
                .fields
                .push(("content-length", body.body.len().to_string()));
            answer.bytes = body.body;
        }
    }
    Ok(answer)
}

/// The `name` of route `index`, when it has one.
pub fn route_name(snap: &Snapshot, index: usize) -> Option<&str> {
    snap.config.routes.get(index)?.name.as_deref()
}

/// The route and pool for a request, if a route matches; a full URL only by a route
/// that names its host (no open proxy).
fn route<'s>(
    snap: &'s Snapshot,
    l: &'s Listener,
    req: &Request<'_>,
    headers: &dyn fulcrum_core::route::Headers,
    tokens: &RequestTokens,
) -> Option<(&'s Route, Option<&'s Pool>)> {
    let t = &req.target;
    let view = fulcrum_core::route::Request {
        method: req.method,
        host: Some(t.host).filter(|h| !h.is_empty()),
        path: t.path,
        headers,
    };
    let route = l.routes.find_with_tokens(&view, tokens)?;
    if !t.allowed_by(route.has_host) {
        return None;
    }
    // A redirect route has no pool: a policy answers it.
    Some((route, snap.pools.get(route.pool)))
}

/// The upgrade to ask of the backend: an HTTP/1.1 one the route lists (others are
/// ignored, RFC 9110 §7.8, and a request with a body is no WebSocket handshake), or
/// an RFC 8441 WebSocket, which needs a route that lists it and an HTTP/1.1 pool.
fn upgrade<'r>(
    w: &Worker,
    snap: &Snapshot,
    route: &Route,
    pool: &Pool,
    req: &Request<'r>,
) -> Result<Option<Upgrade<'r>>, ProxyError> {
    match req.asked {
        Asked::Nothing => return Ok(None),
        Asked::Upgrade if req.framing != Framing::Empty => return Ok(None),
        Asked::Upgrade | Asked::WebSocket => {}
    }
    let rc = snap.config.routes.get(route.index);
    let idle = stream_idle(snap, route);
    let max = rc.and_then(|r| r.max_stream_duration).map(|d| d.get());
    match req.asked {
        Asked::Nothing => Ok(None),
        Asked::Upgrade => Ok(rc.and_then(|rc| {
            let protocol = http1::choose_upgrade(req.fields(), &rc.upgrades)?;
            Some(Upgrade {
                protocol,
                idle,
                max,
                key: None,
            })
        })),
        Asked::WebSocket => {
            let allowed = rc.is_some_and(|r| {
                r.upgrades
                    .iter()
                    .any(|u| u.eq_ignore_ascii_case("websocket"))
            });
            if !allowed || pool.protocol != PoolProtocol::Http1 {
                return Err(ProxyError::BadRequest("no WebSocket on this route"));
            }
            let random = [w.entropy().to_le_bytes(), w.entropy().to_le_bytes()].concat();
            let mut key = [0u8; 24];
            base64::engine::general_purpose::STANDARD
                .encode_slice(random, &mut key)
                .map_err(|_| ProxyError::BadRequest("websocket key"))?;
            Ok(Some(Upgrade {
                protocol: b"websocket",
                idle,
                max,
                key: Some(key),
            }))
        }
    }
}

/// The route's `stream_idle_timeout` (an hour when the route is gone from the config).
fn stream_idle(snap: &Snapshot, route: &Route) -> Duration {
    snap.config
        .routes
        .get(route.index)
        .map_or(Duration::from_secs(3600), |r| r.stream_idle_timeout.get())
}
