//! Syntax of the addresses and host names a config may hold. Nothing is resolved:
//! a name is only checked to be one DNS could answer for.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

/// A socket address to bind, `ip:port` (port 0 allowed).
pub(crate) fn bind(address: &str) -> Result<SocketAddr, String> {
    address.parse().map_err(|_| {
        format!("invalid address {address:?}: expected ip:port, such as 0.0.0.0:8080 or [::]:8080")
    })
}

/// A backend address, `host:port` where host is an IPv4 address, an IPv6 address
/// in brackets or a DNS name, and the port is not 0.
pub(crate) fn backend(address: &str) -> Result<(), String> {
    backend_parts(address).map_err(|why| format!("invalid address {address:?}: {why}"))
}

fn backend_parts(address: &str) -> Result<(), &'static str> {
    if address.contains("://") {
        return Err("expected host:port, without a scheme");
    }
    let (host, port) = if let Some(rest) = address.strip_prefix('[') {
        let (ip, port) = rest
            .split_once(']')
            .ok_or("missing ']' after the IPv6 address")?;
        ip.parse::<Ipv6Addr>().map_err(|_| "invalid IPv6 address")?;
        let port = port.strip_prefix(':').ok_or("expected host:port")?;
        (None, port)
    } else {
        let (host, port) = address.rsplit_once(':').ok_or("expected host:port")?;
        if host.contains(':') {
            return Err("an IPv6 address needs brackets, as in [::1]:8080");
        }
        (Some(host), port)
    };
    match port.parse::<u16>() {
        Ok(0) => return Err("port 0 is not allowed"),
        Ok(_) => {}
        Err(_) => return Err("the port must be a number from 1 to 65535"),
    }
    match host {
        Some(host) if host.parse::<Ipv4Addr>().is_err() => dns_name(host),
        _ => Ok(()),
    }
}

/// A route's `host`: a name, an IP address, or a suffix wildcard `*.example.com`.
pub(crate) fn route_host(host: &str) -> Result<(), String> {
    route_host_parts(host).map_err(|why| format!("invalid host {host:?}: {why}"))
}

fn route_host_parts(host: &str) -> Result<(), &'static str> {
    if host.contains("://") {
        return Err("expected a host name, without a scheme");
    }
    if host.chars().any(char::is_whitespace) {
        return Err("a host name has no spaces");
    }
    if host.contains('/') {
        return Err("expected a host name, without a path");
    }
    if let Some(ip) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return ip
            .parse::<Ipv6Addr>()
            .map(drop)
            .map_err(|_| "invalid IPv6 address");
    }
    if host.contains(':') {
        return Err("expected a host name, without a port");
    }
    let name = host.strip_prefix("*.").unwrap_or(host);
    if name.contains('*') {
        return Err("a wildcard is only allowed as a leading \"*.\", as in *.example.com");
    }
    if name.parse::<Ipv4Addr>().is_ok() {
        return Ok(());
    }
    dns_name(name)
}

/// A syntactically valid DNS name: dot-separated labels of 1 to 63 letters, digits,
/// `-` or `_` (service names in container networks use it), at most 253 bytes.
pub(crate) fn dns_name(name: &str) -> Result<(), &'static str> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() {
        return Err("the host is empty");
    }
    if name.len() > 253 {
        return Err("a host name has at most 253 characters");
    }
    if name.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err("invalid IPv4 address");
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err("a host name has no empty labels (\"..\" or a leading \".\")");
        }
        if label.len() > 63 {
            return Err("a host name label has at most 63 characters");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err("a host name has only letters, digits, '-', '_' and '.'");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("a host name label neither starts nor ends with '-'");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_addresses() {
        for good in [
            "127.0.0.1:80",
            "[::1]:8080",
            "api.internal:9000",
            "localhost:1",
            "my_service:80",
            "example.com.:443",
        ] {
            assert_eq!(backend(good), Ok(()), "{good}");
        }
        let bad = [
            ("", "expected host:port"),
            ("127.0.0.1", "expected host:port"),
            ("127.0.0.1:0", "port 0 is not allowed"),
            (
                "127.0.0.1:99999",
                "the port must be a number from 1 to 65535",
            ),
            ("host:", "the port must be a number from 1 to 65535"),
            (":80", "the host is empty"),
            ("::1:80", "an IPv6 address needs brackets, as in [::1]:8080"),
            ("[::1:80", "missing ']' after the IPv6 address"),
            ("[zz]:80", "invalid IPv6 address"),
            ("[::1]80", "expected host:port"),
            ("http://a:80", "expected host:port, without a scheme"),
            ("1.2.3.999:80", "invalid IPv4 address"),
            (
                "a..b:80",
                "a host name has no empty labels (\"..\" or a leading \".\")",
            ),
            (
                "-a.b:80",
                "a host name label neither starts nor ends with '-'",
            ),
            (
                "a b:80",
                "a host name has only letters, digits, '-', '_' and '.'",
            ),
        ];
        for (address, why) in bad {
            assert_eq!(
                backend(address),
                Err(format!("invalid address {address:?}: {why}"))
            );
        }
        let long = format!("{}.com:80", "a".repeat(64));
        assert!(backend(&long).is_err());
        let too_long = format!("{}com:80", "abcdefghi.".repeat(26));
        assert!(backend(&too_long).is_err());
    }

    #[test]
    fn bind_addresses() {
        assert!(bind("0.0.0.0:0").is_ok());
        assert!(bind("[::]:8080").is_ok());
        assert!(bind("localhost:8080").is_err());
        assert!(bind("8080").is_err());
    }

    #[test]
    fn route_hosts() {
        for good in [
            "example.com",
            "*.example.com",
            "API.Example.com",
            "10.0.0.1",
            "[::1]",
        ] {
            assert_eq!(route_host(good), Ok(()), "{good}");
        }
        for bad in [
            "https://example.com",
            "example.com:8080",
            "exa mple.com",
            "example.com/api",
            "*example.com",
            "a.*.com",
            "*",
            "",
            "[::1",
        ] {
            assert!(route_host(bad).is_err(), "{bad:?}");
        }
    }
}
