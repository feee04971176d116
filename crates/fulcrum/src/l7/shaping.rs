//! A route's shaping of one request on its way to the backend: the rewritten
//! path, the pool's `Host`, and the header rules (with the fields a policy added),
//! applied once in the forward step for every client protocol.

use bytes::Bytes;
use fulcrum_core::forward::same_name;
use fulcrum_core::http1::Framing;
use fulcrum_core::shape::encoding::{self, Candidate, Compression};
use fulcrum_core::shape::headers::HeaderOps;
use fulcrum_core::shape::template::Vars;

use super::files::FileAnswer;
use crate::http::error::{wants_json, ErrorBody};
use crate::http::{Edits, Request, Response};
use crate::state::{Listener, Pool, RouteShape, Snapshot};

/// What fills a route's placeholders for `req`; `label` holds the route's index
/// when it has no name.
pub fn vars<'a>(
    snap: &'a Snapshot,
    req: &'a Request<'_>,
    route: usize,
    request_id: &'a str,
    label: &'a mut String,
) -> Vars<'a> {
    let route = match snap
        .config
        .routes
        .get(route)
        .and_then(|r| r.name.as_deref())
    {
        Some(name) => name,
        None => {
            *label = route.to_string();
            label
        }
    };
    Vars {
        client_ip: req.peer.ip(),
        host: req.target.host,
        request_id,
        scheme: req.target.proto(),
        route,
        target: req.target.path,
    }
}

/// How the request to the backend differs from the client's.
pub struct Outgoing<'a> {
    /// The rewritten target, when the route rewrites it.
    pub path: Option<String>,
    ops: Option<&'a HeaderOps>,
    rendered: Vec<Option<String>>,
    auth: Option<Auth<'a>>,
}

/// What an auth service (`forward_auth`) adds: the client's fields of those names
/// go, the service's come.
#[derive(Clone, Copy)]
pub struct Auth<'a> {
    /// Lowercase names of the client's fields dropped.
    pub dropped: &'a [String],
    /// The service's fields.
    pub fields: &'a [(String, Bytes)],
}

impl<'a> Outgoing<'a> {
    /// `None` when the request goes on as the client sent it.
    pub fn of(
        req: &Request<'_>,
        shape: Option<&'a RouteShape>,
        pool: &Pool,
        auth: Option<Auth<'a>>,
        vars: Option<&Vars<'_>>,
    ) -> Option<Self> {
        let path = shape
            .and_then(|s| s.rewrite.as_ref())
            .and_then(|r| r.apply(req.target.path));
        let ops = shape.and_then(|s| s.request.as_ref());
        if path.is_none() && ops.is_none() && auth.is_none() && pool.host.is_none() {
            return None;
        }
        let rendered = match (ops, vars) {
            (Some(ops), Some(vars)) => ops.render(vars),
            _ => Vec::new(),
        };
        Some(Self {
            path,
            ops,
            rendered,
            auth,
        })
    }

    /// The fields to send: the client's without those a rule or the auth service
    /// replaces, then the auth service's, then the rules' own.
    pub fn fields<'f>(
        &'f self,
        req: &Request<'f>,
    ) -> impl Iterator<Item = (&'f [u8], &'f [u8])> + 'f {
        let auth_drops = self.auth.map_or(&[][..], |a| a.dropped);
        let ops = self.ops;
        let kept = move |name: &[u8]| {
            !auth_drops.iter().any(|d| same_name(name, d.as_bytes()))
                && ops.is_none_or(|o| !o.drops(name))
        };
        let from_auth = self
            .auth
            .into_iter()
            .flat_map(|a| a.fields.iter().map(|(n, v)| (n.as_bytes(), &v[..])))
            .filter(move |(n, _)| ops.is_none_or(|o| !o.drops(n)));
        req.fields()
            .filter(move |(n, _)| kept(n))
            .chain(from_auth)
            .chain(
                ops.into_iter()
                    .flat_map(|o| o.fields(&self.rendered))
                    .map(|(n, v)| (n.as_bytes(), v.as_bytes())),
            )
    }
}

/// The route's changes to a backend's response for `req`: its `response_headers`
/// and, with `cors`, the allow fields for the request's origin.
pub fn response_edits(
    shape: &RouteShape,
    vars: &Vars<'_>,
    req: &Request<'_>,
) -> Option<Box<Edits>> {
    if shape.response.is_none() && shape.cors.is_none() {
        return None;
    }
    Some(Box::new(Edits {
        rendered: shape
            .response
            .as_ref()
            .map(|o| o.render(vars))
            .unwrap_or_default(),
        ops: shape.response.clone(),
        cors: shape.cors.is_some(),
        cors_fields: shape
            .cors
            .as_ref()
            .map(|c| c.actual(origin(req)))
            .unwrap_or_default(),
        alt_svc: None,
    }))
}

