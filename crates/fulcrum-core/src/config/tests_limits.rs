//! `[rate_limits]`, `[redis]`, and a route's `rate_limit`, `basic_auth` and
//! `forward_auth`.

use super::tests::{errors, parse_ok, BASE};
use super::*;

fn with_route(route_keys: &str, rest: &str) -> String {
    format!("{BASE}{rest}").replace("[[routes]]\n", &format!("[[routes]]\n{route_keys}"))
}

#[test]
fn limits_redis_and_auth_parse() {
    let text = with_route(
        "rate_limit = [\"per-ip\", \"everyone\"]\n\
         basic_auth = { users = \"/etc/fulcrum/users\", realm = \"ops\" }\n\
         forward_auth = { url = \"http://127.0.0.1:9000/check\", copy_headers = [\"x-user\"] }\n",
        "[rate_limits.per-ip]\nrate = \"100/s\"\n\n\
         [rate_limits.everyone]\nrate = \"6000/m\"\nburst = 50\nkey = \"global\"\nscope = \"fleet\"\non_redis_error = \"deny\"\n\n\
         [redis]\nurl = \"redis://user:pw@127.0.0.1:6379/2\"\n",
    );
    let c = parse_ok(&text);
    let ip = &c.rate_limits["per-ip"];
    assert_eq!(
        (ip.key.as_str(), ip.scope, ip.burst(), ip.max_keys),
        ("client_ip", RateScope::Local, 100, 1_000_000)
    );
    let all = &c.rate_limits["everyone"];
    assert_eq!((all.burst(), all.on_redis_error), (50, OnRedisError::Deny));
    assert_eq!(all.rate.interval_ns(), 10_000_000);
    let redis = c.redis.as_ref().unwrap();
    assert_eq!(
        (redis.timeout, redis.pool_size),
        (Duration::from_millis(50), 8)
    );
    let r = &c.routes[0];
    assert_eq!(r.rate_limit, ["per-ip", "everyone"]);
    assert_eq!(r.basic_auth.as_ref().unwrap().realm, "ops");
    let fa = r.forward_auth.as_ref().unwrap();
    assert_eq!(
        (fa.copy_headers.len(), fa.timeout),
        (1, Duration::from_secs(2))
    );
}

#[test]
fn bad_limits_name_their_key() {
    let text = with_route(
        "rate_limit = [\"nope\", \"claims\", \"claims\"]\n\
         forward_auth = { url = \"https://auth\", copy_headers = [\"x user\"], timeout = \"0s\" }\n\
         basic_auth = { users = \"\", realm = \"a\\\"b\" }\n",
        "[rate_limits.fleet]\nrate = \"10/s\"\nscope = \"fleet\"\nburst = 0\nkey = \"path\"\n\n\
         [rate_limits.claims]\nrate = \"10/x\"\nkey = \"jwt:sub\"\n\n\
         [rate_limits.huge]\nrate = \"1/s\"\nmax_keys = 0\n",
    );
    let all = errors(&text);
    let has = |needle: &str| all.iter().any(|e| e.contains(needle));
    for needle in [
        "rate_limits.fleet.scope: a fleet limiter needs [redis]",
        "rate_limits.fleet.burst: must be at least 1",
        "rate_limits.fleet.key: key \"path\" is not offered",
        "rate_limits.claims.rate: invalid rate \"10/x\"",
        "rate_limits.huge.max_keys: must be between 1 and",
        "routes[0].rate_limit[0]: unknown rate limit \"nope\"",
        "routes[0].forward_auth.url: \"https://auth\": expected an http:// URL",
        "routes[0].forward_auth.timeout: must be more than 0",
        "routes[0].forward_auth.copy_headers[0]: not a header name",
        "routes[0].basic_auth.users: must name an htpasswd file",
        "routes[0].basic_auth.realm: must not hold quotes",
    ] {
        assert!(has(needle), "{needle} not in {all:#?}");
    }
    // The limiter that failed to read is not reported again as unknown.
    assert!(!has("unknown rate limit \"claims\""), "{all:#?}");
    let text = with_route(
        "rate_limit = [\"users\", \"users\"]\n",
        "[rate_limits.users]\nrate = \"10/s\"\nkey = \"jwt:sub\"\n\n[redis]\nurl = \"http://x\"\npool_size = 0\n",
    );
    let all = errors(&text);
    let has = |needle: &str| all.iter().any(|e| e.contains(needle));
    for needle in [
        "routes[0].rate_limit[0]: a limiter keyed by jwt:CLAIM needs the route's jwt_secret",
        "routes[0].rate_limit[1]: listed twice",
        "redis.url: must start with redis://, rediss:// or unix://",
        "redis.pool_size: must be between 1 and 64",
    ] {
        assert!(has(needle), "{needle} not in {all:#?}");
    }
}

#[test]
fn a_route_key_may_verify_rate_limit_claims() {
    let text = with_route(
        "rate_limit = [\"users\"]\njwt_secret = \"0123456789abcdef0123456789abcdef\"\n",
        "[rate_limits.users]\nrate = \"10/s\"\nkey = \"jwt:sub\"\n",
    );
    parse_ok(&text);
}
