//! Static files through the real proxy, over HTTP/1.1 (sendfile) and HTTP/2:
//! types, validators and 304s, ranges (206, 416), precompressed siblings decoded
//! by curl, directories (redirect, 403, listing on request), a single-page app's
//! fallback, and no way out of the root: dot-segments, encoded ones, encoded
//! slashes and symbolic links.

use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;

use crate::support::*;

type C = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Full<Bytes>,
>;

struct Got {
    status: u16,
    h: hyper::HeaderMap,
    body: Bytes,
}

async fn get(c: &C, method: &str, url: &str, headers: &[(&str, &str)]) -> Got {
    let (status, h, body) = fetch(c, method, url, headers).await;
    Got { status, h, body }
}

/// A site: the root holds pages, a big file, a directory without an index, a
/// precompressed page and links in and out; a secret lies beside the root.
fn site(dir: &TempDir) -> (std::path::PathBuf, Vec<u8>) {
    let root = dir.path("site");
    std::fs::create_dir_all(root.join("sub/deeper")).unwrap();
    std::fs::write(root.join("index.html"), "<h1>home</h1>").unwrap();
    std::fs::write(root.join("app.js"), "console.log(1)").unwrap();
    std::fs::write(root.join("sub/a b.txt"), "spaced").unwrap();
    std::fs::write(dir.path("secret.txt"), "top secret").unwrap();
    let big: Vec<u8> = (0..1_048_576u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(root.join("big.bin"), &big).unwrap();
    let page = "<p>compressible page</p>".repeat(200);
    std::fs::write(root.join("page.html"), &page).unwrap();
    // The .gz sibling from Debian's gzip; the .br one from the brotli crate.
    let ok = Command::new("gzip")
        .arg("-k")
        .arg(root.join("page.html"))
        .status()
        .unwrap();
    assert!(ok.success());
    let mut br = Vec::new();
    {
        let mut w = brotli::CompressorWriter::new(&mut br, 4096, 9, 20);
        std::io::Write::write_all(&mut w, page.as_bytes()).unwrap();
    }
    std::fs::write(root.join("page.html.br"), br).unwrap();
    std::os::unix::fs::symlink(dir.path("secret.txt"), root.join("link-out")).unwrap();
    std::os::unix::fs::symlink(root.join("index.html"), root.join("link-in")).unwrap();
    (root, big)
}

fn config(root: &std::path::Path) -> String {
    let root = root.display();
    format!(
        r#"workers = 1

[listeners.public]
address = "127.0.0.1:0"
response_headers = {{ set = {{ "X-Content-Type-Options" = "nosniff" }} }}

[[routes]]
path_prefix = "/files"
strip_prefix = "/files"
static = {{ root = "{root}", list = true }}

[[routes]]
path_prefix = "/app"
strip_prefix = "/app"
static = {{ root = "{root}", fallback = "/index.html" }}

[[routes]]
path_prefix = "/linked"
strip_prefix = "/linked"
static = {{ root = "{root}", follow_symlinks = true }}

[[routes]]
static = {{ root = "{root}" }}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_are_served_with_types_validators_and_ranges() {
    within(async {
        let dir = TempDir::new();
        let (root, big) = site(&dir);
        let f = Fulcrum::start(&config(&root));
        let base = f.url("public");
        for (proto, c) in [("h1", client()), ("h2", h2_client())] {
            let home = get(&c, "GET", &format!("{base}/"), &[]).await;
            assert_eq!(
                (home.status, &home.body[..]),
                (200, &b"<h1>home</h1>"[..]),
                "{proto}"
            );
            assert_eq!(
                home.h["content-type"], "text/html; charset=utf-8",
                "{proto}"
            );
            assert_eq!(home.h["x-content-type-options"], "nosniff", "{proto}");
            let js = get(&c, "GET", &format!("{base}/app.js"), &[]).await;
            assert_eq!(
                js.h["content-type"], "text/javascript; charset=utf-8",
                "{proto}"
            );
            let etag = js.h["etag"].to_str().unwrap().to_owned();
            let modified = js.h["last-modified"].to_str().unwrap().to_owned();
            assert!(modified.ends_with(" GMT"), "{proto}: {modified}");
            let again = get(
                &c,
                "GET",
                &format!("{base}/app.js"),
                &[("if-none-match", &etag)],
            )
            .await;
            assert_eq!((again.status, again.body.len()), (304, 0), "{proto}");
            let again = get(
                &c,
                "GET",
                &format!("{base}/app.js"),
                &[("if-modified-since", &modified)],
            )
            .await;
            assert_eq!(again.status, 304, "{proto}");
            let changed = get(
                &c,
                "GET",
                &format!("{base}/app.js"),
                &[("if-none-match", "\"other\"")],
            )
            .await;
            assert_eq!(changed.status, 200, "{proto}");
            // Ranges.
            let part = get(
                &c,
                "GET",
                &format!("{base}/big.bin"),
                &[("range", "bytes=1000-1999")],
            )
            .await;
            assert_eq!(part.status, 206, "{proto}");
            assert_eq!(
                part.h["content-range"], "bytes 1000-1999/1048576",
                "{proto}"
            );
            assert_eq!(&part.body[..], &big[1000..2000], "{proto}");
            let tail = get(
                &c,
                "GET",
                &format!("{base}/big.bin"),
                &[("range", "bytes=-10")],
            )
            .await;
            assert_eq!(&tail.body[..], &big[big.len() - 10..], "{proto}");
            let none = get(
                &c,
                "GET",
                &format!("{base}/big.bin"),
                &[("range", "bytes=2000000-")],
            )
            .await;
            assert_eq!(none.status, 416, "{proto}");
            assert_eq!(none.h["content-range"], "bytes */1048576", "{proto}");
            let stale = [("range", "bytes=0-9"), ("if-range", "\"old\"")];
            let whole = get(&c, "GET", &format!("{base}/big.bin"), &stale).await;
            assert_eq!(
                (whole.status, whole.body.len()),
                (200, big.len()),
                "{proto}"
            );
            // The whole megabyte (sendfile on the plain HTTP/1.1 connection).
            let all = get(&c, "GET", &format!("{base}/big.bin"), &[]).await;
            assert_eq!(all.h["content-length"], "1048576", "{proto}");
            assert!(all.body == big, "{proto}: the big file differs");
            let head = get(&c, "HEAD", &format!("{base}/big.bin"), &[]).await;
            assert_eq!((head.status, head.body.len()), (200, 0), "{proto}");
            assert_eq!(head.h["content-length"], "1048576", "{proto}");
            let post = get(&c, "POST", &format!("{base}/app.js"), &[]).await;
            assert_eq!(post.status, 405, "{proto}");
            assert_eq!(post.h["allow"], "GET, HEAD", "{proto}");
            // Directories.
            let sub = get(&c, "GET", &format!("{base}/sub?x=1"), &[]).await;
            assert_eq!(
                (sub.status, sub.h["location"].to_str().unwrap()),
                (301, "/sub/?x=1"),
                "{proto}"
            );
            assert_eq!(
                get(&c, "GET", &format!("{base}/sub/"), &[]).await.status,
                403,
                "{proto}"
            );
            let listing = get(&c, "GET", &format!("{base}/files/sub/"), &[]).await;
            let text = String::from_utf8_lossy(&listing.body);
            assert_eq!(listing.status, 200, "{proto}");
            assert!(
                text.contains("href=\"a%20b.txt\"") && text.contains("href=\"deeper/\""),
                "{proto}: {text}"
            );
            let spaced = get(&c, "GET", &format!("{base}/sub/a%20b.txt"), &[]).await;
            assert_eq!(&spaced.body[..], b"spaced", "{proto}");
            // A single-page app's client routes get its index.
            let spa = get(&c, "GET", &format!("{base}/app/orders/42"), &[]).await;
            assert_eq!(
                (spa.status, &spa.body[..]),
                (200, &b"<h1>home</h1>"[..]),
                "{proto}"
            );
            assert_eq!(
                get(&c, "GET", &format!("{base}/missing.txt"), &[])
                    .await
                    .status,
                404,
                "{proto}"
            );
        }
    })
    .await;
}

/// Raw HTTP/1.1, so the target reaches Fulcrum byte for byte; the status line.
async fn raw_status(addr: std::net::SocketAddr, target: &str) -> (u16, String) {
    let req = format!("GET {target} HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n");
    let out =
        tokio::task::spawn_blocking(move || raw(addr, req.as_bytes(), Duration::from_secs(30)))
            .await
            .unwrap();
    let status = out
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_outside_the_root_is_ever_sent() {
    within(async {
        let dir = TempDir::new();
        let (root, _) = site(&dir);
        let f = Fulcrum::start(&config(&root));
        let addr = f.addr("public");
        for (target, status) in [
            ("/../secret.txt", 404),
            ("/%2e%2e/secret.txt", 404),
            ("/sub/../../secret.txt", 404),
            ("/files/..%2fsecret.txt", 400),
            ("/files/%2E%2E%5Csecret.txt", 400),
            ("/link-out", 404),
            ("/app/..", 200),
        ] {
            let (got, out) = raw_status(addr, target).await;
            assert_eq!(got, status, "{target}: {out}");
            assert!(
                !out.contains("top secret"),
                "{target} leaked the secret: {out}"
            );
        }
        // A link inside the root is followed; one out of it only when asked.
        assert_eq!(raw_status(addr, "/link-in").await.0, 200);
        let (got, out) = raw_status(addr, "/linked/link-out").await;
        assert_eq!(got, 200, "{out}");
        assert!(out.ends_with("top secret"), "{out}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn precompressed_siblings_are_served_to_clients_that_take_them() {
    within(async {
        let dir = TempDir::new();
        let (root, _) = site(&dir);
        let page = std::fs::read(root.join("page.html")).unwrap();
        let f = Fulcrum::start(&config(&root));
        let url = format!("{}/page.html", f.url("public"));
        for h2 in [false, true] {
            for (accept, coding) in [
                ("br, gzip", Some("br")),
                ("gzip", Some("gzip")),
                ("identity", None),
            ] {
                let url = url.clone();
                let out = tokio::task::spawn_blocking(move || {
                    let mut cmd = Command::new("curl");
                    cmd.args(["-sS", "--compressed", "-D", "-", "-H"])
                        .arg(format!("Accept-Encoding: {accept}"));
                    if h2 {
                        cmd.arg("--http2-prior-knowledge");
                    }
                    cmd.arg(&url).output().unwrap()
                })
                .await
                .unwrap();
                let text = String::from_utf8_lossy(&out.stdout).into_owned();
                let (head, body) = text.split_once("\r\n\r\n").unwrap();
                let what = format!("h2={h2} {accept}");
                let ce = head.lines().find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-encoding: ")
                        .map(str::to_owned)
                });
                assert_eq!(ce.as_deref(), coding, "{what}: {head}");
                assert_eq!(body.as_bytes(), &page[..], "{what}");
                assert!(
                    head.to_ascii_lowercase()
                        .contains("content-type: text/html"),
                    "{what}"
                );
            }
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_root_is_a_config_error() {
    let dir = TempDir::new();
    let file = dir.path("f.toml");
    std::fs::write(
        &file,
        "[listeners.a]\naddress = \"127.0.0.1:0\"\n\n[[routes]]\nstatic = { root = \"/nonexistent/site\" }\n",
    )
    .unwrap();
    let (code, out) = check(&file);
    assert_ne!(code, 0);
    assert!(
        out.contains("routes[0].static.root: /nonexistent/site:"),
        "{out}"
    );
}

/// A worker keeps what it found for a second: a changed file is served changed
/// soon after, and a deleted one stops being served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_file_is_served_changed_after_the_cache_second() {
    within(async {
        let dir = TempDir::new();
        let (root, _) = site(&dir);
        let f = Fulcrum::start(&config(&root));
        let url = format!("{}/data.txt", f.url("public"));
        std::fs::write(root.join("data.txt"), "one").unwrap();
        let c = client();
        assert_eq!(&get(&c, "GET", &url, &[]).await.body[..], b"one");
        std::fs::write(root.join("data.txt"), "two").unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while &get(&c, "GET", &url, &[]).await.body[..] != b"two" {
            assert!(
                std::time::Instant::now() < deadline,
                "the old file is still served"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        std::fs::remove_file(root.join("data.txt")).unwrap();
        while get(&c, "GET", &url, &[]).await.status != 404 {
            assert!(
                std::time::Instant::now() < deadline,
                "a deleted file is still served"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
}

/// Through TLS there is no sendfile: the file goes out in reads off the worker,
/// over HTTP/1.1 and HTTP/2 alike, whole and in ranges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_go_whole_through_tls_on_both_protocols() {
    use crate::support_tls::{client_config, connect, get_with, Ca};
    within(async {
        let dir = TempDir::new();
        let (root, big) = site(&dir);
        let ca = Ca::new("Test CA");
        let (cert, key) = ca.leaf(&["a.test"], false).write(&dir, "a");
        let f = Fulcrum::start(&format!(
            "workers = 1\n[listeners.secure]\naddress = \"127.0.0.1:0\"\nprotocol = \"https\"\n\
             tls = {{ certificates = [{{ cert = {cert:?}, key = {key:?} }}] }}\n\n\
             [[routes]]\nstatic = {{ root = {:?} }}\n",
            root.display().to_string()
        ));
        let addr = f.addr("secure");
        for alpn in ["http/1.1", "h2"] {
            let s = connect(addr, "a.test", client_config(&[ca.der()], &[alpn], None))
                .await
                .unwrap();
            let (status, body) = get_with(s, "a.test", "/big.bin", &[]).await.unwrap();
            assert_eq!(status, 200, "{alpn}");
            assert!(
                body == big,
                "{alpn}: the file differs ({} bytes)",
                body.len()
            );
        }
        let s = connect(
            addr,
            "a.test",
            client_config(&[ca.der()], &["http/1.1"], None),
        )
        .await
        .unwrap();
        let range = [("range", "bytes=100000-300000")];
        let (status, body) = get_with(s, "a.test", "/big.bin", &range).await.unwrap();
        assert_eq!(status, 206);
        assert!(body[..] == big[100_000..=300_000]);
    })
    .await;
}
