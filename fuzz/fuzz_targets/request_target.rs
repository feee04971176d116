//! Request targets from untrusted bytes: parsing never panics, a parsed target's
//! pieces are slices of what was sent, its path is origin-form, an absolute-form
//! target never carries userinfo, and only a route naming a host may take it.
#![no_main]

use fulcrum_core::forward::parse_target;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte splits the input into a target and a Host value.
    let (split, rest) = match data.split_first() {
        Some((&b, rest)) => (b as usize % (rest.len() + 1), rest),
        None => return,
    };
    let (raw, host) = rest.split_at(split);
    let Ok(t) = parse_target(raw, Some(host)) else {
        return;
    };
    assert!(t.path.starts_with('/'), "path {:?}", t.path);
    assert!(!t.secure);
    if t.absolute {
        assert!(!t.host.is_empty() && !t.host.contains('@') && !t.host.contains('/'));
        assert!(!t.allowed_by(false), "an open proxy");
        assert!(t.allowed_by(true));
    } else {
        assert_eq!(t.path.as_bytes(), raw);
        assert!(t.allowed_by(false));
    }
});