/// Adds `Alt-Svc: h3=":PORT"; ma=MAX_AGE` to a response over HTTP/1.1 or
/// HTTP/2 of a listener that serves HTTP/3 on the port the client reached.
pub fn advertise_h3(resp: &mut crate::http::Response, req: &Request<'_>, max_age: u64) {
    if req.via == "3" {
        return;
    }
    let Some(port) = req.local.get().map(|a| a.port()) else {
        return;
    };
    let edits = resp.edits.get_or_insert_with(|| {
        Box::new(Edits {
            ops: None,
            rendered: Vec::new(),
            cors: false,
            cors_fields: Vec::new(),
            alt_svc: None,
        })
    });
    edits.alt_svc = Some(format!("h3=\":{port}\"; ma={max_age}"));
}

/// The request's `Origin`, when it has one.
pub fn origin<'r>(req: &Request<'r>) -> Option<&'r [u8]> {
    req.fields()
        .find(|(n, _)| n.eq_ignore_ascii_case(b"origin"))
        .map(|(_, v)| v)
}

/// The body of an error `status` answered for `req` when a page is configured
/// for it or the client asks for JSON; `None` keeps the answer's own.
pub fn error_body(
    l: &Listener,
    route: Option<usize>,
    req: &Request<'_>,
    request_id: &str,
    status: u16,
) -> Option<ErrorBody> {
    let accept = req
        .fields()
        .find(|(n, _)| n.eq_ignore_ascii_case(b"accept"))
        .map(|(_, v)| v);
    let page = l.error_page(route, status);
    let json = wants_json(accept);
    if page.is_none() && !json {
        return None;
    }
    let id = (!request_id.is_empty()).then_some(request_id);
    Some(ErrorBody::new(status, page, json, id))
}

/// The coding to compress `resp` with, when the route compresses, the client
/// takes one of its codings and the response may be compressed.
pub fn coding(shape: &RouteShape, req: &Request<'_>, resp: &Response) -> Option<Compression> {
    // No body, no compressed stream (an empty body is not a valid gzip one).
    if shape.compress.is_empty() || resp.framing == Framing::Empty {
        return None;
    }
    let accept = req
        .fields()
        .filter(|(n, _)| n.eq_ignore_ascii_case(b"accept-encoding"))
        .map(|(_, v)| v);
    let coding = encoding::choose(accept, &shape.compress)?;
    let mut pairs = Vec::new();
    let fields = resp.head.fields(&mut pairs);
    let mut c = Candidate {
        status: resp.status,
        head: req.is_head(),
        length: match resp.framing {
            Framing::Length(n) => Some(n),
            Framing::Empty => Some(0),
            Framing::Chunked | Framing::UntilClose => None,
        },
        ..Candidate::default()
    };
    for (name, value) in fields.iter() {
        if name.eq_ignore_ascii_case(b"content-type") {
            c.content_type = Some(value);
        } else if name.eq_ignore_ascii_case(b"content-encoding") {
            c.encoded = true;
        } else if name.eq_ignore_ascii_case(b"content-range") {
            c.ranged = true;
        } else if name.eq_ignore_ascii_case(b"cache-control") {
            c.no_transform |= value
                .split(|&b| b == b',')
                .any(|d| d.trim_ascii().eq_ignore_ascii_case(b"no-transform"));
        }
    }
    let ok = encoding::eligible(&c, &shape.compress_types, shape.compress_min_bytes);
    let level = shape
        .compress_level
        .iter()
        .find(|(c, _)| *c == coding)
        .map_or(coding.default_level(), |(_, l)| *l);
    ok.then_some(Compression { coding, level })
}

/// A static route's `response_headers` (the listener's with its own) on its answer.
pub fn file_fields(
    answer: &mut FileAnswer,
    shape: &RouteShape,
    snap: &Snapshot,
    req: &Request<'_>,
    route: usize,
    request_id: &str,
) {
    let Some(ops) = &shape.response else { return };
    answer.fields.retain(|(n, _)| {
        // The framing stays Fulcrum's: rules cannot name it anyway.
        !ops.drops(n.as_bytes())
    });
    let mut label = String::new();
    let vars = vars(snap, req, route, request_id, &mut label);
    answer.extra = ops.added(&vars);
}
