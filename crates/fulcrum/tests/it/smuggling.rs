//! Request smuggling, on raw sockets: every ambiguous framing is answered 400, the
//! connection is closed, and the backend never gets a complete request it could read
//! differently. Valid framing (chunked, pipelined) passes intact.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;

use crate::support::*;
use crate::support_wire::{exchange, Wire};

/// A backend answering its request's method and target; bodies are kept in `last_body`.
async fn echo_target() -> Backend {
    Backend::with(
        "a",
        false,
        Arc::new(|_name: &str, req: hyper::Request<Bytes>| {
            let text = format!("{} {} {}", req.method(), req.uri(), req.body().len());
            Response::new(Full::new(Bytes::from(text)))
        }),
    )
    .await
}

/// Sends `req` on a new connection to a fresh Fulcrum; asserts a 400, the connection
/// closed, and nothing complete at the backend.
async fn refused(req: &str) {
    within(async {
        let b = echo_target().await;
        let f = Fulcrum::start(&one_pool("round_robin", &[quoted(&b)], ""));
        let (out, end) = exchange(f.addr("public"), req.as_bytes()).await;
        assert!(
            out.starts_with("HTTP/1.1 400 "),
            "request {req:?}\ngot {out:?}"
        );
        assert_eq!(
            out.matches("HTTP/1.1").count(),
            1,
            "more than one response: {out:?}"
        );
        assert!(end.is_closed(), "connection left open after {req:?}");
        let line = f.wait_status(400).await;
        assert!(line["error"].is_string(), "{line}");
        assert_eq!(
            b.requests(),
            0,
            "the backend got a complete request from {req:?}"
        );
    })
    .await;
}

macro_rules! refused {
    ($($name:ident: $req:expr;)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            refused($req).await;
        }
    )*};
}

refused! {
    content_length_and_transfer_encoding:
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n";
    transfer_encoding_and_content_length:
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n";
    two_different_content_lengths:
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!";
    content_length_list_that_disagrees:
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\nhello!";
    content_length_with_a_sign:
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nhello";
    transfer_encoding_chunked_then_identity:
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    transfer_encoding_not_chunked:
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\nhello";
    transfer_encoding_in_http_1_0:
        "POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    bad_chunk_size:
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n";
    chunk_data_not_followed_by_crlf:
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n";
    chunk_size_overflow:
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1000000000000000000000005\r\nhello\r\n0\r\n\r\n";
    whitespace_before_colon:
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length : 5\r\n\r\nhello";
    obs_fold:
        "GET / HTTP/1.1\r\nHost: a\r\nX-Folded: one\r\n two\r\n\r\n";
    missing_host_in_http_1_1:
        "GET / HTTP/1.1\r\nX-No-Host: 1\r\n\r\n";
    two_host_fields:
        "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n";
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_chunked_body_arrives_intact() {
    within(async {
        let b = echo_target().await;
        let f = Fulcrum::start(&one_pool("round_robin", &[quoted(&b)], ""));
        let mut w = Wire::connect(f.addr("public")).await;
        w.send(b"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n1\r\n \r\nA\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n").await;
        let r = w.response(false).await;
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.body, b"POST /c 16");
        assert_eq!(&b.last_body()[..], b"hello 0123456789");
        assert_eq!(b.requests(), 1);
        // The connection is still good for another request.
        w.send(b"GET /after HTTP/1.1\r\nHost: a\r\n\r\n").await;
        assert_eq!(w.response(false).await.body, b"GET /after 0");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_get_responses_in_order() {
    within(async {
        let b = echo_target().await;
        let f = Fulcrum::start(&one_pool("round_robin", &[quoted(&b)], ""));
        let mut w = Wire::connect(f.addr("public")).await;
        // All in one write: a GET, a POST whose body ends right before the next
        // request, a chunked POST, and a GET that closes.
        w.send(
            b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n\
              POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello\
              POST /3 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n\
              GET /4 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        )
        .await;
        let mut bodies = Vec::new();
        for _ in 0..4 {
            let r = w.response(false).await;
            assert_eq!(r.status, 200, "{r:?}");
            bodies.push(String::from_utf8(r.body).unwrap());
        }
        assert_eq!(bodies, ["GET /1 0", "POST /2 5", "POST /3 3", "GET /4 0"]);
        let (rest, end) = w.read_to_end(std::time::Duration::from_secs(20)).await;
        assert_eq!(rest, "", "bytes after the last response");
        assert!(end.is_closed(), "Connection: close was not honoured");
        assert_eq!(b.requests(), 4);
    })
    .await;
}
