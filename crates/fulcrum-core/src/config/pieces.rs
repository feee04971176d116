//! Deserializing a parsed document piece by piece, so one bad entry does not hide
//! the problems of the others.
//!
//! Each top-level key, each `listeners.X`, `pools.X` and `routes[i]`, and `admin`
//! and `access_log` are deserialized on their own, from their span-keeping
//! sub-value of the one parse of the text: toml's error spans still point into the
//! file, so lines and keys come out as if the whole document had been read at once.
//!
//! Inside an entry, a key that fails (or a key of a table nested in it, such as
//! `pools.x.health.interval`) is reported, dropped and the entry tried again, so
//! every bad key is found and the rest of the entry still reaches the semantic
//! rules. What was lost is kept in [`Gaps`], so that a rule does not
//! report a consequence of an error already reported.

use std::collections::BTreeMap;
use std::ops::Range;

use serde::de::Error as _;
use serde::Deserialize;
use toml::de::{DeTable, DeValue, ValueDeserializer};
use toml::Spanned;

use super::locate::{key, KeyPath};
use super::{defaults, AccessLogConfig, Config, RouteConfig};

/// The top-level keys of [`Config`], in its order (serde's list is private).
pub(crate) const TOP_KEYS: &[&str] = &[
    "workers",
    "shutdown_timeout",
    "watch",
    "admin",
    "access_log",
    "tracing",
    "rate_limits",
    "redis",
    "listeners",
    "routes",
    "pools",
    "resolvers",
];

/// A type or unknown-key error: where in the text, and serde's message.
#[derive(Clone, Debug)]
pub(crate) struct Failure {
    pub(crate) span: Option<Range<usize>>,
    pub(crate) message: String,
}

impl From<toml::de::Error> for Failure {
    fn from(e: toml::de::Error) -> Self {
        Self {
            span: e.span(),
            message: e.message().to_owned(),
        }
    }
}

/// Key paths whose values did not deserialize: a whole entry or section, or one key
/// of an entry that was dropped and stands at its default.
#[derive(Clone, Debug, Default)]
pub(crate) struct Gaps(Vec<KeyPath>);

impl Gaps {
    /// Whether `path` or one of its parents failed: its value is unknown.
    pub(crate) fn covers(&self, path: &KeyPath) -> bool {
        self.0.iter().any(|gap| path.starts_with(gap))
    }

    /// Whether anything at or under `path` failed: `path` may be incomplete.
    pub(crate) fn within(&self, path: &KeyPath) -> bool {
        self.0.iter().any(|gap| gap.starts_with(path))
    }
}

/// What could be read of a document.
#[derive(Debug)]
pub(crate) struct Pieces {
    /// Every piece that deserialized; defaults stand in for the others, and a route
    /// that failed is a default placeholder so later routes keep their index.
    pub(crate) config: Config,
    /// Where the stand-ins are.
    pub(crate) gaps: Gaps,
    /// Every type and unknown-key error, in no particular order.
    pub(crate) failures: Vec<Failure>,
}

/// Deserializes every piece of `doc`, collecting every failure.
pub(crate) fn read(doc: Spanned<DeTable<'_>>) -> Pieces {
    let mut r = Reader::default();
    let mut config = Config {
        workers: None,
        shutdown_timeout: defaults::shutdown_timeout(),
        watch: false,
        admin: None,
        access_log: AccessLogConfig::default(),
        tracing: None,
        rate_limits: BTreeMap::new(),
        redis: None,
        listeners: BTreeMap::new(),
        routes: Vec::new(),
        pools: BTreeMap::new(),
        resolvers: Vec::new(),
    };
    for (name, value) in doc.into_inner() {
        let path = key(name.get_ref());
        match name.get_ref().as_ref() {
            "workers" => config.workers = r.value(path, value),
            "shutdown_timeout" => {
                if let Some(timeout) = r.value(path, value) {
                    config.shutdown_timeout = timeout;
                }
            }
            "watch" => config.watch = r.value(path, value).unwrap_or_default(),
            "admin" => config.admin = r.entry(path, value),
            "access_log" => config.access_log = r.entry(path, value).unwrap_or_default(),
            "tracing" => config.tracing = r.entry(path, value),
            "rate_limits" => config.rate_limits = r.named(path, value),
            "redis" => config.redis = r.entry(path, value),
            "listeners" => config.listeners = r.named(path, value),
            "pools" => config.pools = r.named(path, value),
            "routes" => config.routes = r.routes(path, value),
            "resolvers" => config.resolvers = r.value(path, value).unwrap_or_default(),
            other => r.failures.push(Failure {
                span: Some(name.span()),
                message: toml::de::Error::unknown_field(other, TOP_KEYS)
                    .message()
                    .to_owned(),
            }),
        }
    }
    Pieces {
        config,
        gaps: r.gaps,
        failures: r.failures,
    }
}

#[derive(Default)]
struct Reader {
    gaps: Gaps,
    failures: Vec<Failure>,
}

impl Reader {
    /// A value read whole: on failure it is reported and `path` is a gap.
    fn value<'i, T: Deserialize<'i>>(
        &mut self,
        path: KeyPath,
        value: Spanned<DeValue<'i>>,
    ) -> Option<T> {
        match T::deserialize(ValueDeserializer::from(value)) {
            Ok(value) => Some(value),
            Err(e) => {
                self.failures.push(e.into());
                self.gaps.0.push(path);
                None
            }
        }
    }

