//! `retries` of a pool: the file format only. The budget and backoff that act on it
//! live in `crate::retry`.

use std::fmt;

use serde::de::{self, Visitor};
use serde::Deserialize;

use super::Duration;

/// `retries` of a pool: `{ attempts = 2, on = ["reset", "503"], budget = "20%" }`.
///
/// A retry goes to another backend when the pool has one, waits a jittered
/// backoff, and is spent from a budget so retries cannot multiply an overload.
#[derive(Clone, Debug, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetriesConfig {
    /// Retries after the first try.
    #[serde(default = "defaults::retry_attempts")]
    pub attempts: u32,
    /// The failures that are retried.
    #[serde(default = "defaults::retry_on")]
    pub on: Vec<RetryOn>,
    /// Time each try has for the response head. Only `upstream_timeout` when unset.
    #[serde(default)]
    pub per_try_timeout: Option<Duration>,
    /// Retries allowed as a share of the pool's recent requests.
    #[serde(default = "defaults::retry_budget")]
    pub budget: Percent,
    /// Retries per second always allowed, whatever the budget, so a quiet pool can
    /// still retry.
    #[serde(default = "defaults::min_retries_per_sec")]
    pub min_retries_per_sec: u32,
    /// Base of the full-jitter exponential backoff between tries.
    #[serde(default = "defaults::retry_backoff")]
    pub backoff: Duration,
    /// Longest backoff.
    #[serde(default = "defaults::retry_max_backoff")]
    pub max_backoff: Duration,
}

impl Default for RetriesConfig {
    /// What `retries = {}` means.
    fn default() -> Self {
        Self {
            attempts: defaults::retry_attempts(),
            on: defaults::retry_on(),
            per_try_timeout: None,
            budget: defaults::retry_budget(),
            min_retries_per_sec: defaults::min_retries_per_sec(),
            backoff: defaults::retry_backoff(),
            max_backoff: defaults::retry_max_backoff(),
        }
    }
}

/// One retry condition: "connect-failure", "reset", "timeout", "5xx", or a status
/// "500".."599" (a string; a bare integer is accepted too).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryOn {
    /// Connecting to the backend failed.
    ConnectFailure,
    /// The connection was reset or closed before a whole response head arrived.
    Reset,
    /// No response head within `per_try_timeout` (or `upstream_timeout`).
    Timeout,
    /// Any 5xx response.
    Any5xx,
    /// This 5xx status.
    Status(u16),
}

impl RetryOn {
    /// Whether a response with `status` is retried under this condition.
    pub fn matches_status(self, status: u16) -> bool {
        match self {
            RetryOn::Any5xx => (500..=599).contains(&status),
            RetryOn::Status(s) => s == status,
            RetryOn::ConnectFailure | RetryOn::Reset | RetryOn::Timeout => false,
        }
    }
}

impl fmt::Display for RetryOn {
    /// As written in the file.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RetryOn::ConnectFailure => f.write_str("connect-failure"),
            RetryOn::Reset => f.write_str("reset"),
            RetryOn::Timeout => f.write_str("timeout"),
            RetryOn::Any5xx => f.write_str("5xx"),
            RetryOn::Status(s) => write!(f, "{s}"),
        }
    }
}

fn retry_on(text: &str) -> Result<RetryOn, String> {
    match text {
        "connect-failure" => Ok(RetryOn::ConnectFailure),
        "reset" => Ok(RetryOn::Reset),
        "timeout" => Ok(RetryOn::Timeout),
        "5xx" => Ok(RetryOn::Any5xx),
        _ => match text.parse::<u16>() {
            Ok(status @ 500..=599) if text.len() == 3 => Ok(RetryOn::Status(status)),
            _ => Err(format!(
                "unknown retry condition {text:?} (expected one of: connect-failure, reset, \
                 timeout, 5xx, or a status from \"500\" to \"599\")"
            )),
        },
    }
}

impl<'de> Deserialize<'de> for RetryOn {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(RetryOnVisitor)
    }
}

struct RetryOnVisitor;

impl Visitor<'_> for RetryOnVisitor {
    type Value = RetryOn;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a retry condition such as \"reset\" or \"503\"")
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<RetryOn, E> {
        retry_on(&n.to_string()).map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<RetryOn, E> {
        retry_on(&n.to_string()).map_err(E::custom)
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<RetryOn, E> {
        retry_on(s).map_err(E::custom)
    }
}

/// A percentage written "20%" (0%..=100%; a bare integer 20 is accepted too).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Percent(pub u32);

impl fmt::Display for Percent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}%", self.0)
    }
}

