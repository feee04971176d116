use std::time::Duration;

use super::*;
use crate::access_log::TlsInfo;

fn entry() -> Entry<'static> {
    Entry {
        listener: "public",
        client: "192.0.2.7:51000".parse().ok(),
        proto: "HTTP/1.1",
        method: "GET",
        host: "example.com",
        path: "/a?b=\"c\"",
        status: 200,
        route: Some(2),
        pool: "web",
        backend: "10.0.0.1:80".parse().ok(),
        attempts: 2,
        bytes_in: 0,
        bytes_out: 1234,
        duration: Duration::from_micros(12_345),
        upstream: Some(Duration::from_micros(1_002)),
        connect: Some(Duration::from_micros(50)),
        user_agent: Some(b"curl/8.0 \xff"),
        referer: None,
        request_id: "abc",
        ..Entry::default()
    }
}

const NOW: Duration = Duration::from_micros(1_765_079_371_000_042);

fn line(format: &Format, e: &Entry<'_>) -> String {
    let mut out = Vec::new();
    write(&mut out, format, e, NOW, &mut Clock::default());
    String::from_utf8(out).expect("a line is UTF-8")
}

#[test]
fn json_lines_parse_and_hold_every_field() {
    let text = line(&Format::Json(ALL.to_vec()), &entry());
    assert!(text.ends_with("}\n"));
    let v: serde_json::Value = serde_json::from_str(&text).expect(&text);
    assert_eq!(v["ts"], 1_765_079_371.000_042);
    assert_eq!(v["path"], "/a?b=\"c\"");
    assert_eq!(v["route"], 2);
    assert_eq!(v["retries"], 1);
    assert_eq!(v["duration_ms"], 12.345);
    assert_eq!(v["upstream_ms"], 1.002);
    assert_eq!(v["upstream_connect_ms"], 0.05);
    assert_eq!(v["user_agent"], "curl/8.0 \u{fffd}");
    assert_eq!(v["referer"], serde_json::Value::Null);
    assert_eq!(v["request_id"], "abc");
    assert_eq!(v["trace_id"], serde_json::Value::Null);
    assert_eq!(v["client"], "192.0.2.7:51000");
    // Fields without a value are left out.
    assert_eq!(v.as_object().map(|o| o.len()), Some(LOG_FIELDS.len() - 6));
    assert!(!text.contains("null"), "{text}");
}

#[test]
fn json_escapes_controls_and_names_routes() {
    let e = Entry {
        path: "/\u{1}\n\\",
        route_name: Some("api"),
        tls: Some(TlsInfo {
            version: "TLSv1.3",
            cipher: "TLS13_AES_128_GCM_SHA256",
            sni: Some("a.test"),
        }),
        ..entry()
    };
    let text = line(&Format::Json(ALL.to_vec()), &e);
    assert!(
        text.contains(r#""path":"/\u0001\n\\""#) || text.contains(r#""path":"/\u0001\u000a\\""#),
        "{text}"
    );
    let v: serde_json::Value = serde_json::from_str(&text).expect(&text);
    assert_eq!(v["path"], "/\u{1}\n\\");
    assert_eq!(v["route"], "api");
    assert_eq!(v["tls_version"], "TLSv1.3");
    assert_eq!(v["sni"], "a.test");
}

#[test]
fn chosen_fields_only_in_their_order() {
    let format = Format::Json(vec![Field::Status, Field::Path]);
    assert_eq!(
        line(&format, &entry()),
        "{\"status\":200,\"path\":\"/a?b=\\\"c\\\"\"}\n"
    );
}

#[test]
fn combined_is_what_log_parsers_read() {
    let text = line(&Format::Combined, &entry());
    assert_eq!(
        text,
        "192.0.2.7 - - [07/Dec/2025:03:49:31 +0000] \"GET /a?b=\\x22c\\x22 HTTP/1.1\" 200 1234 \"-\" \"curl/8.0 \\xFF\"\n"
    );
}

#[test]
fn text_keeps_one_line_per_request() {
    let e = Entry {
        error: Some("backend said no\nreally".into()),
        ..entry()
    };
    let text = line(&Format::Text, &e);
    assert_eq!(text.matches('\n').count(), 1, "{text}");
    assert!(text.starts_with("1765079371.000 public 192.0.2.7:51000 \"GET /a?b=\\x22c\\x22 HTTP/1.1\" example.com 200 route=2 pool=web"), "{text}");
    assert!(
        text.contains("error=backend_said_no\\x0Areally request_id=abc"),
        "{text}"
    );
}

#[test]
fn dates_follow_the_calendar() {
    assert_eq!(&clf_date(0), b"01/Jan/1970:00:00:00 +0000");
    // 2024-02-29 23:59:59 UTC: a leap day.
    assert_eq!(&clf_date(1_709_251_199), b"29/Feb/2024:23:59:59 +0000");
}

#[test]
fn every_configured_name_is_a_field() {
    for (i, name) in LOG_FIELDS.iter().enumerate() {
        assert_eq!(Field::named(name).map(|f| f as usize), Some(i), "{name}");
    }
}

#[test]
fn addresses_read_as_display_writes_them() {
    for a in [
        "192.0.2.7:51000",
        "0.0.0.0:0",
        "255.255.255.255:65535",
        "[::1]:8080",
        "[2001:db8::7]:443",
    ] {
        let a: std::net::SocketAddr = a.parse().expect("an address");
        let mut out = Vec::new();
        addr(&mut out, a);
        assert_eq!(String::from_utf8(out).expect("UTF-8"), a.to_string());
    }
}