    /// A table of entries by name (`listeners`, `pools`), each read on its own;
    /// anything else is read whole, for serde's "expected a table" error.
    fn named<'i, T: Deserialize<'i>>(
        &mut self,
        path: KeyPath,
        value: Spanned<DeValue<'i>>,
    ) -> BTreeMap<String, T> {
        let span = value.span();
        let table = match value.into_inner() {
            DeValue::Table(table) => table,
            other => {
                return self
                    .value(path, Spanned::new(span, other))
                    .unwrap_or_default()
            }
        };
        let mut entries = BTreeMap::new();
        for (name, value) in table {
            let name = name.into_inner().into_owned();
            if let Some(entry) = self.entry(path.key(&name), value) {
                entries.insert(name, entry);
            }
        }
        entries
    }

    /// `[[routes]]`, each read on its own; a route that fails is a placeholder.
    fn routes(&mut self, path: KeyPath, value: Spanned<DeValue<'_>>) -> Vec<RouteConfig> {
        let span = value.span();
        match value.into_inner() {
            DeValue::Array(routes) => routes
                .into_iter()
                .enumerate()
                .map(|(i, route)| self.entry(path.index(i), route).unwrap_or_default())
                .collect(),
            other => self
                .value(path, Spanned::new(span, other))
                .unwrap_or_default(),
        }
    }

    /// One entry (a table): each key that fails is reported, dropped and the entry
    /// tried again, so every bad key is found and the rest still deserializes. A
    /// key of a nested table (`health = { ... }`, `[pools.x.health]`) is dropped
    /// from that table, so its siblings are still read and checked.
    /// `None`, with the entry a gap, when a required key is missing or the entry is
    /// not a table.
    fn entry<'i, T: Deserialize<'i>>(
        &mut self,
        path: KeyPath,
        value: Spanned<DeValue<'i>>,
    ) -> Option<T> {
        let span = value.span();
        let mut value = value.into_inner();
        // Each dropped key, as its chain of keys below the entry.
        let mut dropped: Vec<Vec<String>> = Vec::new();
        // Each failed attempt drops a key, so this ends.
        loop {
            let attempt = Spanned::new(span.clone(), value.clone());
            let e = match T::deserialize(ValueDeserializer::from(attempt)) {
                Ok(entry) => {
                    for chain in dropped {
                        self.gaps.0.push(below(&path, &chain));
                    }
                    return Some(entry);
                }
                Err(e) => e,
            };
            // A key missing from this entry is placed on the entry's span, which no
            // key holds; one missing deeper (`backends[0].address`) drops its key.
            let chain = e.span().map(|at| culprit(&value, &at)).unwrap_or_default();
            // A required key we dropped is missing because of an error already
            // reported; any other failure is news.
            let consequence = dropped.iter().any(|d| {
                d.len() == chain.len() + 1
                    && d.starts_with(&chain)
                    && d.last().is_some_and(|name| is_missing(&e, name))
            });
            if !consequence {
                self.failures.push(e.into());
            }
            if chain.is_empty() || !remove(&mut value, &chain) {
                self.gaps.0.push(path);
                return None;
            }
            dropped.push(chain);
        }
    }
}

/// `path` followed by the keys of `chain`.
fn below(path: &KeyPath, chain: &[String]) -> KeyPath {
    chain.iter().fold(path.clone(), |path, name| path.key(name))
}

/// The keys leading from `value` (a table) to the deepest key whose name or value
/// holds the error span `at`; empty when no key does. The search goes into nested
/// tables, whose own span may cover only their `[header]`, but not into arrays:
/// a bad element drops its whole array.
fn culprit(value: &DeValue<'_>, at: &Range<usize>) -> Vec<String> {
    let holds = |span: Range<usize>| span.start <= at.start && at.end <= span.end;
    let DeValue::Table(table) = value else {
        return Vec::new();
    };
    for (key, child) in table {
        // An error on the whole value ("expected a string, found a table") is the
        // key's own; one inside it belongs to a key deeper down, if one holds it.
        let deeper = if child.span() == *at {
            Vec::new()
        } else {
            culprit(child.get_ref(), at)
        };
        if !deeper.is_empty() || holds(key.span()) || holds(child.span()) {
            let mut chain = vec![key.get_ref().to_string()];
            chain.extend(deeper);
            return chain;
        }
    }
    Vec::new()
}

/// Removes the key at the end of `chain` from the nested tables of `value`;
/// whether it was there.
fn remove(value: &mut DeValue<'_>, chain: &[String]) -> bool {
    let (DeValue::Table(table), [name, rest @ ..]) = (value, chain) else {
        return false;
    };
    if rest.is_empty() {
        let before = table.len();
        *table = std::mem::take(table)
            .into_iter()
            .filter(|(key, _)| key.get_ref().as_ref() != name)
            .collect();
        table.len() < before
    } else {
        table
            .iter_mut()
            .find(|(key, _)| key.get_ref().as_ref() == name)
            .is_some_and(|(_, child)| remove(child.get_mut(), rest))
    }
}

/// Whether `e` says the key `name` is missing.
fn is_missing(e: &toml::de::Error, name: &str) -> bool {
    e.message() == format!("missing field `{name}`")
}
