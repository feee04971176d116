//! Access log lines, formatted straight into a worker's byte buffer: no tree, no
//! `String` per field, numbers through `itoa`, the date text computed once a second.
//! Pure: tested here without a file or a clock.

use std::io::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use fulcrum_core::config::{AccessLogConfig, AccessLogFormat, LOG_FIELDS};

use super::Entry;

/// One JSON field of a line (the names in [`LOG_FIELDS`], in that order).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Field {
    /// `ts`
    Ts,
    /// `listener`
    Listener,
    /// `client`
    Client,
    /// `proto`
    Proto,
    /// `method`
    Method,
    /// `host`
    Host,
    /// `path`
    Path,
    /// `status`
    Status,
    /// `route`
    Route,
    /// `pool`
    Pool,
    /// `backend`
    Backend,
    /// `attempts`
    Attempts,
    /// `retries`
    Retries,
    /// `bytes_in`
    BytesIn,
    /// `bytes_out`
    BytesOut,
    /// `duration_ms`
    DurationMs,
    /// `upstream_connect_ms`
    UpstreamConnectMs,
    /// `upstream_ms`
    UpstreamMs,
    /// `error`
    Error,
    /// `user_agent`
    UserAgent,
    /// `referer`
    Referer,
    /// `request_id`
    RequestId,
    /// `trace_id`
    TraceId,
    /// `tls_version`
    TlsVersion,
    /// `tls_cipher`
    TlsCipher,
    /// `sni`
    Sni,
}

const ALL: [Field; 26] = [
    Field::Ts,
    Field::Listener,
    Field::Client,
    Field::Proto,
    Field::Method,
    Field::Host,
    Field::Path,
    Field::Status,
    Field::Route,
    Field::Pool,
    Field::Backend,
    Field::Attempts,
    Field::Retries,
    Field::BytesIn,
    Field::BytesOut,
    Field::DurationMs,
    Field::UpstreamConnectMs,
    Field::UpstreamMs,
    Field::Error,
    Field::UserAgent,
    Field::Referer,
    Field::RequestId,
    Field::TraceId,
    Field::TlsVersion,
    Field::TlsCipher,
    Field::Sni,
];

impl Field {
    /// The field called `name` in the config.
    fn named(name: &str) -> Option<Self> {
        let i = LOG_FIELDS.iter().position(|n| *n == name)?;
        ALL.get(i).copied()
    }

    fn name(self) -> &'static str {
        LOG_FIELDS.get(self as usize).copied().unwrap_or("")
    }
}

/// A compiled line format.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per line with these fields.
    Json(Vec<Field>),
    /// Space-separated, documented in the README.
    Text,
    /// Apache/nginx "combined".
    Combined,
}

impl Format {
    /// The format `cfg` asks for (field names were checked with the config).
    pub fn new(cfg: &AccessLogConfig) -> Self {
        match cfg.format {
            AccessLogFormat::Json if cfg.fields.is_empty() => Self::Json(ALL.to_vec()),
            AccessLogFormat::Json => {
                Self::Json(cfg.fields.iter().filter_map(|n| Field::named(n)).collect())
            }
            AccessLogFormat::Text => Self::Text,
            AccessLogFormat::Combined => Self::Combined,
        }
    }
}

/// The wall-clock time of a line, with its text forms kept for the rest of the
/// second (a date is not worth computing for every line).
#[derive(Debug, Default)]
pub struct Clock {
    secs: u64,
    /// `07/Dec/2026:03:42:51 +0000`
    clf: [u8; 26],
}

impl Clock {
    fn clf(&mut self, secs: u64) -> &[u8] {
        if secs != self.secs || self.clf[0] == 0 {
            self.secs = secs;
            self.clf = clf_date(secs);
        }
        &self.clf
    }
}

