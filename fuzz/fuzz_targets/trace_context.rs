//! `traceparent` and request IDs from untrusted bytes: parsing never panics, a value
//! it accepts is sent on in the one canonical form (which reads back the same), and
//! a request ID it keeps is one a header and a log line read alike.
#![no_main]

use fulcrum_core::forward::{valid_request_id, TraceParent};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if valid_request_id(data) {
        assert!(data.iter().all(|b| b.is_ascii_graphic()));
    }
    let Some(tp) = TraceParent::parse(data) else {
        return;
    };
    assert_ne!(tp.trace_id, [0; 16]);
    let sent = tp.child(tp.parent_id, tp.sampled());
    assert!(sent.iter().all(|b| b.is_ascii_hexdigit() || *b == b'-'));
    assert_eq!(TraceParent::parse(&sent), Some(tp));
});
