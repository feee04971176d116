//! Tests of the balancing keys: each only where its algorithm reads it.

use super::tests::{errors, parse_ok, BASE};
use super::{BalanceConfig, LoadConfig};

fn with(pool_keys: &str) -> String {
    format!("{BASE}{pool_keys}\n")
}

#[test]
fn every_algorithm_and_its_keys_parse() {
    let c = parse_ok(&with("balance = \"ring_hash\"\nhash_key = \"cookie:sid\"\nvirtual_nodes = 100\nbalance_factor = 1.25"));
    let p = &c.pools["api"];
    assert_eq!(p.balance, BalanceConfig::RingHash);
    assert_eq!(p.hash_key.as_deref(), Some("cookie:sid"));
    assert_eq!((p.virtual_nodes, p.balance_factor), (100, Some(1.25)));
    let c = parse_ok(&with(
        "balance = \"maglev\"\ntable_size = 65537\nhash_key = \"header:x-user\"",
    ));
    assert_eq!(c.pools["api"].balance, BalanceConfig::Maglev);
    let c = parse_ok(&with("balance = \"power_of_two\"\nload = \"peak_ewma\""));
    assert_eq!(c.pools["api"].load, LoadConfig::PeakEwma);
    for b in ["least_connections", "random"] {
        parse_ok(&with(&format!("balance = \"{b}\"")));
    }
}

#[test]
fn keys_for_another_algorithm_are_refused() {
    assert_eq!(
        errors(&with("hash_key = \"client_ip\"")),
        ["f.toml:9: pools.api.hash_key: only ring_hash and maglev hash a key"]
    );
    assert_eq!(
        errors(&with("balance = \"maglev\"\nbalance_factor = 1.5")),
        ["f.toml:10: pools.api.balance_factor: only ring_hash has bounded loads"]
    );
    assert_eq!(
        errors(&with("load = \"peak_ewma\"")),
        ["f.toml:9: pools.api.load: only power_of_two compares load"]
    );
}

#[test]
fn bad_values_are_refused() {
    let e = errors(&with(
        "balance = \"ring_hash\"\nhash_key = \"jwt\"\nbalance_factor = 0.5\nvirtual_nodes = 0",
    ));
    assert_eq!(e.len(), 3, "{e:#?}");
    assert!(
        e[0].contains("pools.api.hash_key: unknown hash key \"jwt\""),
        "{e:#?}"
    );
    assert!(
        e[1].contains("pools.api.balance_factor: must be above 1.0"),
        "{e:#?}"
    );
    assert!(
        e[2].contains("pools.api.virtual_nodes: must be between 1 and 10000"),
        "{e:#?}"
    );
    let e = errors(&with("balance = \"maglev\"\ntable_size = 65536"));
    assert_eq!(e, ["f.toml:10: pools.api.table_size: must be a prime between 3 and 10000019 (65537 by default)"]);
}

#[test]
fn sticky_parses_with_its_default_ttl() {
    let c = parse_ok(&with(
        "sticky = { cookie = \"srv\", secret = \"0123456789abcdef\" }",
    ));
    let s = c.pools["api"].sticky.as_ref().unwrap();
    assert_eq!(s.cookie, "srv");
    assert_eq!(s.ttl.get(), std::time::Duration::from_secs(3600));
    assert!(!format!("{s:?}").contains("0123456789abcdef"));
    let c = parse_ok(&with(
        "balance = \"least_connections\"\nsticky = { cookie = \"s\", ttl = \"30m\", secret = \"0123456789abcdef\" }",
    ));
    let s = c.pools["api"].sticky.as_ref().unwrap();
    assert_eq!(s.ttl.get(), std::time::Duration::from_secs(1800));
}

#[test]
fn bad_sticky_is_refused() {
    let e = errors(&with(
        "sticky = { cookie = \"a b\", ttl = \"0s\", secret = \"short\" }",
    ));
    assert_eq!(
        e,
        [
            "f.toml:9: pools.api.sticky.cookie: must be a cookie name: letters, digits and !#$%&'*+-.^_`|~",
            "f.toml:9: pools.api.sticky.secret: must be at least 16 bytes",
            "f.toml:9: pools.api.sticky.ttl: must be at least 1s",
        ]
    );
    let e = errors(&with(
        "balance = \"maglev\"\nsticky = { cookie = \"s\", secret = \"0123456789abcdef\" }",
    ));
    assert_eq!(
        e,
        ["f.toml:10: pools.api.sticky: sticky cannot be used with ring_hash or maglev: consistent hashing already pins keys"]
    );
    let e = errors(&with(
        "sticky = { cookie = \"s\", secret = \"0123456789abcdef\", path = \"/\" }",
    ));
    assert_eq!(e.len(), 1, "{e:#?}");
    assert!(
        e[0].contains("pools.api.sticky.path: unknown key"),
        "{e:#?}"
    );
}
