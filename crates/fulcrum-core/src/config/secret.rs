//! A secret string from the config: deserialized as a plain string, never shown by `Debug`.

use serde::Deserialize;

/// A secret (`jwt_secret`): its text is only reachable through [`Secret::expose`],
/// and `Debug` prints `<redacted>`, so it stays out of logs and panics.
#[derive(Clone, Default, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps `text`.
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// The secret's text.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}
