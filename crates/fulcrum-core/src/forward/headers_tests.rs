use super::*;

const FWD: Forwarded<'static> = Forwarded {
    original_host: None,
    keep_chain: true,
    client_ip: "10.0.0.1",
    proto: "https",
    via_version: "2",
};

fn request(fields: &[(&str, &str)], hop: Hop) -> Vec<(String, String)> {
    let pairs: Vec<(&[u8], &[u8])> = fields
        .iter()
        .map(|(n, v)| (n.as_bytes(), v.as_bytes()))
        .collect();
    let mut out = Vec::new();
    request_fields(pairs.iter().copied(), hop, b"example.com", &FWD, |n, v| {
        out.push((
            String::from_utf8_lossy(n).into_owned(),
            String::from_utf8_lossy(&v.to_vec()).into_owned(),
        ))
    });
    out
}

fn get<'a>(out: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    out.iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
}

#[test]
fn te_trailers_crosses_to_http2_only() {
    let fields = [("te", "trailers"), ("content-type", "application/grpc")];
    assert_eq!(get(&request(&fields, Hop::H2), "te"), ["trailers"]);
    assert!(get(&request(&fields, Hop::H1), "te").is_empty());
    // Any other transfer coding is dropped; a list with trailers sends just trailers.
    assert!(get(&request(&[("te", "gzip")], Hop::H2), "te").is_empty());
    assert_eq!(
        get(&request(&[("TE", "gzip;q=0.5, Trailers")], Hop::H2), "te"),
        ["trailers"]
    );
    assert_eq!(
        get(
            &request(&[("te", "trailers"), ("te", "trailers")], Hop::H2),
            "te"
        )
        .len(),
        1
    );
}

#[test]
fn hop_by_hop_and_named_fields_never_cross() {
    let fields = [
        ("connection", "keep-alive, x-secret"),
        ("keep-alive", "5"),
        ("x-secret", "1"),
        ("transfer_encoding", "chunked"),
        ("upgrade", "websocket"),
        ("proxy-connection", "x"),
        ("x-kept", "yes"),
    ];
    for hop in [Hop::H1, Hop::H2] {
        let out = request(&fields, hop);
        let names: Vec<&str> = out.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "x-kept",
                "x-forwarded-for",
                "x-forwarded-proto",
                "x-forwarded-host",
                "via"
            ],
            "{hop:?}"
        );
    }
}

#[test]
fn forwarding_fields_are_appended_or_replaced() {
    let fields = [
        ("X-Forwarded-For", "1.1.1.1"),
        ("x_forwarded_for", "2.2.2.2"),
        ("x-forwarded-proto", "gopher"),
        ("X_Forwarded_Host", "evil"),
        ("via", "1.1 edge"),
        ("host", "example.com"),
        ("expect", "100-continue"),
    ];
    let out = request(&fields, Hop::H2);
    assert_eq!(get(&out, "x-forwarded-for"), ["1.1.1.1, 2.2.2.2, 10.0.0.1"]);
    assert_eq!(get(&out, "x-forwarded-proto"), ["https"]);
    assert_eq!(get(&out, "x-forwarded-host"), ["example.com"]);
    assert_eq!(get(&out, "via"), ["1.1 edge, 2 fulcrum"]);
    assert!(get(&out, "host").is_empty() && get(&out, "expect").is_empty());
}

#[test]
fn content_length_is_kept_for_http2_only() {
    let fields = [("content-length", "5")];
    assert_eq!(get(&request(&fields, Hop::H2), "content-length"), ["5"]);
    assert!(get(&request(&fields, Hop::H1), "content-length").is_empty());
}

#[test]
fn response_fields_drop_hop_by_hop() {
    let fields: [(&[u8], &[u8]); 5] = [
        (b"connection", b"close, x-internal"),
        (b"x-internal", b"1"),
        (b"content-length", b"3"),
        (b"te", b"trailers"),
        (b"server", b"nginx"),
    ];
    let mut h1 = Vec::new();
    response_fields(fields.iter().copied(), Hop::H1, |n, _| h1.push(n));
    assert_eq!(h1, [b"server".as_slice()]);
    let mut h2 = Vec::new();
    response_fields(fields.iter().copied(), Hop::H2, |n, _| h2.push(n));
    assert_eq!(h2, [b"content-length".as_slice(), b"server"]);
}

#[test]
fn value_joins_earlier_hops() {
    let v = Value {
        earlier: &[b"a", b"", b"b"],
        last: &[b"c", b"d"],
    };
    assert_eq!(v.to_vec(), b"a, b, cd");
    assert_eq!(Value::plain(&[b"x"]).to_vec(), b"x");
}

#[test]
fn an_untrusted_peers_chain_is_replaced() {
    let fields = [
        ("X-Forwarded-For", "1.1.1.1"),
        ("x_forwarded_for", "2.2.2.2"),
        ("Forwarded", "for=1.1.1.1"),
        ("accept", "*/*"),
    ];
    let pairs: Vec<(&[u8], &[u8])> = fields
        .iter()
        .map(|(n, v)| (n.as_bytes(), v.as_bytes()))
        .collect();
    let fwd = Forwarded {
        original_host: None,
        keep_chain: false,
        ..FWD
    };
    let mut out = Vec::new();
    request_fields(
        pairs.iter().copied(),
        Hop::H1,
        b"example.com",
        &fwd,
        |n, v| {
            out.push((
                String::from_utf8_lossy(n).into_owned(),
                String::from_utf8_lossy(&v.to_vec()).into_owned(),
            ))
        },
    );
    assert_eq!(get(&out, "x-forwarded-for"), ["10.0.0.1"]);
    assert!(get(&out, "forwarded").is_empty(), "{out:?}");
    // Kept from a trusted proxy.
    let kept = request(&fields, Hop::H1);
    assert_eq!(get(&kept, "forwarded"), ["for=1.1.1.1"]);
}
