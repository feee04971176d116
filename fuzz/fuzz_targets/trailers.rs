//! Trailer sections from untrusted bytes: parsing never panics, and every field it
//! returns is a token name with a value that cannot end a line or a head early, and
//! none of the fields that must not come after a body.
#![no_main]

use fulcrum_core::http1::{is_forbidden_in_trailers, parse_trailers};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(fields) = parse_trailers(data) else {
        return;
    };
    assert!(fields.len() <= data.len() / 3 + 1);
    for (name, value) in fields {
        assert!(!name.is_empty());
        assert!(name.iter().all(|b| b.is_ascii_graphic() && *b != b':'));
        assert!(!value.iter().any(|b| matches!(b, b'\r' | b'\n' | 0)));
        assert!(!is_forbidden_in_trailers(name));
    }
});