/// `secs` (Unix time, UTC) in the common log format's date form.
fn clf_date(secs: u64) -> [u8; 26] {
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let t = i64::try_from(secs)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let mut out = [b'0'; 26];
    let two = |out: &mut [u8; 26], at: usize, v: u8| {
        out[at] = b'0' + v / 10;
        out[at + 1] = b'0' + v % 10;
    };
    two(&mut out, 0, t.day());
    out[2] = b'/';
    out[3..6].copy_from_slice(MONTHS[usize::from(u8::from(t.month()) - 1)]);
    out[6] = b'/';
    let year = t.year().clamp(0, 9999) as u16;
    two(&mut out, 7, (year / 100) as u8);
    two(&mut out, 9, (year % 100) as u8);
    out[11] = b':';
    two(&mut out, 12, t.hour());
    out[14] = b':';
    two(&mut out, 15, t.minute());
    out[17] = b':';
    two(&mut out, 18, t.second());
    out[20..26].copy_from_slice(b" +0000");
    out
}

/// Appends one line for `e`, logged at `now` (since the Unix epoch), to `out`.
pub fn write(out: &mut Vec<u8>, format: &Format, e: &Entry<'_>, now: Duration, clock: &mut Clock) {
    match format {
        Format::Json(fields) => json(out, fields, e, now),
        Format::Text => text(out, e, now),
        Format::Combined => combined(out, e, now, clock),
    }
    out.push(b'\n');
}

fn json(out: &mut Vec<u8>, fields: &[Field], e: &Entry<'_>, now: Duration) {
    out.push(b'{');
    let mut first = true;
    for f in fields {
        if absent(*f, e) {
            continue;
        }
        if !std::mem::replace(&mut first, false) {
            out.push(b',');
        }
        out.push(b'"');
        out.extend_from_slice(f.name().as_bytes());
        out.extend_from_slice(b"\":");
        match f {
            Field::Ts => {
                int(out, now.as_secs());
                out.push(b'.');
                padded(out, u64::from(now.subsec_micros()), 6);
            }
            Field::Listener => json_str(out, e.listener.as_bytes()),
            Field::Client => json_addr(out, e.client),
            Field::Proto => json_str(out, e.proto.as_bytes()),
            Field::Method => json_str(out, e.method.as_bytes()),
            Field::Host => json_str(out, e.host.as_bytes()),
            Field::Path => json_str(out, e.path.as_bytes()),
            Field::Status => int(out, u64::from(e.status)),
            Field::Route => match (e.route_name, e.route) {
                (Some(name), _) => json_str(out, name.as_bytes()),
                (None, Some(i)) => int(out, i as u64),
                (None, None) => out.extend_from_slice(b"null"),
            },
            Field::Pool => json_str(out, e.pool.as_bytes()),
            Field::Backend => json_addr(out, e.backend),
            Field::Attempts => int(out, u64::from(e.attempts)),
            Field::Retries => int(out, u64::from(e.attempts.saturating_sub(1))),
            Field::BytesIn => int(out, e.bytes_in),
            Field::BytesOut => int(out, e.bytes_out),
            Field::DurationMs => ms(out, e.duration),
            Field::UpstreamConnectMs => opt_ms(out, e.connect),
            Field::UpstreamMs => opt_ms(out, e.upstream),
            Field::Error => match &e.error {
                Some(err) => json_str(out, err.as_bytes()),
                None => out.extend_from_slice(b"null"),
            },
            Field::UserAgent => json_opt(out, e.user_agent),
            Field::Referer => json_opt(out, e.referer),
            Field::RequestId => json_opt(out, opt(e.request_id)),
            Field::TraceId => json_opt(out, opt(e.trace_id)),
            Field::TlsVersion => json_opt(out, e.tls.map(|t| t.version.as_bytes())),
            Field::TlsCipher => json_opt(out, e.tls.map(|t| t.cipher.as_bytes())),
            Field::Sni => json_opt(out, e.tls.and_then(|t| t.sni).map(str::as_bytes)),
        }
    }
    out.push(b'}');
}

