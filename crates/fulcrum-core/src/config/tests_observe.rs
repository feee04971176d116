//! `[access_log]` fields and formats, route names, `request_id` and `[tracing]`.

use super::tests::{errors, parse_ok, BASE};
use super::*;

#[test]
fn logging_request_ids_and_tracing_parse() {
    let text = format!(
        "{BASE}\n[access_log]\nformat = \"json\"\nfields = [\"ts\", \"status\", \"request_id\"]\n\n\
         [tracing]\notlp = \"http://127.0.0.1:4318\"\nsample = \"0.5%\"\n"
    )
    .replace(
        "address = \"0.0.0.0:8080\"\n",
        "address = \"0.0.0.0:8080\"\nrequest_id = { trust_incoming = true }\n",
    )
    .replace("[[routes]]\n", "[[routes]]\nname = \"main\"\n");
    let config = parse_ok(&text);
    assert_eq!(config.access_log.fields, ["ts", "status", "request_id"]);
    let rid = config.listeners["public"].request_id.clone().unwrap();
    assert_eq!(
        (rid.header.as_str(), rid.trust_incoming),
        ("x-request-id", true)
    );
    let t = config.tracing.unwrap();
    assert_eq!(t.sample, SampleRate(5_000));
    assert_eq!(t.service_name, "fulcrum");
    assert_eq!(config.routes[0].name.as_deref(), Some("main"));
    let combined = parse_ok(&format!("{BASE}[access_log]\nformat = \"combined\"\n"));
    assert_eq!(combined.access_log.format, AccessLogFormat::Combined);
}

#[test]
fn bad_settings_name_their_key() {
    let text = format!(
        "{BASE}\n[[routes]]\nname = \"x\"\npool = \"api\"\n\n[[routes]]\nname = \"x\"\npool = \"api\"\n\n\
         [access_log]\nformat = \"text\"\nfields = [\"ts\", \"nope\", \"ts\"]\n\n\
         [tracing]\notlp = \"https://collector:4318\"\nsample = \"150%\"\n"
    )
    .replace(
        "address = \"0.0.0.0:8080\"\n",
        "address = \"0.0.0.0:8080\"\nrequest_id = { header = \"Content-Length\" }\n",
    );
    let all = errors(&text);
    let has = |needle: &str| all.iter().any(|e| e.contains(needle));
    assert!(
        has("listeners.public.request_id.header: \"Content-Length\" cannot carry a request ID"),
        "{all:#?}"
    );
    assert!(
        has("routes[2].name: \"x\" names an earlier route too"),
        "{all:#?}"
    );
    assert!(
        has("access_log.fields: fields choose JSON fields: needs format = \"json\""),
        "{all:#?}"
    );
    assert!(
        has("access_log.fields[1]: unknown field \"nope\""),
        "{all:#?}"
    );
    assert!(
        has("access_log.fields[2]: \"ts\" is listed twice"),
        "{all:#?}"
    );
    assert!(
        has("tracing.sample: invalid sample \"150%\": must be from 0% to 100%"),
        "{all:#?}"
    );
    assert!(
        has("tracing.otlp: \"https://collector:4318\": expected an http:// URL"),
        "{all:#?}"
    );
    assert_eq!(all.len(), 7, "{all:#?}");
}

#[test]
fn request_ids_only_on_http_listeners() {
    let text = format!(
        "{BASE}\n[listeners.db]\naddress = \"0.0.0.0:5432\"\nprotocol = \"tcp\"\npool = \"api\"\nrequest_id = {{}}\n"
    );
    let all = errors(&text);
    assert_eq!(
        all,
        ["f.toml:14: listeners.db.request_id: only http and https listeners carry request IDs"]
    );
}

#[test]
fn access_lists_take_networks_and_refuse_passthrough_routes() {
    let text = BASE
        .replace(
            "address = \"0.0.0.0:8080\"\n",
            "address = \"0.0.0.0:8080\"\nallow = [\"10.0.0.0/8\", \"::1\"]\ndeny = [\"10.9.0.0/16\"]\n",
        )
        .replace("[[routes]]\n", "[[routes]]\ndeny = [\"192.0.2.1\"]\n");
    let config = parse_ok(&text);
    assert_eq!(config.listeners["public"].allow.len(), 2);
    assert_eq!(config.routes[0].deny, ["192.0.2.1"]);
    let text = format!(
        "{BASE}\n[listeners.tls_in]\naddress = \"0.0.0.0:8443\"\nprotocol = \"tls-passthrough\"\ndeny = [\"10.0.0.300\"]\n\n\
         [[routes]]\nlistener = \"tls_in\"\nsni = \"a.test\"\nallow = [\"10.0.0.0/8\"]\npool = \"api\"\n"
    );
    let all = errors(&text);
    let has = |needle: &str| all.iter().any(|e| e.contains(needle));
    assert!(has("listeners.tls_in.deny[0]:"), "{all:#?}");
    assert!(
        has("routes[1].allow: a tls-passthrough route cannot refuse clients"),
        "{all:#?}"
    );
    assert_eq!(all.len(), 2, "{all:#?}");
    let udp = format!(
        "{BASE}\n[listeners.dns]\naddress = \"0.0.0.0:53\"\nprotocol = \"udp\"\npool = \"api\"\nallow = [\"10.0.0.0/8\"]\n"
    );
    let all = errors(&udp);
    assert_eq!(all.len(), 1, "{all:#?}");
    assert!(
        all[0].contains("listeners.dns.allow: udp listeners do not take allow or deny yet"),
        "{all:#?}"
    );
}

#[test]
fn connections_per_client_need_a_connection_listener() {
    let text = BASE.replace(
        "address = \"0.0.0.0:8080\"\n",
        "address = \"0.0.0.0:8080\"\nmax_connections_per_client = 0\n",
    );
    assert_eq!(
        errors(&text),
        ["f.toml:3: listeners.public.max_connections_per_client: must be at least 1"]
    );
    let ok = BASE.replace(
        "address = \"0.0.0.0:8080\"\n",
        "address = \"0.0.0.0:8080\"\nmax_connections_per_client = 64\n",
    );
    assert_eq!(
        parse_ok(&ok).listeners["public"].max_connections_per_client,
        Some(64)
    );
}

#[test]
fn jwt_required_needs_a_key() {
    let text = BASE.replace("[[routes]]\n", "[[routes]]\njwt_required = true\n");
    assert_eq!(
        errors(&text),
        ["f.toml:5: routes[0].jwt_required: needs jwt_secret or jwt_public_key to verify the token with"]
    );
    let ok = BASE.replace(
        "[[routes]]\n",
        "[[routes]]\njwt_required = true\njwt_secret = \"a-secret-of-at-least-thirty-two-bytes\"\n",
    );
    assert!(parse_ok(&ok).routes[0].jwt_required);
}
