//! Rate limits at the edge: the GCRA arithmetic, the bounded key table one process
//! shares across its workers, and the bookkeeping of token leases taken from a
//! fleet-wide store. Time comes in as nanoseconds from any fixed origin.

mod gcra;
mod lease;
mod table;

pub use gcra::{Decision, Gcra};
pub use lease::{Grant, LeaseTable, Need};
pub use table::Limiter;

use std::net::IpAddr;
use std::sync::Arc;

use crate::balance::{stable_hash, HashKey};
use crate::jwt::Claims;

/// `rate = "100/s"`: so many requests per second, minute or hour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    /// Requests per period.
    pub count: u32,
    /// The period, in seconds.
    pub per_secs: u32,
}

impl Rate {
    /// Parses `"100/s"`, `"6000/m"` or `"10000/h"`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || format!("invalid rate {text:?}: expected COUNT/s, COUNT/m or COUNT/h");
        let (count, unit) = text.trim().split_once('/').ok_or_else(bad)?;
        let per_secs = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            _ => return Err(bad()),
        };
        let count: u32 = count.parse().map_err(|_| bad())?;
        if count == 0 {
            return Err(format!(
                "invalid rate {text:?}: the count must be at least 1"
            ));
        }
        Ok(Self { count, per_secs })
    }

    /// The time one request uses up, in nanoseconds (at least 1).
    pub fn interval_ns(self) -> u64 {
        (u64::from(self.per_secs) * 1_000_000_000 / u64::from(self.count)).max(1)
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let unit = match self.per_secs {
            1 => "s",
            60 => "m",
            _ => "h",
        };
        write!(f, "{}/{unit}", self.count)
    }
}

/// What a limiter counts requests by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RateKey {
    /// A request attribute, hashed as consistent hashing hashes it (client address,
    /// header, cookie, query parameter, JWT claim), so every instance of a fleet
    /// derives the same key.
    Attribute(HashKey),
    /// The route the request matched: one budget per route.
    Route,
    /// One budget for every request.
    Global,
}

impl RateKey {
    /// Parses `key = "client_ip" | "header:NAME" | "cookie:NAME" | "query:NAME" |
    /// "jwt:CLAIM" | "route" | "global"`.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "route" => Ok(Self::Route),
            "global" => Ok(Self::Global),
            "path" => Err("key \"path\" is not offered: use \"route\"".into()),
            _ => HashKey::parse(text).map(Self::Attribute).map_err(|_| {
                format!(
                    "unknown key {text:?} (expected client_ip, header:NAME, cookie:NAME, query:NAME, jwt:CLAIM, route or global)"
                )
            }),
        }
    }

    /// The key of a request, `None` when the request lacks the attribute (it is
    /// then not counted, as nginx does with an empty key). `route` is the matched
    /// route's index.
    pub fn of<'a>(
        &self,
        client: IpAddr,
        target: &'a str,
        route: usize,
        header: impl Fn(&str) -> Option<&'a [u8]>,
        claims: impl FnOnce() -> Option<Arc<Claims>>,
    ) -> Option<u64> {
        match self {
            Self::Attribute(k) => k.hash_with_claims(client, target, header, claims),
            Self::Route => Some(stable_hash(&(route as u64).to_le_bytes())),
            Self::Global => Some(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_and_print() {
        assert_eq!(
            Rate::parse("100/s"),
            Ok(Rate {
                count: 100,
                per_secs: 1
            })
        );
        assert_eq!(
            Rate::parse("6000/m").map(|r| r.interval_ns()),
            Ok(10_000_000)
        );
        assert_eq!(
            Rate::parse("36/h").map(|r| r.to_string()),
            Ok("36/h".into())
        );
        for bad in ["", "100", "0/s", "-1/s", "1/d", "x/s", "1/S", "1.5/s"] {
            assert!(Rate::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn keys_parse() {
        assert_eq!(RateKey::parse("global"), Ok(RateKey::Global));
        assert_eq!(RateKey::parse("route"), Ok(RateKey::Route));
        assert_eq!(
            RateKey::parse("jwt:sub"),
            Ok(RateKey::Attribute(HashKey::Jwt("sub".into())))
        );
        for bad in ["", "path", "ip", "header:"] {
            assert!(RateKey::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_missing_attribute_is_no_key() {
        let ip: IpAddr = [10, 0, 0, 1].into();
        let key = RateKey::parse("header:x-user").unwrap_or(RateKey::Global);
        assert_eq!(key.of(ip, "/", 0, |_| None, || None), None);
        let a = key.of(ip, "/", 0, |_| Some(b"alice"), || None);
        let b = key.of(ip, "/", 0, |_| Some(b"bob"), || None);
        assert!(a.is_some() && a != b);
        assert_ne!(
            RateKey::Route.of(ip, "/", 0, |_| None, || None),
            RateKey::Route.of(ip, "/", 1, |_| None, || None)
        );
    }
}