/// Whether `f` has no value for `e`: such fields are left out of a JSON line
/// (shorter lines; a reader sees a missing key as it would see `null`).
fn absent(f: Field, e: &Entry<'_>) -> bool {
    match f {
        Field::Route => e.route.is_none() && e.route_name.is_none(),
        Field::UpstreamConnectMs => e.connect.is_none(),
        Field::UpstreamMs => e.upstream.is_none(),
        Field::Error => e.error.is_none(),
        Field::UserAgent => e.user_agent.is_none(),
        Field::Referer => e.referer.is_none(),
        Field::RequestId => e.request_id.is_empty(),
        Field::TraceId => e.trace_id.is_empty(),
        Field::TlsVersion | Field::TlsCipher => e.tls.is_none(),
        Field::Sni => e.tls.and_then(|t| t.sni).is_none(),
        _ => false,
    }
}

fn opt(s: &str) -> Option<&[u8]> {
    (!s.is_empty()).then_some(s.as_bytes())
}

fn text(out: &mut Vec<u8>, e: &Entry<'_>, now: Duration) {
    int(out, now.as_secs());
    out.push(b'.');
    padded(out, u64::from(now.subsec_millis()), 3);
    out.push(b' ');
    out.extend_from_slice(e.listener.as_bytes());
    out.push(b' ');
    if let Some(c) = e.client {
        addr(out, c);
    }
    out.push(b' ');
    request_line(out, e);
    out.push(b' ');
    clf_str(out, e.host.as_bytes());
    out.push(b' ');
    int(out, u64::from(e.status));
    out.extend_from_slice(b" route=");
    match (e.route_name, e.route) {
        (Some(name), _) => clf_str(out, name.as_bytes()),
        (None, Some(i)) => int(out, i as u64),
        (None, None) => out.push(b'-'),
    }
    out.extend_from_slice(b" pool=");
    dash_or(out, e.pool.as_bytes());
    out.extend_from_slice(b" backend=");
    match e.backend {
        Some(b) => addr(out, b),
        None => out.push(b'-'),
    }
    out.extend_from_slice(b" attempts=");
    int(out, u64::from(e.attempts));
    out.extend_from_slice(b" in=");
    int(out, e.bytes_in);
    out.extend_from_slice(b" out=");
    int(out, e.bytes_out);
    out.push(b' ');
    ms(out, e.duration);
    out.extend_from_slice(b"ms upstream=");
    match e.upstream {
        Some(d) => {
            ms(out, d);
            out.extend_from_slice(b"ms");
        }
        None => out.push(b'-'),
    }
    out.extend_from_slice(b" error=");
    match &e.error {
        Some(err) => {
            for &b in err.as_bytes() {
                clf_byte(out, if b == b' ' { b'_' } else { b });
            }
        }
        None => out.push(b'-'),
    }
    out.extend_from_slice(b" request_id=");
    dash_or(out, e.request_id.as_bytes());
}

/// `CLIENT - - [DATE] "METHOD PATH PROTO" STATUS BYTES "REFERER" "USER-AGENT"`, as
/// Apache and nginx write it (bytes a parser could misread escaped as `\xHH`).
fn combined(out: &mut Vec<u8>, e: &Entry<'_>, now: Duration, clock: &mut Clock) {
    match e.client.map(|c| c.ip()) {
        Some(std::net::IpAddr::V4(ip)) => ip4(out, ip),
        Some(ip) => {
            let _ = write!(out, "{ip}");
        }
        None => out.push(b'-'),
    }
    out.extend_from_slice(b" - - [");
    out.extend_from_slice(clock.clf(now.as_secs()));
    out.extend_from_slice(b"] ");
    request_line(out, e);
    out.push(b' ');
    int(out, u64::from(e.status));
    out.push(b' ');
    int(out, e.bytes_out);
    out.extend_from_slice(b" \"");
    dash_or(out, e.referer.unwrap_or_default());
    out.extend_from_slice(b"\" \"");
    dash_or(out, e.user_agent.unwrap_or_default());
    out.push(b'"');
}

/// `"METHOD TARGET PROTO"`, quoted and escaped as the common log format has it.
fn request_line(out: &mut Vec<u8>, e: &Entry<'_>) {
    out.push(b'"');
    clf_str(out, e.method.as_bytes());
    out.push(b' ');
    clf_str(out, e.path.as_bytes());
    out.push(b' ');
    out.extend_from_slice(e.proto.as_bytes());
    out.push(b'"');
}

