//! The JSON Schema of the config file (`config/fulcrum.schema.json`), for editors that
//! complete and check TOML as it is typed (taplo, Even Better TOML). Derived from the
//! config types; the types with a hand-written `Deserialize` describe themselves
//! here. `fulcrum check` stays the authority: the schema cannot say everything
//! (a pool named by a route exists, a key file reads).

use std::borrow::Cow;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};

use super::{BackendConfig, Duration, MethodsConfig, Percent, RetryOn, SampleRate, StatusRange};

/// The schema of a whole config file, as pretty JSON with a final newline.
pub fn schema_json() -> String {
    let mut schema = schemars::schema_for!(super::Config);
    schema.insert("title".into(), "Fulcrum config (fulcrum.toml)".into());
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}

/// A duration's text: units from the largest down, at least one.
const DURATION_PATTERN: &str = "^([0-9]+h([0-9]+m)?([0-9]+s)?([0-9]+ms)?|[0-9]+m([0-9]+s)?([0-9]+ms)?|[0-9]+s([0-9]+ms)?|[0-9]+ms)$";

macro_rules! described {
    ($ty:ty, $name:literal, $schema:tt) => {
        impl JsonSchema for $ty {
            fn schema_name() -> Cow<'static, str> {
                $name.into()
            }

            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!($schema)
            }
        }
    };
}

described!(Duration, "Duration", {
    "description": "A duration: a number followed by ms, s, m or h, or a sum of them from the largest unit down (\"250ms\", \"5s\", \"1m30s\").",
    "type": "string",
    "pattern": DURATION_PATTERN
});

described!(Percent, "Percent", {
    "description": "A percentage from 0 to 100: \"20%\", or the bare number.",
    "anyOf": [
        { "type": "string", "pattern": "^[0-9]+%$" },
        { "type": "integer", "minimum": 0, "maximum": 100 }
    ]
});

described!(SampleRate, "SampleRate", {
    "description": "A share of traces, as a percentage with up to four decimals: \"1%\", \"0.1%\".",
    "type": "string",
    "pattern": "^[0-9]+(\\.[0-9]{1,4})?%$"
});

described!(crate::limit::Rate, "Rate", {
    "description": "Requests per second, minute or hour: \"100/s\", \"6000/m\", \"10000/h\".",
    "type": "string",
    "pattern": "^[0-9]+/[smh]$"
});

described!(StatusRange, "StatusRange", {
    "description": "HTTP statuses: a status (200), a range (\"200-299\") or a class (\"2xx\").",
    "anyOf": [
        { "type": "integer", "minimum": 100, "maximum": 599 },
        { "type": "string", "pattern": "^([1-5][0-9][0-9](-[1-5][0-9][0-9])?|[1-5]xx)$" }
    ]
});

described!(MethodsConfig, "Methods", {
    "description": "An HTTP method, exact and uppercase (\"GET\"), or a list of them.",
    "anyOf": [
        { "type": "string" },
        { "type": "array", "items": { "type": "string" } }
    ]
});

described!(BackendConfig, "Backend", {
    "description": "A backend: \"host:port\", or { address = \"host:port\", weight = N }.",
    "anyOf": [
        { "type": "string" },
        {
            "type": "object",
            "properties": {
                "address": { "type": "string" },
                "weight": { "type": "integer", "minimum": 1 }
            },
            "required": ["address"],
            "additionalProperties": false
        }
    ]
});

described!(RetryOn, "RetryOn", {
    "description": "A retry condition: connect-failure, reset, timeout, 5xx, or a status from 500 to 599.",
    "anyOf": [
        { "enum": ["connect-failure", "reset", "timeout", "5xx"] },
        { "type": "string", "pattern": "^5[0-9][0-9]$" },
        { "type": "integer", "minimum": 500, "maximum": 599 }
    ]
});

#[cfg(test)]
mod tests {
    /// The schema in the repository is the one the types make: run with
    /// `UPDATE_SCHEMA=1` after changing a config type to write it anew.
    #[test]
    fn the_committed_schema_is_current() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../config/fulcrum.schema.json"
        );
        let made = super::schema_json();
        if std::env::var_os("UPDATE_SCHEMA").is_some() {
            std::fs::write(path, &made).expect("write the schema");
        }
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == made,
            "config/fulcrum.schema.json is stale: UPDATE_SCHEMA=1 cargo test -p fulcrum-core schema"
        );
    }

    #[test]
    fn the_duration_pattern_takes_what_the_parser_takes() {
        let re = regex::Regex::new(super::DURATION_PATTERN).expect("a regex");
        for text in [
            "250ms",
            "5s",
            "2m",
            "1h",
            "0s",
            "007s",
            "1m30s",
            "1h2m3s4ms",
            "1s500ms",
        ] {
            assert!(re.is_match(text), "{text}");
            assert!(text.parse::<super::Duration>().is_ok(), "{text}");
        }
        for text in ["", "5", "s", "5x", "30s1m", "1.5s", "-1s", " 5s"] {
            assert!(!re.is_match(text), "{text}");
            assert!(text.parse::<super::Duration>().is_err(), "{text}");
        }
    }

    #[test]
    fn the_schema_names_every_top_level_key() {
        let v: serde_json::Value =
            serde_json::from_str(&super::schema_json()).expect("the schema is JSON");
        let props = v["properties"].as_object().expect("properties");
        for key in super::super::pieces::TOP_KEYS {
            assert!(props.contains_key(*key), "{key} missing from the schema");
        }
    }
}
