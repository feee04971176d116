//! The client-certificate header: a field Fulcrum sets from the verified client
//! certificate of an https listener (`client_auth.header`). A client's own field of
//! that name never reaches a route, a hash key or a backend.

use super::headers::same_name;

/// A header Fulcrum sets from the client certificate (name, lowercase), with the
/// verified subject when there is one.
pub type Identity<'a> = Option<(&'a [u8], Option<&'a [u8]>)>;

/// `fields` with the identity header replaced: every received field of that name is
/// dropped (an underscore in a client's field name counts as a dash, as CGI-style
/// backends read it), and the verified subject, if any, is added last.
pub fn with_identity<'a, I>(
    fields: I,
    id: Identity<'a>,
) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + Clone
where
    I: Iterator<Item = (&'a [u8], &'a [u8])> + Clone,
{
    fields
        .filter(move |(n, _)| id.is_none_or(|(name, _)| !same_name(n, name)))
        .chain(id.and_then(|(name, v)| v.map(|v| (name, v))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(fields: &[(&str, &str)], id: Identity<'_>) -> Vec<(String, String)> {
        let pairs: Vec<(&[u8], &[u8])> = fields
            .iter()
            .map(|(n, v)| (n.as_bytes(), v.as_bytes()))
            .collect();
        with_identity(pairs.iter().copied(), id)
            .map(|(n, v)| {
                (
                    String::from_utf8_lossy(n).into_owned(),
                    String::from_utf8_lossy(v).into_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn spoofed_fields_are_dropped_and_the_subject_added() {
        let fields = [
            ("X-Client-Subject", "CN=admin"),
            ("x_client_subject", "CN=root"),
            ("accept", "*/*"),
        ];
        let out = run(&fields, Some((b"x-client-subject", Some(b"CN=alice"))));
        assert_eq!(
            out,
            [
                ("accept".to_owned(), "*/*".to_owned()),
                ("x-client-subject".to_owned(), "CN=alice".to_owned())
            ]
        );
    }

    #[test]
    fn without_a_certificate_the_field_is_only_dropped() {
        let out = run(
            &[("x-client-subject", "CN=admin")],
            Some((b"x-client-subject", None)),
        );
        assert!(out.is_empty());
    }

    #[test]
    fn without_the_setting_fields_pass() {
        let out = run(&[("x-client-subject", "CN=admin")], None);
        assert_eq!(out.len(), 1);
    }
}
