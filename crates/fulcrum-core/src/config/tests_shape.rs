//! Shaping keys: header rules, rewrites, redirects (routes without a pool), a
//! pool's host, per-route limits and `encoded_slashes`.

use super::tests::{errors, parse_ok, BASE};
use super::*;

#[test]
fn shaping_keys_parse() {
    let text = format!(
        "{BASE}\n[[routes]]\nhost = \"www.example.com\"\nredirect = {{ to = \"https://example.com{{path}}{{query}}\", status = 301 }}\n\n\
         [[routes]]\npath = \"/moved\"\nredirect = {{ to = \"/new\" }}\n"
    )
    .replace(
        "[[routes]]\npool = \"api\"\n",
        "[[routes]]\npool = \"api\"\nstrip_prefix = \"/api\"\nrewrite = { regex = '^/v1/(.*)$', to = \"/$1\" }\n\
         request_headers = { set = { \"X-Client\" = \"{client_ip}\" }, remove = [\"X-Debug\"] }\n\
         max_body_bytes = 5\nupstream_timeout = \"2s\"\nper_try_timeout = \"1s\"\n",
    )
    .replace(
        "address = \"0.0.0.0:8080\"\n",
        "address = \"0.0.0.0:8080\"\nencoded_slashes = \"keep\"\nresponse_headers = { add = { \"X-A\" = \"b\" } }\n",
    )
    .replace("[pools.api]\n", "[pools.api]\nhost = \"api.internal:8080\"\n");
    let c = parse_ok(&text);
    let r = &c.routes[0];
    assert_eq!(r.strip_prefix.as_deref(), Some("/api"));
    assert_eq!(r.max_body_bytes, Some(5));
    assert_eq!(
        r.per_try_timeout.map(|d| d.get()),
        Some(std::time::Duration::from_secs(1))
    );
    assert_eq!(c.routes[1].redirect.as_ref().map(|r| r.status), Some(301));
    assert_eq!(c.routes[2].redirect.as_ref().map(|r| r.status), Some(302));
    assert!(c.routes[2].pool.is_empty());
    assert_eq!(c.pools["api"].host.as_deref(), Some("api.internal:8080"));
    let l = &c.listeners["public"];
    assert_eq!(l.encoded_slashes, EncodedSlashesConfig::Keep);
}

#[test]
fn a_route_needs_a_pool_or_a_redirect_not_both() {
    let none = format!("{BASE}\n[[routes]]\npath = \"/x\"\n");
    assert_eq!(
        errors(&none),
        ["f.toml:10: routes[1].pool: missing required key"]
    );
    let both = format!(
        "{BASE}\n[[routes]]\npool = \"api\"\nredirect = {{ to = \"/y\" }}\nstrip_prefix = \"/x\"\n"
    );
    assert_eq!(
        errors(&both),
        [
            "f.toml:11: routes[1].pool: a route with redirect answers itself: leave pool out",
            "f.toml:13: routes[1].strip_prefix: a route with redirect sends nothing to a backend",
        ]
    );
}

#[test]
fn bad_shaping_values_are_refused_on_their_key() {
    let text = BASE
        .replace(
            "[[routes]]\npool = \"api\"\n",
            "[[routes]]\npool = \"api\"\nstrip_prefix = \"api\"\nupstream_timeout = \"0s\"\n\
             response_headers = { remove = [\"Transfer-Encoding\"] }\n",
        )
        .replace(
            "address = \"0.0.0.0:8080\"\n",
            "address = \"0.0.0.0:8080\"\nrequest_headers = { set = { \"X-Forwarded-For\" = \"1.2.3.4\" } }\n",
        );
    let got = errors(&text);
    assert!(got.iter().any(|e| e.contains("listeners.public.request_headers.set.X-Forwarded-For: X-Forwarded-For cannot be changed: Fulcrum sets the forwarding fields itself")), "{got:?}");
    assert!(
        got.iter()
            .any(|e| e.contains("routes[0].strip_prefix: must start with \"/\"")),
        "{got:?}"
    );
    assert!(
        got.iter()
            .any(|e| e.contains("routes[0].upstream_timeout: must be more than 0s")),
        "{got:?}"
    );
    assert!(
        got.iter().any(|e| e
            .contains("routes[0].response_headers.remove[0]: Transfer-Encoding cannot be changed")),
        "{got:?}"
    );
}

#[test]
fn compression_keys_are_checked() {
    let text = BASE.replace(
        "[[routes]]\npool = \"api\"\n",
        "[[routes]]\npool = \"api\"\ncompress = [\"zstd\", \"gzip\", \"deflate\", \"gzip\"]\n\
         compress_level = { gzip = 12, br = 11, lz4 = 1 }\ncompress_types = [\"json\"]\n",
    );
    let got = errors(&text);
    for needle in [
        "routes[0].compress[2]: unknown coding \"deflate\" (codings: zstd, br, gzip)",
        "routes[0].compress[3]: \"gzip\" is listed twice",
        "routes[0].compress_level.gzip: gzip levels are 1 to 9",
        "routes[0].compress_level.lz4: unknown coding \"lz4\"",
        "routes[0].compress_types[0]: a media type",
    ] {
        assert!(got.iter().any(|e| e.contains(needle)), "{needle}: {got:?}");
    }
    assert!(
        !got.iter().any(|e| e.contains("compress_level.br")),
        "{got:?}"
    );
}
