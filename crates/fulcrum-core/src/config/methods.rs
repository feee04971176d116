//! `MethodsConfig` from either `"GET"` or `["GET", "HEAD"]`.
//!
//! By hand rather than `#[serde(untagged)]`, for the same reason as `backend.rs`:
//! a wrong type names what was expected instead of "did not match any variant".

use std::fmt;

use serde::de::{self, SeqAccess, Visitor};
use serde::Deserialize;

use super::MethodsConfig;

impl<'de> Deserialize<'de> for MethodsConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(MethodsVisitor)
    }
}

struct MethodsVisitor;

impl<'de> Visitor<'de> for MethodsVisitor {
    type Value = MethodsConfig;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a method (\"GET\") or a list of methods ([\"GET\", \"HEAD\"])")
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<MethodsConfig, E> {
        Ok(MethodsConfig(vec![s.to_owned()]))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<MethodsConfig, A::Error> {
        let mut methods = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(method) = seq.next_element::<String>()? {
            methods.push(method);
        }
        Ok(MethodsConfig(methods))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, schemars::JsonSchema)]
    struct T {
        m: MethodsConfig,
    }

    fn parse(text: &str) -> Result<Vec<String>, String> {
        toml::from_str::<T>(text)
            .map(|t| t.m.0)
            .map_err(|e| e.message().to_owned())
    }

    #[test]
    fn string_and_list_forms() {
        assert_eq!(parse(r#"m = "GET""#), Ok(vec!["GET".into()]));
        assert_eq!(
            parse(r#"m = ["GET", "HEAD"]"#),
            Ok(vec!["GET".into(), "HEAD".into()])
        );
        assert_eq!(parse("m = []"), Ok(vec![]));
    }

    #[test]
    fn other_types_say_what_was_expected() {
        assert!(parse("m = 5").unwrap_err().contains("a list of methods"));
        assert!(parse("m = [5]").is_err());
    }
}
