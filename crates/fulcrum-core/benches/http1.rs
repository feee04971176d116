//! Supports the decision to run HTTP/1.1 on our own sans-I/O codec over httparse rather
//! than hyper (DESIGN.md, "The HTTP path: measured, not assumed"): parsing a browser
//! request head, deciding its framing, and rewriting it into one buffer should cost
//! a small fraction of the ~13 µs of proxy CPU per request the probe measured, and the
//! chunked decoder should run near memory speed, so the codec never becomes the reason
//! to reach for hyper.
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use fulcrum_core::http1::{
    parse_request, parse_response, write_chunk, write_last_chunk, write_request_head,
    ChunkedDecoder, Decoded, Forwarded,
};

/// What a browser sends for a page: 11 fields, about 700 bytes.
const BROWSER_GET: &[u8] = b"GET /products/42?ref=home&utm_source=newsletter HTTP/1.1\r\n\
Host: shop.example.com\r\n\
Connection: keep-alive\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36\r\n\
Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Accept-Language: en-GB,en;q=0.9,fr;q=0.8\r\n\
Cache-Control: max-age=0\r\n\
Referer: https://shop.example.com/\r\n\
Cookie: session=7b0c4f2e9a1d4c3b8e6f5a4d3c2b1a09; theme=dark; consent=1\r\n\
Upgrade-Insecure-Requests: 1\r\n\
X-Forwarded-For: 198.51.100.7\r\n\
\r\n";

const SMALL_RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\n\
Date: Mon, 01 Jan 2024 00:00:00 GMT\r\n\
Content-Type: application/json\r\n\
Content-Length: 27\r\n\
Cache-Control: no-store\r\n\
Connection: keep-alive\r\n\
\r\n\
{\"id\":42,\"name\":\"kettle\"}\n";

const FWD: Forwarded<'static> = Forwarded {
    original_host: None,
    keep_chain: true,
    client_ip: "203.0.113.9",
    proto: "https",
    via_version: "1.1",
};

fn heads(c: &mut Criterion) {
    let mut g = c.benchmark_group("http1_head");
    g.throughput(Throughput::Elements(1));
    g.bench_function("parse_request", |b| {
        b.iter(|| parse_request(black_box(BROWSER_GET), 64 * 1024))
    });
    let mut out = Vec::with_capacity(2048);
    g.bench_function("parse_request+write_request_head", |b| {
        b.iter(|| {
            let buf = black_box(BROWSER_GET);
            if let Ok(Some(h)) = parse_request(buf, 64 * 1024) {
                out.clear();
                let host = h.host.map_or(&b""[..], |s| s.get(buf));
                write_request_head(
                    &mut out,
                    h.method.get(buf),
                    h.target.get(buf),
                    host,
                    h.fields(buf),
                    h.body,
                    &FWD,
                );
            }
            out.len()
        })
    });
    g.bench_function("parse_response", |b| {
        b.iter(|| parse_response(black_box(SMALL_RESPONSE), 64 * 1024, false))
    });
    g.finish();
}

/// Decodes a whole chunked body held in one buffer, passing each data piece to `data`;
/// returns the body's length.
fn decode(mut input: &[u8], mut data: impl FnMut(&[u8])) -> usize {
    let mut dec = ChunkedDecoder::new();
    let mut body = 0;
    while let Ok((used, ev)) = dec.decode(input) {
        match ev {
            Decoded::Data { start, len } => {
                data(input.get(start..start + len).unwrap_or_default());
                body += len;
            }
            Decoded::Done { .. } | Decoded::NeedMore => break,
        }
        input = input.get(used..).unwrap_or_default();
    }
    body
}

fn chunked(c: &mut Criterion) {
    let data: Vec<u8> = (0..64 * 1024).map(|i| (i * 31 % 251) as u8).collect();
    let mut wire = Vec::new();
    for chunk in data.chunks(4096) {
        write_chunk(&mut wire, chunk);
    }
    write_last_chunk(&mut wire, b"");
    let mut g = c.benchmark_group("http1_chunked");
    g.throughput(Throughput::Bytes(data.len() as u64));
    assert_eq!(
        decode(&wire, |_| ()),
        data.len(),
        "the bench decodes the whole body"
    );
    // Framing only: the decoder hands back offsets and never reads the data bytes.
    g.bench_function("decode_64KiB_in_4KiB_chunks", |b| {
        b.iter(|| decode(black_box(&wire), |_| ()))
    });
    // What the proxy does with a chunked body it forwards chunked: decode, re-encode.
    let mut out = Vec::with_capacity(wire.len());
    g.bench_function("decode+reencode_64KiB_in_4KiB_chunks", |b| {
        b.iter(|| {
            out.clear();
            decode(black_box(&wire), |d| write_chunk(&mut out, d));
            write_last_chunk(&mut out, b"");
            out.len()
        })
    });
    g.bench_function("encode_64KiB_in_4KiB_chunks", |b| {
        let mut out = Vec::with_capacity(wire.len());
        b.iter(|| {
            out.clear();
            for chunk in black_box(&data[..]).chunks(4096) {
                write_chunk(&mut out, chunk);
            }
            write_last_chunk(&mut out, b"");
            out.len()
        })
    });
    g.finish();
}

criterion_group!(benches, heads, chunked);
criterion_main!(benches);
