//! Durations written as `"250ms"`, `"5s"`, `"2m"`, `"1h"` or a sum such as `"1m30s"`.
//!
//! A bare number is refused on purpose: `timeout = 5` could mean seconds or
//! milliseconds, and guessing wrong is a silent outage.

use std::fmt;
use std::str::FromStr;

/// A duration from the config file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(pub std::time::Duration);

impl Duration {
    /// Whole seconds.
    pub const fn from_secs(s: u64) -> Self {
        Self(std::time::Duration::from_secs(s))
    }

    /// Whole milliseconds.
    pub const fn from_millis(ms: u64) -> Self {
        Self(std::time::Duration::from_millis(ms))
    }

    /// The std duration.
    pub const fn get(self) -> std::time::Duration {
        self.0
    }

    /// Whether this is zero (`"0s"`).
    pub const fn is_zero(self) -> bool {
        self.0.is_zero()
    }
}

/// Why a string is not a [`Duration`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {text:?}: {why}")]
pub struct DurationError {
    text: String,
    why: &'static str,
}

const EXPECTED: &str = "expected a number followed by ms, s, m or h";

/// Units from largest to smallest, in milliseconds; parts must follow this order.
const UNITS: [(&str, u64); 4] = [("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)];

impl FromStr for Duration {
    type Err = DurationError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let fail = |why| DurationError {
            text: text.to_owned(),
            why,
        };
        if text.is_empty() {
            return Err(fail(EXPECTED));
        }
        let mut rest = text;
        let mut total: u64 = 0;
        // Index into UNITS of the previous part's unit: each part must be smaller.
        let mut last: Option<usize> = None;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(fail(EXPECTED));
            }
            let (number, tail) = rest.split_at(digits);
            let letters = tail.bytes().take_while(u8::is_ascii_alphabetic).count();
            let (unit, tail) = tail.split_at(letters);
            let Some(index) = UNITS.iter().position(|(name, _)| *name == unit) else {
                return Err(fail(EXPECTED));
            };
            if last.is_some_and(|previous| index <= previous) {
                return Err(fail("units must go from largest to smallest, as in 1m30s"));
            }
            last = Some(index);
            let millis = number
                .parse::<u64>()
                .ok()
                .and_then(|n| n.checked_mul(UNITS[index].1))
                .and_then(|ms| total.checked_add(ms));
            total = millis.ok_or_else(|| fail("too large"))?;
            rest = tail;
        }
        Ok(Self::from_millis(total))
    }
}

impl fmt::Display for Duration {
    /// Writes the shortest form that parses back to the same value, such as `1m30s`
    /// (sub-millisecond precision, which the file format cannot express, is dropped).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut millis = self.0.as_millis();
        if millis == 0 {
            return f.write_str("0s");
        }
        for (name, size) in UNITS {
            let size = u128::from(size);
            if millis >= size {
                write!(f, "{}{name}", millis / size)?;
                millis %= size;
            }
        }
        Ok(())
    }
}

impl<'de> serde::Deserialize<'de> for Duration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(Visitor)
    }
}

struct Visitor;

impl serde::de::Visitor<'_> for Visitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration string such as \"250ms\", \"5s\", \"2m\" or \"1h\"")
    }

    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Duration, E> {
        s.parse().map_err(E::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(text: &str) -> Result<u128, String> {
        text.parse::<Duration>()
            .map(|d| d.get().as_millis())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn single_units() {
        assert_eq!(ms("250ms"), Ok(250));
        assert_eq!(ms("5s"), Ok(5_000));
        assert_eq!(ms("2m"), Ok(120_000));
        assert_eq!(ms("1h"), Ok(3_600_000));
        assert_eq!(ms("0s"), Ok(0));
        assert_eq!(ms("007s"), Ok(7_000));
    }

    #[test]
    fn compound() {
        assert_eq!(ms("1m30s"), Ok(90_000));
        assert_eq!(ms("1h2m3s4ms"), Ok(3_723_004));
        assert_eq!(ms("1s500ms"), Ok(1_500));
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "", "5", "-1s", "5x", "s", "1.5s", " 5s", "5s ", "5 s", "5S", "1m1m", "1s1m",
        ] {
            assert!(ms(bad).is_err(), "{bad:?} should be refused");
        }
        assert_eq!(
            ms("5x"),
            Err(r#"invalid duration "5x": expected a number followed by ms, s, m or h"#.to_owned())
        );
        assert_eq!(
            ms("30s1m"),
            Err(
                r#"invalid duration "30s1m": units must go from largest to smallest, as in 1m30s"#
                    .to_owned()
            )
        );
    }

    #[test]
    fn rejects_overflow() {
        assert_eq!(
            ms("99999999999999999999s"),
            Err(r#"invalid duration "99999999999999999999s": too large"#.to_owned())
        );
        assert!(ms("18446744073709551615h").is_err());
        assert!(ms("5124095576030431h5124095576030431m").is_err());
    }

    #[test]
    fn display_round_trips() {
        for text in ["0s", "250ms", "5s", "2m", "1h", "1m30s", "1h2m3s4ms"] {
            let d: Duration = text.parse().unwrap();
            assert_eq!(d.to_string(), text);
        }
        assert_eq!(Duration::from_millis(90_000).to_string(), "1m30s");
        assert_eq!(
            Duration::from_secs(3).get(),
            std::time::Duration::from_secs(3)
        );
    }

    #[test]
    fn deserializes_from_toml_string() {
        #[derive(serde::Deserialize, schemars::JsonSchema)]
        struct T {
            d: Duration,
        }
        let t: T = toml::from_str("d = \"1m30s\"").unwrap();
        assert_eq!(t.d, Duration::from_secs(90));
        let err = toml::from_str::<T>("d = 5").err().unwrap();
        assert!(err.message().contains("a duration string"), "{err}");
    }
}
