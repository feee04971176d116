//! Where a problem is in the file: byte offsets to lines, and key paths to and from
//! positions in a span-keeping parse of the document.
//!
//! serde errors carry a byte span but no key; semantic errors carry a key but no
//! span. A `toml_edit::Document` keeps the span of every key and value, so it
//! answers both questions.

use std::fmt;
use std::ops::Range;

use toml_edit::{Document, Item, Table, Value};

/// One step of a [`KeyPath`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Seg {
    /// A table key.
    Key(String),
    /// An array position, 0-based as in the file's order.
    Index(usize),
}

/// A dotted key path such as `pools.api.backends[2].weight`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct KeyPath(Vec<Seg>);

impl KeyPath {
    /// The path one key deeper.
    pub(crate) fn key(&self, key: &str) -> Self {
        self.with(Seg::Key(key.to_owned()))
    }

    /// The path one array position deeper.
    pub(crate) fn index(&self, index: usize) -> Self {
        self.with(Seg::Index(index))
    }

    /// Whether `prefix` is this path or one of its parents.
    pub(crate) fn starts_with(&self, prefix: &KeyPath) -> bool {
        self.0.starts_with(&prefix.0)
    }

    fn with(&self, seg: Seg) -> Self {
        let mut segs = self.0.clone();
        segs.push(seg);
        Self(segs)
    }
}

/// The path of a top-level key.
pub(crate) fn key(key: &str) -> KeyPath {
    KeyPath::default().key(key)
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(top level)");
        }
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Index(n) => write!(f, "[{n}]")?,
                Seg::Key(k) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    let bare = !k.is_empty()
                        && k.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
                    if bare {
                        f.write_str(k)?;
                    } else {
                        write!(f, "{k:?}")?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Answers "which line" and "which key" for one config text.
pub(crate) struct Locator<'a> {
    text: &'a str,
    /// `None` when the text is not valid TOML.
    doc: Option<Document<String>>,
}

impl<'a> Locator<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        Self {
            text,
            doc: Document::parse(text.to_owned()).ok(),
        }
    }

    /// The 1-based line holding byte `offset`.
    pub(crate) fn line_at(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        1 + self.text.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
    }

    /// The deepest key whose name or value contains `span`.
    pub(crate) fn path_at(&self, span: &Range<usize>) -> Option<KeyPath> {
        let doc = self.doc.as_ref()?;
        let mut best = None;
        visit(
            Node::Table(doc.as_table()),
            &KeyPath::default(),
            span,
            &mut best,
        );
        best.map(|(path, _)| path)
    }

    /// The line of `path`'s key, or of its nearest parent present in the file
    /// (a defaulted key has no line of its own); 1 when nothing matches.
    pub(crate) fn line_of(&self, path: &KeyPath) -> usize {
        let Some(doc) = &self.doc else { return 1 };
        let mut node = Node::Table(doc.as_table());
        let mut found: Option<Range<usize>> = None;
        for seg in &path.0 {
            let Some(child) = children(node).into_iter().find(|c| c.seg == *seg) else {
                break;
            };
            found = child.key_span.or_else(|| child.node.span()).or(found);
            node = child.node;
        }
        found.map_or(1, |span| self.line_at(span.start))
    }

    /// A best guess at the key on `line` for a syntax error, when the document
    /// cannot be parsed: the last table header above it plus the key on the line.
    pub(crate) fn guess_path(&self, line: usize) -> KeyPath {
        let mut path = KeyPath::default();
        let mut arrays: Vec<(String, usize)> = Vec::new();
        for (n, raw) in self.text.lines().take(line).enumerate() {
            let trimmed = raw.trim();
            if trimmed.starts_with('#') {
                continue;
            }
            if let Some(name) = trimmed
                .strip_prefix("[[")
                .and_then(|r| r.split("]]").next())
            {
                let name = name.trim().to_owned();
                let count = match arrays.iter_mut().find(|(known, _)| *known == name) {
                    Some((_, count)) => {
                        *count += 1;
                        *count
                    }
                    None => {
                        arrays.push((name.clone(), 0));
                        0
                    }
                };
                path = dotted(KeyPath::default(), &name).index(count);
            } else if let Some(name) = trimmed.strip_prefix('[').and_then(|r| r.split(']').next()) {
                path = dotted(KeyPath::default(), name);
            } else if n + 1 == line {
                match trimmed.split_once('=') {
                    Some((name, _)) if looks_like_key(name) => return dotted(path, name),
                    _ => break,
                }
            }
        }
        path
    }
}

/// Appends a dotted key as written (`a.b`, `"a.b".c`), quotes removed; a heuristic
/// for syntax errors only.
fn dotted(mut path: KeyPath, name: &str) -> KeyPath {
    for part in name.split('.') {
        let part = part.trim().trim_matches(|c| c == '"' || c == '\'');
        if !part.is_empty() {
            path = path.key(part);
        }
    }
    path
}

/// Whether `name` reads as a dotted key (`a.b`, `"a b".c`), not as a broken line.
fn looks_like_key(name: &str) -> bool {
    name.split('.').all(|part| {
        let part = part.trim();
        let quoted = part.len() >= 2
            && ((part.starts_with('"') && part.ends_with('"'))
                || (part.starts_with('\'') && part.ends_with('\'')))
            && !part[1..part.len() - 1].contains(['"', '\'']);
        let bare = !part.is_empty()
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        quoted || bare
    })
}

