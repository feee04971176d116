//! `health` (active checks) and `outlier` (passive detection) of a pool: the file
//! format only. The state machines that act on them live in `crate::health`.

use std::fmt;

use serde::de::{self, Visitor};
use serde::Deserialize;

use super::Duration;

/// `health` of a pool: `{ type = "http", path = "/healthz", interval = "5s" }`.
///
/// A backend of a checked pool takes traffic only after `rise` passing probes, and
/// leaves after `fall` failing ones.
#[derive(Clone, Debug, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckConfig {
    /// What a probe does.
    #[serde(rename = "type", default)]
    pub kind: CheckKind,
    /// Path of an `http` probe; starts with `/`.
    #[serde(default = "defaults::check_path")]
    pub path: String,
    /// Method of an `http` probe, an uppercase token.
    #[serde(default = "defaults::check_method")]
    pub method: String,
    /// Host header of an `http` probe; the backend's address when unset.
    #[serde(default)]
    pub host: Option<String>,
    /// Statuses that pass an `http` probe.
    #[serde(default = "defaults::check_expect")]
    pub expect: Vec<StatusRange>,
    /// Text the response body (its first 64 KiB) must contain; not checked when unset.
    #[serde(default)]
    pub body: Option<String>,
    /// Time between two probes of one backend.
    #[serde(default = "defaults::check_interval")]
    pub interval: Duration,
    /// Time a probe has to pass; at most `interval`.
    #[serde(default = "defaults::check_timeout")]
    pub timeout: Duration,
    /// Largest random offset added to each interval, so probes of many backends and
    /// workers do not fall in step. Default: a tenth of `interval`.
    #[serde(default)]
    pub jitter: Option<Duration>,
    /// Consecutive passing probes that bring a backend up.
    #[serde(default = "defaults::rise")]
    pub rise: u32,
    /// Consecutive failing probes that take a backend down.
    #[serde(default = "defaults::fall")]
    pub fall: u32,
    /// Service name of a `grpc` check (the standard `grpc.health.v1.Health/Check`
    /// call); setting it makes the check a grpc one. `""` asks about the server.
    #[serde(default)]
    pub grpc: Option<String>,
}

impl HealthCheckConfig {
    /// What a probe does: `grpc` when a service is named, else `type`.
    pub fn effective_kind(&self) -> CheckKind {
        if self.grpc.is_some() {
            CheckKind::Grpc
        } else {
            self.kind
        }
    }
}

impl Default for HealthCheckConfig {
    /// What `health = {}` means.
    fn default() -> Self {
        Self {
            kind: CheckKind::default(),
            path: defaults::check_path(),
            method: defaults::check_method(),
            host: None,
            expect: defaults::check_expect(),
            body: None,
            interval: defaults::check_interval(),
            timeout: defaults::check_timeout(),
            jitter: None,
            rise: defaults::rise(),
            fall: defaults::fall(),
            grpc: None,
        }
    }
}

/// `type` of a health check.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    /// An HTTP/1.1 request whose response status (and body) must match.
    #[default]
    Http,
    /// A TCP connection that opens.
    Tcp,
    /// A TLS handshake that completes.
    Tls,
    /// A gRPC health check over HTTP/2 (h2c) that answers `SERVING`.
    Grpc,
}

/// A status or an inclusive range: `200`, `"200-399"` or `"2xx"` in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatusRange {
    /// First status of the range.
    pub from: u16,
    /// Last status of the range, included.
    pub to: u16,
}

impl StatusRange {
    /// Whether `status` is in the range.
    pub fn contains(&self, status: u16) -> bool {
        (self.from..=self.to).contains(&status)
    }
}

impl fmt::Display for StatusRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.from == self.to {
            write!(f, "{}", self.from)
        } else {
            write!(f, "{}-{}", self.from, self.to)
        }
    }
}

/// Why `text` is not a [`StatusRange`].
fn status_range(text: &str) -> Result<StatusRange, String> {
    let expected = || {
        format!(
            "invalid status {text:?}: expected a status (200), a range (\"200-399\") \
             or a class (\"2xx\")"
        )
    };
    let number = |s: &str| -> Result<u16, String> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(expected());
        }
        let n = s.parse::<u16>().map_err(|_| expected())?;
        if (100..=599).contains(&n) {
            Ok(n)
        } else {
            Err(format!("invalid status {n}: must be between 100 and 599"))
        }
    };
    if let [class @ b'1'..=b'5', b'x' | b'X', b'x' | b'X'] = text.as_bytes() {
        let from = u16::from(class - b'0') * 100;
        return Ok(StatusRange {
            from,
            to: from + 99,
        });
    }
    let (from, to) = match text.split_once('-') {
        Some((from, to)) => (number(from)?, number(to)?),
        None => {
            let one = number(text)?;
            (one, one)
        }
    };
    if from > to {
        return Err(format!(
            "invalid status range {text:?}: {from} is above {to}"
        ));
    }
    Ok(StatusRange { from, to })
}

impl<'de> Deserialize<'de> for StatusRange {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StatusRangeVisitor)
    }
}

struct StatusRangeVisitor;

