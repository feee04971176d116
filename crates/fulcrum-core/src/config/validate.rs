//! Parsing and validation. STUB: replaced by the config work.
use std::path::{Path, PathBuf};

use super::{BackendConfig, Config};

/// One problem in a config file.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}: {key}: {reason}", file.display())]
pub struct ConfigError {
    /// The file.
    pub file: PathBuf,
    /// 1-based line, 0 when unknown.
    pub line: usize,
    /// Dotted key path, such as `pools.api.backends[2].weight`.
    pub key: String,
    /// What is wrong.
    pub reason: String,
}

/// Parses and validates a config; returns every error.
pub fn parse(file: &Path, text: &str) -> Result<Config, Vec<ConfigError>> {
    toml::from_str(text).map_err(|e| {
        vec![ConfigError {
            file: file.to_owned(),
            line: 0,
            key: String::new(),
            reason: e.to_string(),
        }]
    })
}

impl<'de> serde::Deserialize<'de> for BackendConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let address = String::deserialize(d)?;
        Ok(Self { address, weight: 1 })
    }
}
