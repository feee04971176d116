//! `request_id` on a listener and the top-level `[tracing]`: what Fulcrum adds to
//! requests so that one can be followed through the logs and traces of every hop.

use std::fmt;

use serde::{Deserialize, Deserializer};

/// `request_id = { header = "x-request-id", trust_incoming = false }`: every request
/// carries an ID, sent to the backend, returned to the client and logged.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestIdConfig {
    /// The header that carries it.
    #[serde(default = "default_request_id_header")]
    pub header: String,
    /// Keeps a client's own ID (1 to 128 visible ASCII bytes) instead of replacing it;
    /// for a listener behind another proxy that sets one.
    #[serde(default)]
    pub trust_incoming: bool,
}

fn default_request_id_header() -> String {
    "x-request-id".into()
}

/// `[tracing]`: W3C trace context on every request (propagated, or started when a
/// request brings none), and, with `otlp`, one span per request exported.
#[derive(Clone, Debug, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TracingConfig {
    /// OTLP/HTTP (protobuf) endpoint, `http://host:port` (`/v1/traces` is added
    /// when no path is given). Nothing is exported when unset.
    #[serde(default)]
    pub otlp: Option<String>,
    /// Share of new traces exported, such as `"1%"` or `"0.1%"`. A request whose
    /// `traceparent` says sampled (or not) keeps its caller's decision.
    #[serde(default = "SampleRate::all")]
    pub sample: SampleRate,
    /// `service.name` of the exported spans.
    #[serde(default = "default_service_name")]
    pub service_name: String,
}

fn default_service_name() -> String {
    "fulcrum".into()
}

/// A share of traces, parts per million (written as a percentage with up to four
/// decimals: `"0.0001%"` is one in a million).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SampleRate(pub u32);

impl SampleRate {
    /// Every trace.
    pub fn all() -> Self {
        Self(1_000_000)
    }

    /// Parses `"12.5%"`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad =
            || format!("invalid sample {text:?}: expected a percentage such as \"1%\" or \"0.1%\"");
        let number = text.trim().strip_suffix('%').ok_or_else(bad)?;
        let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || !digits(whole) || !digits(frac) || frac.len() > 4 {
            return Err(bad());
        }
        let whole: u64 = whole.parse().map_err(|_| bad())?;
        let frac: u64 = format!("{frac:0<4}").parse().map_err(|_| bad())?;
        let ppm = whole * 10_000 + frac;
        if ppm > 1_000_000 {
            return Err(format!("invalid sample {text:?}: must be from 0% to 100%"));
        }
        Ok(Self(ppm as u32))
    }
}

impl fmt::Display for SampleRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (whole, frac) = (self.0 / 10_000, self.0 % 10_000);
        if frac == 0 {
            write!(f, "{whole}%")
        } else {
            let frac = format!("{frac:04}");
            write!(f, "{whole}.{}%", frac.trim_end_matches('0'))
        }
    }
}

impl<'de> Deserialize<'de> for SampleRate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::SampleRate;

    #[test]
    fn sample_rates() {
        assert_eq!(SampleRate::parse("1%"), Ok(SampleRate(10_000)));
        assert_eq!(SampleRate::parse("0.1%"), Ok(SampleRate(1_000)));
        assert_eq!(SampleRate::parse("100%"), Ok(SampleRate(1_000_000)));
        assert_eq!(
            SampleRate::parse("12.5%").map(|s| s.to_string()),
            Ok("12.5%".into())
        );
        for bad in ["1", "101%", "-1%", ".5%", "1.00001%", "x%", ""] {
            assert!(SampleRate::parse(bad).is_err(), "{bad}");
        }
    }
}
