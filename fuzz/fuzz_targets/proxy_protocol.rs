//! PROXY protocol headers from untrusted bytes, on a listener of either version: parsing
//! never panics, a header stays inside the input and within the version's limit, the
//! result does not depend on how the bytes were split (every strict prefix of a header
//! is "need more", and an error stays an error whatever follows), and the addresses of
//! a header survive being written again and parsed back.
#![no_main]

use fulcrum_core::proxy_protocol::{parse, write_v1, write_v2, Header, Version};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    check(data, Version::V1);
    check(data, Version::V2);
});

fn check(data: &[u8], version: Version) {
    match parse(data, version) {
        Ok(Some(h)) => {
            assert!(h.len > 0 && h.len <= data.len(), "header beyond the input");
            assert!(h.len <= version.max_len(), "header beyond the limit");
            assert_eq!(parse(&data[..h.len], version), Ok(Some(h)));
            assert_eq!(parse(&data[..h.len - 1], version), Ok(None));
            // Every prefix would rescan the body of a large v2 header; bound the cost.
            if h.len <= 512 {
                for end in 0..h.len {
                    assert_eq!(parse(&data[..end], version), Ok(None), "prefix {end}");
                }
            }
            rewrite(&h, version);
        }
        Ok(None) => assert!(data.len() < version.max_len(), "waiting past the limit"),
        Err(_) => {
            for tail in [&b"\r\n"[..], b" 0 0\r\n", &[0; 16]] {
                let more = [data, tail].concat();
                assert!(parse(&more, version).is_err(), "error undone by {tail:?}");
            }
        }
    }
}

/// Writes the header's addresses again and checks they parse back unchanged (v1
/// carries no UDP, and both writers keep a family pair as it was parsed).
fn rewrite(h: &Header, version: Version) {
    let Some((src, dst)) = h.addresses else {
        return;
    };
    let mut out = Vec::new();
    match version {
        Version::V1 => write_v1(&mut out, src, dst),
        Version::V2 => write_v2(&mut out, src, dst, false),
    }
    let again = parse(&out, version);
    assert_eq!(
        again,
        Ok(Some(Header {
            len: out.len(),
            addresses: Some((src, dst)),
        }))
    );
}
