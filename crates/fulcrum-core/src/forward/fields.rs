//! A message's header fields however its protocol carried them: spans into an
//! HTTP/1.1 head's bytes, or name/value pairs (HTTP/2, collected once from its map).
//! One cloneable iterator type, so every writer and rule takes both without a copy.

use crate::http1::Field;

/// The fields of one message.
#[derive(Clone, Copy, Debug)]
pub enum FieldList<'a> {
    /// Spans of a parsed HTTP/1.1 head into its bytes.
    Spans {
        /// The head's fields in order.
        fields: &'a [Field],
        /// The bytes the spans point into.
        bytes: &'a [u8],
    },
    /// Name/value pairs.
    Pairs(&'a [(&'a [u8], &'a [u8])]),
}

impl<'a> FieldList<'a> {
    /// The fields in order, as `(name, value)` byte pairs.
    pub fn iter(&self) -> Fields<'a> {
        match *self {
            Self::Spans { fields, bytes } => Fields::Spans(fields.iter(), bytes),
            Self::Pairs(pairs) => Fields::Pairs(pairs.iter()),
        }
    }

    /// The first value of the field `name` (case ignored).
    pub fn get(&self, name: &[u8]) -> Option<&'a [u8]> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }
}

/// An iterator over a [`FieldList`].
#[derive(Clone, Debug)]
pub enum Fields<'a> {
    /// Over spans.
    Spans(std::slice::Iter<'a, Field>, &'a [u8]),
    /// Over pairs.
    Pairs(std::slice::Iter<'a, (&'a [u8], &'a [u8])>),
}

impl<'a> Iterator for Fields<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Self::Spans(it, bytes) => it.next().map(|f| (f.name.get(bytes), f.value.get(bytes))),
            Self::Pairs(it) => it.next().copied(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            Self::Spans(it, _) => it.size_hint(),
            Self::Pairs(it) => it.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http1::parse_request;

    #[test]
    fn spans_and_pairs_read_alike() {
        let raw = b"GET / HTTP/1.1\r\nHost: a\r\nX-One: 1\r\n\r\n";
        let head = parse_request(raw, 1024).unwrap().unwrap();
        let spans = FieldList::Spans {
            fields: &head.fields,
            bytes: raw,
        };
        let pairs: Vec<(&[u8], &[u8])> = vec![(b"Host", b"a"), (b"X-One", b"1")];
        let pairs = FieldList::Pairs(&pairs);
        assert_eq!(
            spans.iter().collect::<Vec<_>>(),
            pairs.iter().collect::<Vec<_>>()
        );
        assert_eq!(spans.get(b"x-one"), Some(&b"1"[..]));
        assert_eq!(pairs.get(b"HOST"), Some(&b"a"[..]));
        assert_eq!(pairs.get(b"nope"), None);
        assert_eq!(spans.iter().size_hint(), (2, Some(2)));
    }
}
