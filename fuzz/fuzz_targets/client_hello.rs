//! TLS ClientHello peeks from untrusted bytes: never a panic, and a prefix of bytes
//! that completed a ClientHello only ever needs more (never errs, never answers).
#![no_main]

use fulcrum_core::client_hello::{peek, Peek};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Peek::Done(name)) = peek(data) {
        if let Some(name) = &name {
            assert!(name.bytes().all(|b| !b.is_ascii_uppercase()));
        }
        // The shortest prefix that completes gives the same name; shorter ones wait.
        let first = (0..=data.len())
            .find(|&n| matches!(peek(&data[..n]), Ok(Peek::Done(_))))
            .unwrap_or(data.len());
        assert_eq!(peek(&data[..first]), Ok(Peek::Done(name)));
        for n in 0..first {
            assert_eq!(peek(&data[..n]), Ok(Peek::NeedMore), "prefix {n}");
        }
    }
});