impl Visitor<'_> for StatusRangeVisitor {
    type Value = StatusRange;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a status (200), a range (\"200-399\") or a class (\"2xx\")")
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<StatusRange, E> {
        status_range(&n.to_string()).map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<StatusRange, E> {
        status_range(&n.to_string()).map_err(E::custom)
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<StatusRange, E> {
        status_range(s).map_err(E::custom)
    }
}

/// `outlier` of a pool: passive detection from the outcomes of real requests.
/// Defaults follow Envoy's outlier detection; a count or percentage of 0 disables
/// its detector.
#[derive(Clone, Debug, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OutlierConfig {
    /// Consecutive 5xx responses (gateway failures included) that eject.
    #[serde(default = "defaults::five")]
    pub consecutive_5xx: u32,
    /// Consecutive gateway failures (connect error, reset, timeout, 502, 503, 504)
    /// that eject.
    #[serde(default = "defaults::five")]
    pub consecutive_gateway_failures: u32,
    /// Share of failed requests over `window`, in percent, that ejects.
    #[serde(default = "defaults::failure_percentage")]
    pub failure_percentage: u32,
    /// Span of the failure-percentage and latency detectors, whole seconds.
    #[serde(default = "defaults::outlier_window")]
    pub window: Duration,
    /// Requests to a backend in `window` below which the windowed detectors wait.
    #[serde(default = "defaults::min_requests")]
    pub min_requests: u32,
    /// p95 latency over `window` above which a backend is ejected. Off when unset.
    #[serde(default)]
    pub max_latency: Option<Duration>,
    /// Length of a first ejection; the n-th lasts n times as long.
    #[serde(default = "defaults::base_ejection_time")]
    pub base_ejection_time: Duration,
    /// Longest ejection.
    #[serde(default = "defaults::max_ejection_time")]
    pub max_ejection_time: Duration,
    /// Most backends of the pool ejected at once, in percent.
    #[serde(default = "defaults::max_ejection_percent")]
    pub max_ejection_percent: u32,
}

impl Default for OutlierConfig {
    /// What `outlier = {}` means.
    fn default() -> Self {
        Self {
            consecutive_5xx: defaults::five(),
            consecutive_gateway_failures: defaults::five(),
            failure_percentage: defaults::failure_percentage(),
            window: defaults::outlier_window(),
            min_requests: defaults::min_requests(),
            max_latency: None,
            base_ejection_time: defaults::base_ejection_time(),
            max_ejection_time: defaults::max_ejection_time(),
            max_ejection_percent: defaults::max_ejection_percent(),
        }
    }
}

mod defaults {
    use super::{Duration, StatusRange};

    pub fn check_path() -> String {
        "/".to_owned()
    }
    pub fn check_method() -> String {
        "GET".to_owned()
    }
    pub fn check_expect() -> Vec<StatusRange> {
        vec![StatusRange { from: 200, to: 399 }]
    }
    pub fn check_interval() -> Duration {
        Duration::from_secs(5)
    }
    pub fn check_timeout() -> Duration {
        Duration::from_secs(2)
    }
    pub fn rise() -> u32 {
        2
    }
    pub fn fall() -> u32 {
        3
    }
    pub fn five() -> u32 {
        5
    }
    pub fn failure_percentage() -> u32 {
        85
    }
    pub fn outlier_window() -> Duration {
        Duration::from_secs(10)
    }
    pub fn min_requests() -> u32 {
        50
    }
    pub fn base_ejection_time() -> Duration {
        Duration::from_secs(30)
    }
    pub fn max_ejection_time() -> Duration {
        Duration::from_secs(300)
    }
    pub fn max_ejection_percent() -> u32 {
        10
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, schemars::JsonSchema)]
    struct T {
        s: Vec<StatusRange>,
    }

    fn parse(text: &str) -> Result<Vec<(u16, u16)>, String> {
        toml::from_str::<T>(text)
            .map(|t| t.s.iter().map(|r| (r.from, r.to)).collect())
            .map_err(|e| e.message().to_owned())
    }

    #[test]
    fn status_forms() {
        assert_eq!(
            parse(r#"s = [204, "200-399", "5xx", "1XX", "418"]"#),
            Ok(vec![
                (204, 204),
                (200, 399),
                (500, 599),
                (100, 199),
                (418, 418)
            ])
        );
        let r = StatusRange { from: 200, to: 399 };
        assert!(r.contains(200) && r.contains(399) && !r.contains(400) && !r.contains(199));
        assert_eq!(r.to_string(), "200-399");
        assert_eq!(StatusRange { from: 204, to: 204 }.to_string(), "204");
    }

    #[test]
    fn bad_statuses_say_why() {
        assert_eq!(
            parse("s = [600]"),
            Err("invalid status 600: must be between 100 and 599".into())
        );
        assert_eq!(
            parse("s = [-1]"),
            Err(
                "invalid status \"-1\": expected a status (200), a range (\"200-399\") \
                 or a class (\"2xx\")"
                    .into()
            )
        );
        assert_eq!(
            parse(r#"s = ["399-200"]"#),
            Err("invalid status range \"399-200\": 399 is above 200".into())
        );
        for bad in [
            "6xx",
            "2xy",
            "200-",
            "-200",
            "2 00",
            "",
            "200-300-400",
            "+200",
        ] {
            assert!(parse(&format!("s = [{bad:?}]")).is_err(), "{bad:?}");
        }
        assert!(parse("s = [true]")
            .unwrap_err()
            .contains("a class (\"2xx\")"));
    }
}
