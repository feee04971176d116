//! Unit tests of the sticky cookie codec.

use super::super::test_support::pool;
use super::*;

const SECRET: &[u8] = b"0123456789abcdef-secret";
const NOW: u64 = 1_700_000_000;

#[test]
fn round_trip_every_backend() {
    let pool = pool(&[1, 1, 1]);
    let s = Sticky::new(SECRET, 3600, &pool);
    for i in 0..3 {
        let v = s.cookie_value(BackendId(i), NOW);
        assert_eq!(v.len(), TEXT_LEN);
        assert_eq!(s.backend_for(v.as_bytes(), NOW + 10), Some(BackendId(i)));
        let pin = s.pin(v.as_bytes(), NOW).unwrap();
        assert_eq!(pin.expires, NOW + 3600);
    }
}

#[test]
fn unreadable_address_not_in_value() {
    let pool = pool(&[1]);
    let s = Sticky::new(SECRET, 3600, &pool);
    let raw = URL_SAFE_NO_PAD
        .decode(s.cookie_value(BackendId(0), NOW))
        .unwrap();
    let key = pool[0].key.0.as_bytes();
    assert!(!raw.windows(key.len()).any(|w| w == key));
    // Only the expiry is in clear.
    assert!(!raw.windows(4).any(|w| w == [127, 0, 0, 1]));
}

#[test]
fn forged_rejected() {
    let pool = pool(&[1, 1]);
    let s = Sticky::new(SECRET, 3600, &pool);
    let v = s.cookie_value(BackendId(1), NOW).into_bytes();
    for i in 0..v.len() {
        let mut forged = v.clone();
        forged[i] = if forged[i] == b'A' { b'B' } else { b'A' };
        assert_eq!(s.backend_for(&forged, NOW), None, "byte {i}");
    }
    // Another backend's tag under this cookie's mac.
    let raw0 = URL_SAFE_NO_PAD
        .decode(s.cookie_value(BackendId(0), NOW))
        .unwrap();
    let mut raw1 = URL_SAFE_NO_PAD.decode(&v).unwrap();
    raw1[8..16].copy_from_slice(&raw0[8..16]);
    assert_eq!(
        s.backend_for(URL_SAFE_NO_PAD.encode(raw1).as_bytes(), NOW),
        None
    );
    for junk in [&b""[..], b"x", b"!!!!", &[b'A'; TEXT_LEN + 1]] {
        assert_eq!(s.backend_for(junk, NOW), None);
    }
}

#[test]
fn expired_rejected() {
    let pool = pool(&[1]);
    let s = Sticky::new(SECRET, 60, &pool);
    let v = s.cookie_value(BackendId(0), NOW);
    assert!(s.backend_for(v.as_bytes(), NOW + 59).is_some());
    assert_eq!(s.backend_for(v.as_bytes(), NOW + 60), None);
    assert_eq!(s.backend_for(v.as_bytes(), NOW + 10_000), None);
}

#[test]
fn other_secret_rejected() {
    let pool = pool(&[1, 1]);
    let a = Sticky::new(SECRET, 3600, &pool);
    let b = Sticky::new(b"another-secret-of-16+", 3600, &pool);
    let v = a.cookie_value(BackendId(0), NOW);
    assert_eq!(b.backend_for(v.as_bytes(), NOW), None);
}

#[test]
fn unknown_backend_rejected() {
    let big = pool(&[1, 1, 1]);
    let small = pool(&[1, 1]);
    let v = Sticky::new(SECRET, 3600, &big).cookie_value(BackendId(2), NOW);
    assert_eq!(
        Sticky::new(SECRET, 3600, &small).backend_for(v.as_bytes(), NOW),
        None
    );
    assert_eq!(
        Sticky::new(SECRET, 3600, &small).cookie_value(BackendId(7), NOW),
        ""
    );
}

#[test]
fn instances_agree_whatever_the_order() {
    let fwd = pool(&[1, 1, 1]);
    let mut rev = pool(&[1, 1, 1]);
    rev.reverse();
    let a = Sticky::new(SECRET, 3600, &fwd);
    let b = Sticky::new(SECRET, 3600, &rev);
    for i in 0..3u32 {
        let v = a.cookie_value(BackendId(i), NOW);
        let id = b.backend_for(v.as_bytes(), NOW).unwrap();
        assert_eq!(rev[id.index()].key, fwd[i as usize].key);
        // Same inputs, same bytes: no per-process randomness.
        assert_eq!(
            v,
            Sticky::new(SECRET, 3600, &fwd).cookie_value(BackendId(i), NOW)
        );
    }
}

#[test]
fn refresh_rules() {
    let pool = pool(&[1, 1]);
    let s = Sticky::new(SECRET, 100, &pool);
    let pin = s.pin(s.cookie_value(BackendId(0), NOW).as_bytes(), NOW);
    assert!(!s.needs_refresh(pin, BackendId(0), NOW));
    assert!(!s.needs_refresh(pin, BackendId(0), NOW + 50));
    assert!(s.needs_refresh(pin, BackendId(0), NOW + 51));
    assert!(s.needs_refresh(pin, BackendId(1), NOW));
    assert!(s.needs_refresh(None, BackendId(0), NOW));
}

#[test]
fn finds_the_named_cookie_among_others() {
    let pool = pool(&[1, 1]);
    let s = Sticky::new(SECRET, 3600, &pool);
    let v = s.cookie_value(BackendId(1), NOW);
    let header = format!("a=1; srv=stale; srv={v} ; b=2");
    let pin = s.pin_in_header("srv", header.as_bytes(), NOW).unwrap();
    assert_eq!(pin.backend, BackendId(1));
    assert_eq!(s.pin_in_header("other", header.as_bytes(), NOW), None);
    let set = s.set_cookie("srv", BackendId(1), NOW);
    assert_eq!(
        set,
        format!("srv={v}; Path=/; HttpOnly; SameSite=Lax; Max-Age=3600")
    );
}

#[test]
fn cookie_names() {
    assert!(is_cookie_name("srv_id-1"));
    for bad in ["", "a b", "a=b", "a;b", "é", "a,b", "a\"b"] {
        assert!(!is_cookie_name(bad), "{bad}");
    }
}
