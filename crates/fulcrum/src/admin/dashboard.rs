//! The live dashboard at `/`: one static page compiled into the binary
//! (`dashboard.html`: plain JS, inline SVG charts, no external assets) that polls the
//! JSON API and calls drain and undrain through it.
//!
//! The page is served without the token: it holds no data, and every API call it
//! makes needs the token as any other client's does. The page takes the token from
//! the URL fragment (`/#token=...`), which browsers never send to the server, so it
//! stays out of logs and `Referer` headers. A strict Content-Security-Policy (the
//! inline script and style allowed by hash, requests to this origin only, no
//! framing) keeps the page from loading or running anything else.

use std::sync::OnceLock;

use bytes::Bytes;
use http::{header, HeaderValue, StatusCode};
use sha2::{Digest, Sha256};

use super::{reply, Reply};

const PAGE: &str = include_str!("dashboard.html");

/// `GET /`.
pub(super) fn page() -> Reply {
    let mut r = reply(
        StatusCode::OK,
        "text/html; charset=utf-8",
        Bytes::from_static(PAGE.as_bytes()),
    );
    let h = r.headers_mut();
    static CSP: OnceLock<HeaderValue> = OnceLock::new();
    let csp = CSP.get_or_init(|| {
        HeaderValue::from_str(&policy(PAGE))
            .unwrap_or(HeaderValue::from_static("default-src 'none'"))
    });
    h.insert(header::CONTENT_SECURITY_POLICY, csp.clone());
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// The Content-Security-Policy for `page`: its one inline script and style by hash.
fn policy(page: &str) -> String {
    format!(
        "default-src 'none'; script-src '{}'; style-src '{}'; connect-src 'self'; \
         img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        hash(inline(page, "script")),
        hash(inline(page, "style")),
    )
}

/// The text between `<tag>` and `</tag>` (empty if absent).
fn inline<'a>(page: &'a str, tag: &str) -> &'a str {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    page.find(&open)
        .map(|start| &page[start + open.len()..])
        .and_then(|rest| rest.find(&close).map(|end| &rest[..end]))
        .unwrap_or("")
}

/// `sha256-BASE64` as CSP wants it.
fn hash(text: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let digest = Sha256::digest(text.as_bytes());
    let mut out = String::from("sha256-");
    for chunk in digest.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csp_hashes_match_known_values() {
        // `echo -n 'alert(1)' | openssl dgst -sha256 -binary | base64`
        assert_eq!(
            hash("alert(1)"),
            "sha256-bhHHL3z2vDgxUt0W3dWQOrprscmda2Y5pLsLg4GF+pI="
        );
        assert_eq!(
            hash(""),
            "sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
        );
    }

    #[test]
    fn page_is_self_contained() {
        assert_eq!(PAGE.matches("<script").count(), 1, "one inline script");
        assert_eq!(PAGE.matches("<style").count(), 1, "one inline style");
        assert!(!PAGE.contains(" src="), "no external script or image");
        assert!(
            !PAGE.contains("@import") && !PAGE.contains("url("),
            "no external CSS"
        );
        // The only absolute URL is the SVG namespace, which is a name, not a request.
        let urls = PAGE.matches("http://").count() + PAGE.matches("https://").count();
        assert_eq!(urls, PAGE.matches("http://www.w3.org/2000/svg").count());
        assert!(!inline(PAGE, "script").is_empty());
        assert!(!inline(PAGE, "style").is_empty());
        let p = policy(PAGE);
        assert!(p.contains(&hash(inline(PAGE, "script"))), "{p}");
        assert!(HeaderValue::from_str(&p).is_ok());
    }
}
