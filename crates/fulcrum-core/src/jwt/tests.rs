use super::*;
use std::sync::Arc;

use crate::route::Fields;

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
/// 2024-01-01 and 2033-05-18 (the fixed tokens' `exp` is 2,000,000,000).
const NOW: u64 = 1_704_067_200;
const LATE: u64 = 2_000_000_000;

/// Test data: public keys made once with `openssl genpkey`, and tokens their
/// private keys signed over {"sub":"alice","uid":42,"admin":true,"exp":2000000000}.
const RSA_PUB: &str = "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA3b9gNIGTADu0FsFnOGje\n3CNjcrpL/cZWeuuOUo0ppQnFezoObkuW+c/CXzM2InPxozMDUbBGZ/PdTGOajrtN\nYuuP0QRSMimKr6NduE9Ugcz+djXr9RTkwQpOQhpw5Y+vVTPrXclHb5U6GjhjJ/JR\njQS/+tYpiCWUTRTAc4UBnWovqZRzGXxZK60n+RxrNIoKzZdZXMzRwtcP5pIac8wK\nYcv2TfOYBAwtlO6R4y6Yc5+9LXXl6FzS5HkLB7sYM+lci2zAZzflPydTynRE11oC\nSU7QglGAof8fC1ro/r4QempsjmhbJbBasEO1a3zzsYXr6/CAHfecZJqfzPX/e+qs\nKQIDAQAB\n-----END PUBLIC KEY-----\n";
const EC_PUB: &str = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE4NLzL0rMxkkqdaqHBxHHx67Ya7UN\nLjAIjXSf5NuUcFGG4KzlQZsGVGTFLqN5Zxqtb54GWVvGhg/5X7sxqE+hjA==\n-----END PUBLIC KEY-----\n";
const EC384_PUB: &str = "-----BEGIN PUBLIC KEY-----\nMHYwEAYHKoZIzj0CAQYFK4EEACIDYgAEpzLd1XlzBK4+qriibIlVY2VqJmPLavXr\ntFFdPphqFvcJE5DbtzPqpQx322Ul2KEXU9IrJkqi2gPg35Vna50pBI4XqHCaJk9r\n/9lYmpy37hzixH8lNomJzLZYEIr5yj88\n-----END PUBLIC KEY-----\n";
const RS256_TOKEN: &str = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSIsInVpZCI6NDIsImFkbWluIjp0cnVlLCJleHAiOjIwMDAwMDAwMDB9.2uR1FmM2G9vGxt97IJ5mpAWWHMrZ0zxWOtEcBwZYrJyFt0DARG9kfQHpEKHrh8IxOiam6t6y_-DFrvV6sScMUh_038guVrrYdfCBV0noaaBr_QwRKrnMT_08cmG8WHPQk_IEtYukpYIF9aDC5aE31m30rzXo03HlxplVgj2q_UaljsjepZ2kJy-xeXKmF-6S7g0TEoWIIySdV9b-B6h2TxvdRTLwMUlRyPbnFbl3TmkUFy8ziIgmg3Y2ufeWSPWAhSzMW6u1ZhY7_9gufhIDv7zBZFGl74wImYgwpyZzrVcXLAqysTw7uT_iKgtFE5BuCbIVjUrzMHiPTyKrQvmcHA";
const ES256_TOKEN: &str = "eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSIsInVpZCI6NDIsImFkbWluIjp0cnVlLCJleHAiOjIwMDAwMDAwMDB9.QEznly4SzLpJ83xCqpNnjw_isxsL5zkl0fnh2rgmeEOQ3ve-c-nv_guegqJ2b1qN8Ep31zVLAQJ7xd5GxwPQQg";

fn claims(json: &str) -> Claims {
    serde_json::from_str(json).unwrap()
}

fn hs(json: &str) -> String {
    sign_hs256(SECRET, &claims(json))
}

