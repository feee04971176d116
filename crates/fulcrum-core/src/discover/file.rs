//! A backends file (`discover = { file = ... }`): JSON, or TOML when its name ends
//! in `.toml`. The JSON forms are those tools already write:
//! - `["10.0.0.1:8080", "api-2.internal:8080"]`;
//! - `[{ "address": "10.0.0.1:8080", "weight": 2 }]`;
//! - Prometheus `file_sd` groups, `[{ "targets": ["10.0.0.1:8080"], "labels": { "weight": "2" } }]`.
//!
//! TOML holds the same items under `backends = [...]`.

use std::collections::BTreeMap;

use serde::Deserialize;

/// Highest weight a file may give.
pub const MAX_WEIGHT: u32 = 1_000_000;

/// One backend listed in the file: its address as written and its weight.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    /// `host:port`.
    pub address: String,
    /// At least 1.
    pub weight: u32,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Item {
    Address(String),
    Backend {
        address: String,
        #[serde(default)]
        weight: Option<u32>,
    },
    Group {
        targets: Vec<String>,
        #[serde(default)]
        labels: BTreeMap<String, String>,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlFile {
    backends: Vec<Item>,
}

/// The backends in `text`; `toml` when the file's name ends in `.toml`. An error
/// names the entry and why, so the log says what to fix.
pub fn parse(text: &str, toml: bool) -> Result<Vec<Listed>, String> {
    let items: Vec<Item> = if toml {
        toml::from_str::<TomlFile>(text)
            .map_err(|e| e.message().to_owned())?
            .backends
    } else {
        serde_json::from_str(text).map_err(|e| {
            format!(
                "{e}: expected a list of \"host:port\", {{\"address\", \"weight\"}} or {{\"targets\", \"labels\"}}"
            )
        })?
    };
    let mut out = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let (addresses, weight) = match item {
            Item::Address(a) => (vec![a], None),
            Item::Backend { address, weight } => (vec![address], weight),
            Item::Group { targets, labels } => {
                let weight = match labels.get("weight") {
                    None => None,
                    Some(w) => Some(w.parse::<u32>().map_err(|_| {
                        format!("entry {i}: labels.weight: expected a whole number, got {w:?}")
                    })?),
                };
                (targets, weight)
            }
        };
        let weight = weight.unwrap_or(1);
        if !(1..=MAX_WEIGHT).contains(&weight) {
            return Err(format!(
                "entry {i}: weight must be from 1 to {MAX_WEIGHT}, got {weight}"
            ));
        }
        for address in addresses {
            crate::config::backend_address(&address).map_err(|why| format!("entry {i}: {why}"))?;
            if out.iter().any(|l: &Listed| l.address == address) {
                return Err(format!("entry {i}: {address:?} is listed twice"));
            }
            out.push(Listed { address, weight });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(address: &str, weight: u32) -> Listed {
        Listed {
            address: address.to_owned(),
            weight,
        }
    }

    #[test]
    fn json_forms() {
        let text = r#"[
            "10.0.0.1:80",
            { "address": "10.0.0.2:80", "weight": 3 },
            { "targets": ["10.0.0.3:80", "api.internal:8080"], "labels": { "weight": "2", "env": "prod" } }
        ]"#;
        assert_eq!(
            parse(text, false).unwrap(),
            vec![
                l("10.0.0.1:80", 1),
                l("10.0.0.2:80", 3),
                l("10.0.0.3:80", 2),
                l("api.internal:8080", 2)
            ]
        );
        assert_eq!(parse("[]", false).unwrap(), vec![]);
    }

    #[test]
    fn toml_form() {
        let text = "backends = [\"10.0.0.1:80\", { address = \"10.0.0.2:80\", weight = 4 }]\n";
        assert_eq!(
            parse(text, true).unwrap(),
            vec![l("10.0.0.1:80", 1), l("10.0.0.2:80", 4)]
        );
        assert!(parse("servers = []", true).is_err());
    }

    #[test]
    fn bad_files_say_why() {
        assert!(parse("[\"10.0.0.1:80\"", false)
            .unwrap_err()
            .contains("EOF"));
        assert!(parse("{}", false).unwrap_err().contains("expected a list"));
        let e = parse(r#"["10.0.0.1"]"#, false).unwrap_err();
        assert!(e.starts_with("entry 0: invalid address"), "{e}");
        let e = parse(r#"[{"address": "10.0.0.1:80", "weight": 0}]"#, false).unwrap_err();
        assert!(e.contains("weight must be from 1"), "{e}");
        let e = parse(r#"["10.0.0.1:80", "10.0.0.1:80"]"#, false).unwrap_err();
        assert!(e.contains("listed twice"), "{e}");
        let e = parse(
            r#"[{"targets": ["10.0.0.1:80"], "labels": {"weight": "x"}}]"#,
            false,
        )
        .unwrap_err();
        assert!(e.contains("labels.weight"), "{e}");
    }
}