fn dash_or(out: &mut Vec<u8>, s: &[u8]) {
    if s.is_empty() {
        out.push(b'-');
    } else {
        clf_str(out, s);
    }
}

fn clf_str(out: &mut Vec<u8>, s: &[u8]) {
    for &b in s {
        clf_byte(out, b);
    }
}

/// nginx's escaping: `"`, `\`, controls and bytes past ASCII as `\xHH`, so a line
/// always splits into the same fields.
fn clf_byte(out: &mut Vec<u8>, b: u8) {
    if b == b'"' || b == b'\\' || !(0x20..0x7f).contains(&b) {
        out.extend_from_slice(b"\\x");
        hex_byte(out, b, b"0123456789ABCDEF");
    } else {
        out.push(b);
    }
}

fn hex_byte(out: &mut Vec<u8>, b: u8, digits: &[u8; 16]) {
    out.push(digits[usize::from(b >> 4)]);
    out.push(digits[usize::from(b & 15)]);
}

fn int(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

fn padded(out: &mut Vec<u8>, v: u64, width: usize) {
    let mut b = itoa::Buffer::new();
    let s = b.format(v);
    for _ in s.len()..width {
        out.push(b'0');
    }
    out.extend_from_slice(s.as_bytes());
}

/// Milliseconds with three decimals (microsecond resolution).
fn ms(out: &mut Vec<u8>, d: Duration) {
    let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    int(out, us / 1000);
    out.push(b'.');
    padded(out, us % 1000, 3);
}

fn opt_ms(out: &mut Vec<u8>, d: Option<Duration>) {
    match d {
        Some(d) => ms(out, d),
        None => out.extend_from_slice(b"null"),
    }
}

fn json_addr(out: &mut Vec<u8>, a: Option<SocketAddr>) {
    out.push(b'"');
    if let Some(a) = a {
        addr(out, a);
    }
    out.push(b'"');
}

/// `ip:port` as `SocketAddr`'s `Display` writes it, IPv4 without the formatting
/// machinery (two per line, on every line).
fn addr(out: &mut Vec<u8>, a: SocketAddr) {
    match a {
        SocketAddr::V4(v4) => {
            ip4(out, *v4.ip());
            out.push(b':');
            int(out, u64::from(v4.port()));
        }
        SocketAddr::V6(_) => {
            let _ = write!(out, "{a}");
        }
    }
}

fn ip4(out: &mut Vec<u8>, ip: std::net::Ipv4Addr) {
    for (i, octet) in ip.octets().into_iter().enumerate() {
        if i > 0 {
            out.push(b'.');
        }
        int(out, u64::from(octet));
    }
}

fn json_opt(out: &mut Vec<u8>, s: Option<&[u8]>) {
    match s {
        Some(s) => json_str(out, s),
        None => out.extend_from_slice(b"null"),
    }
}

/// A JSON string of `s`: quotes, backslashes and controls escaped; bytes that are
/// not UTF-8 (a client's header may hold any) become U+FFFD, so every line parses.
fn json_str(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    // Most values are plain ASCII with nothing to escape: one copy.
    if s.iter()
        .all(|&b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
    {
        out.extend_from_slice(s);
        out.push(b'"');
        return;
    }
    for chunk in s.utf8_chunks() {
        for &b in chunk.valid().as_bytes() {
            match b {
                b'"' => out.extend_from_slice(b"\\\""),
                b'\\' => out.extend_from_slice(b"\\\\"),
                0..0x20 | 0x7f => {
                    out.extend_from_slice(b"\\u00");
                    hex_byte(out, b, b"0123456789abcdef");
                }
                _ => out.push(b),
            }
        }
        if !chunk.invalid().is_empty() {
            out.extend_from_slice("\u{fffd}".as_bytes());
        }
    }
    out.push(b'"');
}

#[cfg(test)]
#[path = "format_tests.rs"]
mod tests;