/// `digits` is the number of `text`, which has a `%` after it when written as a string.
fn percent(text: &str, digits: Option<&str>) -> Result<Percent, String> {
    let number = digits
        .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
        .map(|d| d.parse::<u64>().unwrap_or(u64::MAX));
    match number {
        Some(n @ 0..=100) => Ok(Percent(n as u32)),
        Some(_) => Err(format!(
            "invalid percentage {text:?}: must be from 0% to 100%"
        )),
        None => Err(format!(
            "invalid percentage {text:?}: expected a whole number followed by %, such as \"20%\""
        )),
    }
}

impl<'de> Deserialize<'de> for Percent {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(PercentVisitor)
    }
}

struct PercentVisitor;

impl Visitor<'_> for PercentVisitor {
    type Value = Percent;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a percentage such as \"20%\"")
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Percent, E> {
        let text = n.to_string();
        percent(&text, Some(&text)).map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Percent, E> {
        let text = n.to_string();
        percent(&text, Some(&text)).map_err(E::custom)
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Percent, E> {
        percent(s, s.strip_suffix('%')).map_err(E::custom)
    }
}

mod defaults {
    use super::{Duration, Percent, RetryOn};

    pub fn retry_attempts() -> u32 {
        2
    }
    pub fn retry_on() -> Vec<RetryOn> {
        vec![
            RetryOn::ConnectFailure,
            RetryOn::Reset,
            RetryOn::Timeout,
            RetryOn::Status(503),
        ]
    }
    pub fn retry_budget() -> Percent {
        Percent(20)
    }
    pub fn min_retries_per_sec() -> u32 {
        10
    }
    pub fn retry_backoff() -> Duration {
        Duration::from_millis(25)
    }
    pub fn retry_max_backoff() -> Duration {
        Duration::from_millis(250)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, schemars::JsonSchema)]
    struct T {
        on: Option<Vec<RetryOn>>,
        p: Option<Percent>,
    }

    fn parse(text: &str) -> Result<T, String> {
        toml::from_str::<T>(text).map_err(|e| e.message().to_owned())
    }

    #[test]
    fn conditions_parse_and_match() {
        let on = parse(r#"on = ["connect-failure", "reset", "timeout", "5xx", "502", 504]"#)
            .unwrap()
            .on
            .unwrap();
        use RetryOn::*;
        assert_eq!(
            on,
            [
                ConnectFailure,
                Reset,
                Timeout,
                Any5xx,
                Status(502),
                Status(504)
            ]
        );
        assert!(Any5xx.matches_status(500) && Any5xx.matches_status(599));
        assert!(!Any5xx.matches_status(499) && !Any5xx.matches_status(600));
        assert!(Status(503).matches_status(503) && !Status(503).matches_status(502));
        assert!(!Reset.matches_status(503) && !Timeout.matches_status(504));
        let shown: Vec<String> = on.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            ["connect-failure", "reset", "timeout", "5xx", "502", "504"]
        );
    }

    #[test]
    fn bad_conditions_say_what_is_allowed() {
        for bad in [
            "\"404\"",
            "\"5XX\"",
            "\"0503\"",
            "\"connect_failure\"",
            "600",
            "-503",
        ] {
            let e = parse(&format!("on = [{bad}]")).unwrap_err();
            assert!(e.starts_with("unknown retry condition"), "{bad}: {e}");
        }
        assert!(parse("on = [true]")
            .unwrap_err()
            .contains("a retry condition such as"));
    }

    #[test]
    fn percentages() {
        for (text, want) in [
            ("\"20%\"", 20),
            ("\"0%\"", 0),
            ("\"100%\"", 100),
            ("35", 35),
        ] {
            assert_eq!(
                parse(&format!("p = {text}")).unwrap().p,
                Some(Percent(want))
            );
        }
        assert_eq!(
            parse("p = \"101%\"").unwrap_err(),
            "invalid percentage \"101%\": must be from 0% to 100%"
        );
        assert_eq!(
            parse("p = -5").unwrap_err(),
            "invalid percentage \"-5\": expected a whole number followed by %, such as \"20%\""
        );
        for bad in ["\"20\"", "\"2.5%\"", "\"%\"", "\"+20%\"", "\"20 %\"", "1.5"] {
            assert!(parse(&format!("p = {bad}")).is_err(), "{bad}");
        }
        assert_eq!(Percent(20).to_string(), "20%");
    }
}
