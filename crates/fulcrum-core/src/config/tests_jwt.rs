//! Tests of the JWT keys' rules: where they may be set, and that routes need one.

use super::tests::{errors, parse_ok, BASE};

const SECRET: &str = "0123456789abcdef0123456789abcdef";

#[test]
fn jwt_keys_parse_and_debug_redacts_the_secret() {
    let c = parse_ok(&format!(
        "{BASE}balance = \"ring_hash\"\nhash_key = \"jwt:sub\"\njwt_secret = \"{SECRET}\"\n\
         [[routes]]\njwt_claim = {{ role = \"admin\", tier = \"~gold|silver\" }}\n\
         jwt_public_key = \"keys/jwt.pem\"\npool = \"api\"\n"
    ));
    let p = &c.pools["api"];
    assert_eq!(p.jwt_secret.as_ref().map(|s| s.expose()), Some(SECRET));
    assert!(!format!("{p:?}").contains(SECRET));
    let r = &c.routes[1];
    assert_eq!(r.jwt_claim["role"], "admin");
    assert_eq!(r.jwt_public_key.as_deref(), Some("keys/jwt.pem"));
    // Unverified claims are fine for hashing.
    parse_ok(&format!(
        "{BASE}balance = \"maglev\"\nhash_key = \"jwt:sub\"\n"
    ));
}

#[test]
fn a_route_on_claims_needs_a_key() {
    let e = errors(&format!(
        "{BASE}[[routes]]\njwt_claim = {{ role = \"admin\" }}\npool = \"api\"\n"
    ));
    assert_eq!(e.len(), 1, "{e:#?}");
    assert!(
        e[0].contains("routes[1].jwt_claim: needs jwt_secret or jwt_public_key: routing on unverified claims lets clients pick their route"),
        "{e:#?}"
    );
}

#[test]
fn bad_keys_are_refused() {
    let e = errors(&format!(
        "{BASE}jwt_secret = \"short\"\njwt_public_key = \"\"\n\
         [[routes]]\njwt_claim = {{ \"\" = \"~(\" }}\njwt_secret = \"{SECRET}\"\npool = \"api\"\n\
         [[routes]]\njwt_public_key = \"k.pem\"\npool = \"api\"\n"
    ));
    let want = [
        "pools.api.jwt_secret: only used with hash_key = \"jwt:CLAIM\"",
        "pools.api.jwt_public_key: only used with hash_key = \"jwt:CLAIM\"",
        "pools.api.jwt_public_key: set either jwt_secret or jwt_public_key, not both",
        "pools.api.jwt_secret: must be at least 32 bytes",
        "pools.api.jwt_public_key: must be the path of a PEM file",
        "routes[1].jwt_claim.\"\": claim name must not be empty",
        "routes[1].jwt_claim.\"\": invalid regex",
        "routes[2].jwt_public_key: only used with jwt_claim",
    ];
    for w in want {
        assert!(e.iter().any(|x| x.contains(w)), "{w} not in {e:#?}");
    }
    assert_eq!(e.len(), want.len(), "{e:#?}");
}
