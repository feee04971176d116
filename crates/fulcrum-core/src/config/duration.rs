//! Durations written as `"250ms"`, `"5s"`, `"2m"`, `"1h"`.

/// A duration from the config file. STUB: replaced by the config work.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Duration(pub std::time::Duration);

impl Duration {
    /// Whole seconds.
    pub const fn from_secs(s: u64) -> Self {
        Self(std::time::Duration::from_secs(s))
    }
    /// The std duration.
    pub const fn get(self) -> std::time::Duration {
        self.0
    }
}

impl<'de> serde::Deserialize<'de> for Duration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let s = s.trim_end_matches('s');
        s.parse::<u64>()
            .map(Self::from_secs)
            .map_err(serde::de::Error::custom)
    }
}