fn b64(s: &str) -> String {
    URL_SAFE_NO_PAD.encode(s)
}

/// A token with `header` as its header, signed with the HS256 test secret.
fn with_header(header: &str, payload: &str) -> String {
    let input = format!("{}.{}", b64(header), b64(payload));
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET).unwrap();
    mac.update(input.as_bytes());
    format!(
        "{input}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}

#[test]
fn hs256_valid_and_claim_text() {
    let key = JwtKey::hs256(SECRET);
    let c = verify(
        &hs(r#"{"sub":"alice","uid":42,"ok":true,"r":[1]}"#),
        &key,
        NOW,
    )
    .unwrap();
    assert_eq!(claim_text(&c["sub"]).as_deref(), Some("alice"));
    assert_eq!(claim_text(&c["uid"]).as_deref(), Some("42"));
    assert_eq!(claim_text(&c["ok"]).as_deref(), Some("true"));
    assert_eq!(claim_text(&c["r"]), None);
}

#[test]
fn hs256_refuses_tampering_and_wrong_secret() {
    let token = hs(r#"{"sub":"alice"}"#);
    let (head, rest) = token.split_once('.').unwrap();
    let sig = rest.split_once('.').unwrap().1;
    let forged = format!("{head}.{}.{sig}", b64(r#"{"sub":"admin"}"#));
    let key = JwtKey::hs256(SECRET);
    assert_eq!(verify(&forged, &key, NOW), Err(JwtError::Signature));
    let other = JwtKey::hs256(b"another secret of at least 32 bytes!");
    assert_eq!(verify(&token, &other, NOW), Err(JwtError::Signature));
    // Decoding without a key still reads it: for hashing only.
    assert_eq!(decode_unverified(&forged).unwrap()["sub"], "admin");
}

#[test]
fn refuses_none_and_mismatched_algorithms() {
    let key = JwtKey::hs256(SECRET);
    let none = format!("{}.{}.", b64(r#"{"alg":"none"}"#), b64(r#"{"sub":"a"}"#));
    assert_eq!(verify(&none, &key, NOW), Err(JwtError::Algorithm));
    let missing = with_header("{}", r#"{"sub":"a"}"#);
    assert_eq!(verify(&missing, &key, NOW), Err(JwtError::Algorithm));
    let crit = with_header(r#"{"alg":"HS256","crit":["x"]}"#, r#"{"sub":"a"}"#);
    assert_eq!(verify(&crit, &key, NOW), Err(JwtError::Critical));
    // An HS256 token "signed" with the RSA public key's text must not pass an RS256 key.
    let rsa = JwtKey::from_pem(RSA_PUB).unwrap();
    assert_eq!(
        verify(&hs(r#"{"sub":"a"}"#), &rsa, NOW),
        Err(JwtError::Algorithm)
    );
    let confused = sign_hs256(RSA_PUB.as_bytes(), &claims(r#"{"sub":"a"}"#));
    assert_eq!(verify(&confused, &rsa, NOW), Err(JwtError::Algorithm));
    assert_eq!(verify(RS256_TOKEN, &key, NOW), Err(JwtError::Algorithm));
}

#[test]
fn checks_exp_and_nbf() {
    let key = JwtKey::hs256(SECRET);
    let exp = hs(r#"{"exp":1704067200}"#);
    assert_eq!(verify(&exp, &key, NOW - 1).map(drop), Ok(()));
    assert_eq!(verify(&exp, &key, NOW), Err(JwtError::Expired));
    let nbf = hs(r#"{"nbf":1704067201}"#);
    assert_eq!(verify(&nbf, &key, NOW), Err(JwtError::NotYetValid));
    assert_eq!(verify(&nbf, &key, NOW + 1).map(drop), Ok(()));
    let text = hs(r#"{"exp":"soon"}"#);
    assert_eq!(verify(&text, &key, NOW), Err(JwtError::Json));
}

#[test]
fn refuses_malformed_tokens() {
    let key = JwtKey::hs256(SECRET);
    let good = hs(r#"{"sub":"a"}"#);
    for bad in ["", "a", "a.b", "a.b.c.d", "***.e30.", &format!("{good}.x")] {
        assert_eq!(verify(bad, &key, NOW), Err(JwtError::Malformed), "{bad}");
    }
    let not_json = with_header(r#"{"alg":"HS256"}"#, "not json");
    assert_eq!(verify(&not_json, &key, NOW), Err(JwtError::Json));
    let array = with_header(r#"{"alg":"HS256"}"#, "[1]");
    assert_eq!(verify(&array, &key, NOW), Err(JwtError::Json));
    assert_eq!(decode_unverified("a.b"), Err(JwtError::Malformed));
    assert_eq!(decode_unverified("a.!.c"), Err(JwtError::Malformed));
}

#[test]
fn rs256_and_es256_verify_with_pem_keys() {
    let rsa = JwtKey::from_pem(RSA_PUB).unwrap();
    let ec = JwtKey::from_pem(EC_PUB).unwrap();
    assert_eq!((rsa.alg(), ec.alg()), ("RS256", "ES256"));
    for (key, token) in [(&rsa, RS256_TOKEN), (&ec, ES256_TOKEN)] {
        let c = verify(token, key, NOW).unwrap();
        assert_eq!(c["sub"], "alice");
        assert_eq!(verify(token, key, LATE), Err(JwtError::Expired));
        // Flip one bit of the signature.
        let mut bytes = token.as_bytes().to_vec();
        let i = bytes.len() - 3;
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        let bad = String::from_utf8(bytes).unwrap();
        assert_eq!(verify(&bad, key, NOW), Err(JwtError::Signature));
    }
    // Each key refuses the other's tokens by algorithm.
    assert_eq!(verify(ES256_TOKEN, &rsa, NOW), Err(JwtError::Algorithm));
    assert_eq!(verify(RS256_TOKEN, &ec, NOW), Err(JwtError::Algorithm));
}

#[test]
fn unsupported_pem_is_refused() {
    assert_eq!(
        JwtKey::from_pem(EC384_PUB).unwrap_err(),
        KeyError::Unrecognized
    );
    assert_eq!(
        JwtKey::from_pem("junk").unwrap_err(),
        KeyError::Unrecognized
    );
    assert_eq!(format!("{:?}", JwtKey::hs256(SECRET)), "JwtKey(HS256)");
}

#[test]
fn bearer_values() {
    assert_eq!(bearer(b"Bearer abc"), Some("abc"));
    assert_eq!(bearer(b"bearer   abc "), Some("abc"));
    assert_eq!(bearer(b"Basic abc"), None);
    assert_eq!(bearer(b"Bearer "), None);
    assert_eq!(bearer(b"Bearer"), None);
}

#[test]
fn request_tokens_verify_once_per_key() {
    let token = format!("Bearer {}", hs(r#"{"sub":"alice"}"#));
    let fields = [(&b"authorization"[..], token.as_bytes())];
    let headers = Fields(fields.iter().copied());
    let key = Arc::new(JwtKey::hs256(SECRET));
    let wrong = Arc::new(JwtKey::hs256(b"another secret of at least 32 bytes!"));
    let t = RequestTokens::new(|| NOW);
    assert_eq!(t.claims(&headers, Some(&key)).unwrap()["sub"], "alice");
    assert!(t.claims(&headers, Some(&wrong)).is_none());
    assert_eq!(t.claims(&headers, None).unwrap()["sub"], "alice");
    assert!(t.claims(&headers, Some(&key)).is_some());
    assert_eq!(t.verified.lock().unwrap().len(), 2);
    let none = RequestTokens::new(|| NOW);
    assert!(none.claims(&crate::route::NoHeaders, Some(&key)).is_none());
}
