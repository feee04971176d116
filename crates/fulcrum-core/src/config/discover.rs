//! Config of backends that come and go: a pool's `dns` clamps and `discover`
//! source, and the top-level `resolvers`.

use serde::Deserialize;

use super::Duration;

/// `dns = { min_ttl = "1s", max_ttl = "5m", empty_grace = "30s" }` on a pool: how
/// the names among its backends (and its SRV records) are re-resolved.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DnsConfig {
    /// An answer is asked again no sooner than this, whatever its TTL.
    #[serde(default = "defaults::min_ttl")]
    pub min_ttl: Duration,
    /// An answer is asked again no later than this, whatever its TTL.
    #[serde(default = "defaults::max_ttl")]
    pub max_ttl: Duration,
    /// An empty answer (no records, NXDOMAIN) from a working resolver empties the
    /// name's members only once it has lasted this long.
    #[serde(default = "defaults::empty_grace")]
    pub empty_grace: Duration,
    /// Which records a name's members come from.
    #[serde(default)]
    pub family: FamilyConfig,
}

impl Default for DnsConfig {
    fn default() -> Self {
        Self {
            min_ttl: defaults::min_ttl(),
            max_ttl: defaults::max_ttl(),
            empty_grace: defaults::empty_grace(),
            family: FamilyConfig::default(),
        }
    }
}

/// `family` of a pool's `dns`: A, AAAA or both.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum FamilyConfig {
    /// One member per A and per AAAA record.
    #[default]
    Any,
    /// A records only.
    Ipv4,
    /// AAAA records only.
    Ipv6,
}

/// `discover = { srv = "_http._tcp.api.service.consul" }` or
/// `discover = { file = "backends.json" }` on a pool: members beyond `backends`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DiscoverConfig {
    /// SRV name: members at each target's addresses and port, weighted by the
    /// record's weight; the lowest priority serves, the others are backups.
    #[serde(default)]
    pub srv: Option<String>,
    /// A JSON or TOML file listing backends (`["10.0.0.1:80", ...]`,
    /// `[{ "address": ..., "weight": ... }]`, or Prometheus `file_sd` groups),
    /// watched and applied live.
    #[serde(default)]
    pub file: Option<String>,
}

mod defaults {
    use super::Duration;

    pub(super) fn min_ttl() -> Duration {
        Duration::from_secs(1)
    }

    pub(super) fn max_ttl() -> Duration {
        Duration::from_secs(300)
    }

    pub(super) fn empty_grace() -> Duration {
        Duration::from_secs(30)
    }
}
