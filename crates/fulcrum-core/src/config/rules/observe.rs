//! Rules for what Fulcrum reports about requests: route names, request IDs, the
//! trace export endpoint and the access log's format.

use super::super::locate::key;
use super::super::{AccessLogFormat, Config, ListenerProtocol, LOG_FIELDS};
use super::predicates::is_token;
use super::Checker;

/// Fields a request ID must not take the place of: framing, routing and what
/// Fulcrum sets itself.
const RESERVED: [&str; 11] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "te",
    "upgrade",
    "traceparent",
    "tracestate",
    "x-forwarded-for",
    "via",
    "cookie",
];

/// `[access_log]`: known field names, each once, and only for JSON lines.
pub(super) fn check(c: &mut Checker<'_>, config: &Config) {
    for (i, route) in config.routes.iter().enumerate() {
        let Some(name) = &route.name else { continue };
        let path = key("routes").index(i).key("name");
        if name.is_empty() {
            c.report(path, "must not be empty");
        } else if config
            .routes
            .get(..i)
            .is_some_and(|before| before.iter().any(|r| r.name.as_ref() == Some(name)))
        {
            c.report(path, format!("{name:?} names an earlier route too"));
        }
    }
    for (name, l) in &config.listeners {
        let Some(rid) = &l.request_id else { continue };
        let path = key("listeners").key(name).key("request_id");
        if !matches!(l.protocol, ListenerProtocol::Http | ListenerProtocol::Https) {
            c.report(
                path.clone(),
                "only http and https listeners carry request IDs",
            );
        }
        let lower = rid.header.to_ascii_lowercase();
        if !is_token(&rid.header) {
            c.report(
                path.key("header"),
                format!("invalid header name {:?}", rid.header),
            );
        } else if RESERVED.contains(&lower.as_str()) || lower.starts_with(':') {
            c.report(
                path.key("header"),
                format!("{:?} cannot carry a request ID", rid.header),
            );
        }
    }
    if let Some(otlp) = config.tracing.as_ref().and_then(|t| t.otlp.as_ref()) {
        if let Err(why) = crate::forward::parse_http_url(otlp) {
            c.report(key("tracing").key("otlp"), why);
        }
    }
    log_fields(c, config);
}

fn log_fields(c: &mut Checker<'_>, config: &Config) {
    let log = &config.access_log;
    if log.fields.is_empty() {
        return;
    }
    let path = key("access_log").key("fields");
    if log.format != AccessLogFormat::Json && !c.gaps.covers(&key("access_log").key("format")) {
        c.report(
            path.clone(),
            "fields choose JSON fields: needs format = \"json\"",
        );
    }
    for (i, name) in log.fields.iter().enumerate() {
        if !LOG_FIELDS.contains(&name.as_str()) {
            c.report(
                path.index(i),
                format!("unknown field {name:?} (known: {})", LOG_FIELDS.join(", ")),
            );
        } else if log
            .fields
            .get(..i)
            .is_some_and(|before| before.contains(name))
        {
            c.report(path.index(i), format!("{name:?} is listed twice"));
        }
    }
}