/// A position in the document: a table, or an item or value inside one.
#[derive(Clone, Copy)]
enum Node<'d> {
    Table(&'d Table),
    Item(&'d Item),
    Value(&'d Value),
}

impl Node<'_> {
    fn span(self) -> Option<Range<usize>> {
        match self {
            Node::Table(t) => t.span(),
            Node::Item(i) => i.span(),
            Node::Value(v) => v.span(),
        }
    }
}

struct Child<'d> {
    seg: Seg,
    key_span: Option<Range<usize>>,
    node: Node<'d>,
}

fn keyed<'d>((key, item): (&'d toml_edit::Key, &'d Item)) -> Child<'d> {
    Child {
        seg: Seg::Key(key.get().to_owned()),
        key_span: key.span(),
        node: Node::Item(item),
    }
}

fn children(node: Node<'_>) -> Vec<Child<'_>> {
    match node {
        Node::Table(t) => t
            .iter()
            .filter_map(|(k, _)| t.get_key_value(k))
            .map(keyed)
            .collect(),
        Node::Item(Item::Table(t)) => children(Node::Table(t)),
        Node::Item(Item::ArrayOfTables(a)) => a
            .iter()
            .enumerate()
            .map(|(i, t)| Child {
                seg: Seg::Index(i),
                key_span: None,
                node: Node::Table(t),
            })
            .collect(),
        Node::Item(Item::Value(v)) => children(Node::Value(v)),
        Node::Item(Item::None) => Vec::new(),
        Node::Value(Value::InlineTable(t)) => t
            .iter()
            .filter_map(|(k, _)| t.get_key_value(k))
            .map(keyed)
            .collect(),
        Node::Value(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, v)| Child {
                seg: Seg::Index(i),
                key_span: None,
                node: Node::Value(v),
            })
            .collect(),
        Node::Value(_) => Vec::new(),
    }
}

/// Records in `best` the path whose key or value has the narrowest span containing
/// `target`, the deeper one on a tie. Narrowest, not deepest: in `[pols.api]` the
/// unknown key's span is `pols`, which the header span of `pols.api` also contains.
/// Every child is visited: a table's span covers only its header, not its keys.
fn visit(
    node: Node<'_>,
    path: &KeyPath,
    target: &Range<usize>,
    best: &mut Option<(KeyPath, usize)>,
) {
    for child in children(node) {
        let path = path.with(child.seg);
        for span in [child.key_span, child.node.span()].into_iter().flatten() {
            let contains = span.start <= target.start && target.end <= span.end;
            let better = best.as_ref().is_none_or(|(known, width)| {
                span.len() < *width || (span.len() == *width && path.0.len() > known.0.len())
            });
            if contains && better {
                *best = Some((path.clone(), span.len()));
            }
        }
        visit(child.node, &path, target, best);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "workers = 1\n[pools.api]\nbackends = [\"a:1\", { address = \"b:1\" }]\n\
                        [[routes]]\npool = \"api\"\n[[routes]]\npool = \"api\"\n";

    fn span_of(needle: &str) -> Range<usize> {
        let start = TEXT.find(needle).unwrap();
        start..start + needle.len()
    }

    #[test]
    fn displays_paths() {
        let path = key("pools")
            .key("with.dot")
            .key("backends")
            .index(2)
            .key("weight");
        assert_eq!(path.to_string(), "pools.\"with.dot\".backends[2].weight");
        assert_eq!(KeyPath::default().to_string(), "(top level)");
    }

    #[test]
    fn finds_the_key_at_a_span() {
        let at = Locator::new(TEXT);
        let path = |needle| at.path_at(&span_of(needle)).map(|p| p.to_string());
        assert_eq!(path("1"), Some("workers".into()));
        assert_eq!(
            path("\"b:1\""),
            Some("pools.api.backends[1].address".into())
        );
        assert_eq!(
            path("{ address = \"b:1\" }"),
            Some("pools.api.backends[1]".into())
        );
        assert_eq!(path("[pools.api]"), Some("pools.api".into()));
        // The narrowest span wins: the `pools` key, not the `pools.api` header.
        assert_eq!(path("pools"), Some("pools".into()));
        let second = TEXT.rfind("\"api\"").unwrap();
        assert_eq!(
            at.path_at(&(second..second + 5)).map(|p| p.to_string()),
            Some("routes[1].pool".into())
        );
    }

    #[test]
    fn finds_the_line_of_a_key_or_its_parent() {
        let at = Locator::new(TEXT);
        assert_eq!(at.line_at(0), 1);
        assert_eq!(at.line_at(TEXT.len() + 10), 8);
        assert_eq!(at.line_of(&key("workers")), 1);
        assert_eq!(at.line_of(&key("routes").index(1).key("pool")), 7);
        // Absent keys fall back to the nearest parent, then to line 1.
        assert_eq!(at.line_of(&key("pools").key("api").key("protocol")), 2);
        assert_eq!(at.line_of(&key("routes").index(1).key("host")), 6);
        assert_eq!(at.line_of(&key("listeners")), 1);
    }

    #[test]
    fn guesses_keys_of_broken_documents() {
        let text = "[[routes]]\npool = 1\n[[routes]]\npool = = 2\n{ x = 1\n";
        let at = Locator::new(text);
        assert_eq!(at.guess_path(4).to_string(), "routes[1].pool");
        assert_eq!(at.guess_path(5).to_string(), "routes[1]");
        assert_eq!(
            Locator::new("a b = 1").guess_path(1).to_string(),
            "(top level)"
        );
    }
}
