//! Discovery keys: a pool's `dns` and `discover`, the top-level `resolvers`.

use super::tests::{errors, parse_ok, BASE};
use super::*;

#[test]
fn discovery_keys_parse() {
    let text = format!(
        "resolvers = [\"127.0.0.1:5353\", \"10.0.0.2\"]\n{BASE}\n\
         [pools.srv]\ndiscover = {{ srv = \"_http._tcp.api.service.consul\" }}\n\
         dns = {{ min_ttl = \"2s\", max_ttl = \"1m\", empty_grace = \"10s\", family = \"ipv4\" }}\n\n\
         [pools.file]\nbackends = [\"api.internal:8080\"]\ndiscover = {{ file = \"backends.json\" }}\n"
    );
    let c = parse_ok(&text);
    assert_eq!(c.resolvers, ["127.0.0.1:5353", "10.0.0.2"]);
    let srv = &c.pools["srv"];
    assert!(srv.backends.is_empty());
    assert_eq!(
        srv.discover.as_ref().and_then(|d| d.srv.as_deref()),
        Some("_http._tcp.api.service.consul")
    );
    assert_eq!(srv.dns.min_ttl, Duration::from_secs(2));
    assert_eq!(srv.dns.max_ttl, Duration::from_secs(60));
    assert_eq!(srv.dns.empty_grace, Duration::from_secs(10));
    assert_eq!(srv.dns.family, FamilyConfig::Ipv4);
    let file = &c.pools["file"];
    assert_eq!(file.dns, DnsConfig::default());
    assert_eq!(file.dns.empty_grace, Duration::from_secs(30));
    assert_eq!(
        file.discover.as_ref().and_then(|d| d.file.as_deref()),
        Some("backends.json")
    );
}

#[test]
fn discovery_mistakes_are_named() {
    let text = format!(
        "resolvers = [\"dns.local:53\"]\n{BASE}\n\
         [pools.both]\ndiscover = {{ srv = \"_a._tcp.x\", file = \"f.json\" }}\n\n\
         [pools.neither]\ndiscover = {{}}\n\n\
         [pools.bad]\ndiscover = {{ srv = \"bad name!\" }}\ndns = {{ min_ttl = \"0s\" }}\n\n\
         [pools.order]\nbackends = [\"a:1\"]\ndns = {{ min_ttl = \"10s\", max_ttl = \"5s\" }}\n"
    );
    let e = errors(&text);
    let want = [
        "f.toml:1: resolvers[0]: invalid resolver \"dns.local:53\": expected an IP address or ip:port, such as 127.0.0.1:53",
        "f.toml:12: pools.both.discover: set srv or file, not both",
        "f.toml:15: pools.neither.discover: needs srv or file",
        "f.toml:18: pools.bad.discover.srv: invalid name \"bad name!\"",
        "f.toml:19: pools.bad.dns.min_ttl: must be greater than 0",
        "f.toml:23: pools.order.dns.max_ttl: must be at least min_ttl",
    ];
    assert_eq!(e.len(), want.len(), "{e:#?}");
    for (got, want) in e.iter().zip(want) {
        assert!(got.starts_with(want), "{got}\n  wanted {want}");
    }
}
