//! `BackendConfig` from either `"host:port"` or `{ address = "host:port", weight = 2 }`.
//!
//! Written by hand rather than with `#[serde(untagged)]`, whose only error is "data
//! did not match any variant": here a wrong key or type names itself, and toml
//! points at it.

use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::Deserialize;

use super::BackendConfig;

/// Keys of the table form.
const FIELDS: &[&str] = &["address", "weight"];

impl<'de> Deserialize<'de> for BackendConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(BackendVisitor)
    }
}

struct BackendVisitor;

impl<'de> Visitor<'de> for BackendVisitor {
    type Value = BackendConfig;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a \"host:port\" string or a table { address = \"host:port\", weight = N }")
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<BackendConfig, E> {
        Ok(BackendConfig {
            address: s.to_owned(),
            weight: 1,
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<BackendConfig, A::Error> {
        let mut address = None;
        let mut weight = None;
        // Keys go through `Field` so an unknown one fails while the key is being read,
        // which makes toml report the key's own position.
        while let Some(field) = map.next_key::<Field>()? {
            match field {
                Field::Address if address.is_some() => {
                    return Err(de::Error::duplicate_field("address"))
                }
                Field::Weight if weight.is_some() => {
                    return Err(de::Error::duplicate_field("weight"))
                }
                Field::Address => address = Some(map.next_value::<String>()?),
                Field::Weight => weight = Some(map.next_value::<u32>()?),
            }
        }
        Ok(BackendConfig {
            address: address.ok_or_else(|| de::Error::missing_field("address"))?,
            // Weight 0 is accepted here and refused by validation, so it is
            // reported together with every other problem in the file.
            weight: weight.unwrap_or(1),
        })
    }
}

/// A key of the table form.
enum Field {
    Address,
    Weight,
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_identifier(FieldVisitor)
    }
}

struct FieldVisitor;

impl Visitor<'_> for FieldVisitor {
    type Value = Field;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("`address` or `weight`")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Field, E> {
        match key {
            "address" => Ok(Field::Address),
            "weight" => Ok(Field::Weight),
            _ => Err(de::Error::unknown_field(key, FIELDS)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, schemars::JsonSchema)]
    struct T {
        b: Vec<BackendConfig>,
    }

    fn parse(text: &str) -> Result<Vec<BackendConfig>, String> {
        toml::from_str::<T>(text)
            .map(|t| t.b)
            .map_err(|e| e.message().to_owned())
    }

    fn backend(address: &str, weight: u32) -> BackendConfig {
        BackendConfig {
            address: address.to_owned(),
            weight,
        }
    }

    #[test]
    fn string_and_table_forms() {
        let text = r#"b = ["a:1", { address = "b:2", weight = 3 }, { address = "c:3" }]"#;
        assert_eq!(
            parse(text),
            Ok(vec![
                backend("a:1", 1),
                backend("b:2", 3),
                backend("c:3", 1)
            ])
        );
    }

    #[test]
    fn unknown_key_is_named() {
        let err = parse(r#"b = [{ address = "a:1", wieght = 2 }]"#).unwrap_err();
        assert_eq!(
            err,
            "unknown field `wieght`, expected `address` or `weight`"
        );
    }

    #[test]
    fn missing_address_and_bad_types() {
        assert_eq!(
            parse("b = [{ weight = 2 }]").unwrap_err(),
            "missing field `address`"
        );
        assert!(parse("b = [5]")
            .unwrap_err()
            .contains("\"host:port\" string"));
        assert!(parse(r#"b = [{ address = "a:1", weight = "x" }]"#)
            .unwrap_err()
            .contains("u32"));
        assert!(parse(r#"b = [{ address = "a:1", address = "b:1" }]"#).is_err());
    }
}
