//! Parsing and validation: text in, a [`Config`] or every problem found out.
//!
//! A syntax error stops everything: the document cannot be read. Otherwise each
//! piece of it is deserialized on its own (`pieces.rs`), so every type and
//! unknown-key error is found, each byte span turned into a line and a key path.
//! Semantic rules (`rules.rs`) then run on what deserialized, skipping what did not,
//! and report all their problems at once, each placed on the line of its key.

use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::de::DeTable;

use super::locate::{KeyPath, Locator};
use super::{pieces, rules, Config};

/// One problem in a config file, displayed as `FILE:LINE: KEY: REASON`.
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

/// Parses and validates a config; returns every error, sorted by line.
///
/// `file` is only used to label errors: nothing is read from disk.
pub fn parse(file: &Path, text: &str) -> Result<Config, Vec<ConfigError>> {
    let locator = Locator::new(text);
    let doc = match DeTable::parse(text) {
        Ok(doc) => doc,
        Err(e) => return Err(vec![from_toml(file, &locator, e.span(), e.message())]),
    };
    let pieces = pieces::read(doc);
    let mut errors: Vec<ConfigError> = pieces
        .failures
        .into_iter()
        .map(|f| from_toml(file, &locator, f.span, &f.message))
        .collect();
    let line_of = |path: &KeyPath| locator.line_of(path);
    errors.extend(
        rules::check(&pieces.config, &pieces.gaps, &line_of)
            .into_iter()
            .map(|p| ConfigError {
                file: file.to_owned(),
                line: locator.line_of(&p.path),
                key: p.path.to_string(),
                reason: p.reason,
            }),
    );
    if errors.is_empty() {
        return Ok(pieces.config);
    }
    errors.sort_by_key(|e| e.line);
    Err(errors)
}

/// A syntax or type error from toml (its span and message), placed on its line and key.
fn from_toml(
    file: &Path,
    locator: &Locator<'_>,
    span: Option<Range<usize>>,
    message: &str,
) -> ConfigError {
    let line = span.as_ref().map_or(0, |s| locator.line_at(s.start));
    let mut path = span
        .as_ref()
        .and_then(|s| locator.path_at(s))
        .unwrap_or_else(|| locator.guess_path(line));
    let (missing, reason) = humanize(message);
    if let Some(field) = missing {
        path = path.key(&field);
    }
    ConfigError {
        file: file.to_owned(),
        line,
        key: path.to_string(),
        reason,
    }
}

/// Rewrites serde's messages in the file's own words ("key", "table", "array").
/// Returns the name of a missing key, which belongs in the key path, apart.
fn humanize(message: &str) -> (Option<String>, String) {
    let names = ticked(message);
    if message.starts_with("unknown field `") {
        let reason = match names.get(1..).unwrap_or_default() {
            [] => "unknown key".to_owned(),
            [one] => format!("unknown key (expected: {one})"),
            many => format!("unknown key (expected one of: {})", many.join(", ")),
        };
        return (None, reason);
    }
    if let (true, Some(name)) = (message.starts_with("missing field `"), names.first()) {
        return (Some((*name).to_owned()), "missing required key".to_owned());
    }
    if let (true, Some(value)) = (message.starts_with("unknown variant `"), names.first()) {
        let allowed = names.get(1..).unwrap_or_default().join(", ");
        return (
            None,
            format!("unknown value {value:?} (expected one of: {allowed})"),
        );
    }
    if let (true, Some(name)) = (message.starts_with("duplicate field `"), names.first()) {
        return (None, format!("key {name:?} is set twice"));
    }
    if message.contains("expected a nonzero") {
        return (None, "must be at least 1".to_owned());
    }
    if let Some(rest) = message.strip_prefix("invalid value: integer `-") {
        let number = rest.split('`').next().unwrap_or_default();
        return (None, format!("must not be negative (found -{number})"));
    }
    if let Some((found, expected)) = message
        .strip_prefix("invalid type: ")
        .and_then(|rest| rest.split_once(", expected "))
    {
        let found = match found {
            "sequence" => "an array",
            "map" => "a table",
            other => other,
        };
        return (None, format!("expected {}, found {found}", noun(expected)));
    }
    (None, message.to_owned())
}

/// Serde's name for an expected type, in TOML's terms.
fn noun(expected: &str) -> &str {
    match expected {
        "usize" | "u8" | "u16" | "u32" | "u64" => "a non-negative integer",
        "a sequence" => "an array",
        "a map" => "a table",
        other if other.starts_with("struct ") => "a table",
        other => other,
    }
}

/// The texts between backticks: `` unknown field `a`, expected `b` `` gives `[a, b]`.
fn ticked(message: &str) -> Vec<&str> {
    message.split('`').skip(1).step_by(2).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_serde_messages() {
        let cases = [
            (
                "unknown field `adress`, expected `address` or `protocol`",
                "unknown key (expected one of: address, protocol)",
            ),
            (
                "unknown field `pol`, expected `pool`",
                "unknown key (expected: pool)",
            ),
            ("unknown field `x`, there are no fields", "unknown key"),
            (
                "unknown variant `tcpx`, expected one of `http`, `tcp`",
                "unknown value \"tcpx\" (expected one of: http, tcp)",
            ),
            (
                "invalid value: integer `0`, expected a nonzero u32",
                "must be at least 1",
            ),
            (
                "invalid value: integer `-3`, expected usize",
                "must not be negative (found -3)",
            ),
            (
                "invalid type: string \"a\", expected a sequence",
                "expected an array, found string \"a\"",
            ),
            (
                "invalid type: sequence, expected a map",
                "expected a table, found an array",
            ),
            (
                "invalid type: string \"a\", expected usize",
                "expected a non-negative integer, found string \"a\"",
            ),
            ("duplicate field `weight`", "key \"weight\" is set twice"),
            ("something else", "something else"),
        ];
        for (message, want) in cases {
            assert_eq!(humanize(message), (None, want.to_owned()), "{message}");
        }
        assert_eq!(
            humanize("missing field `pool`"),
            (Some("pool".to_owned()), "missing required key".to_owned())
        );
    }
}
