//! Static file decisions, pure: the file a normalized path names under a root
//! (never outside it), its type, its validators (`ETag`, `Last-Modified`), the
//! conditional and range requests it answers. The runtime opens, checks and sends.

/// Why a path names no file under the root.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathRefused {
    /// A segment decodes to something no file name holds (`/`, NUL) or is a
    /// dot-segment: refused rather than guessed at.
    Bad,
}

/// The relative file path a normalized URL path (query excluded) names:
/// percent-decoded segments joined with `/`; `None`-free, so `root.join` of it
/// stays under the root. A trailing `/` is kept (a directory was asked for).
pub fn relative_path(path: &str) -> Result<String, PathRefused> {
    let mut out = String::with_capacity(path.len());
    for (i, seg) in path.trim_start_matches('/').split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        let decoded = decode(seg).ok_or(PathRefused::Bad)?;
        if decoded == "." || decoded == ".." || decoded.contains(['/', '\0', '\\']) {
            return Err(PathRefused::Bad);
        }
        out.push_str(&decoded);
    }
    Ok(out)
}

fn decode(seg: &str) -> Option<String> {
    let b = seg.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%' {
            let hex = |x: u8| (x as char).to_digit(16);
            let hi = b.get(i + 1).copied().and_then(hex)?;
            let lo = b.get(i + 2).copied().and_then(hex)?;
            out.push(u8::try_from(hi * 16 + lo).ok()?);
            i += 3;
        } else {
            out.push(c);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The `Content-Type` of a file, by its extension.
pub fn content_type(name: &str) -> &'static str {
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("html" | "htm") => "text/html; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("json" | "map") => "application/json",
        Some("txt") => "text/plain; charset=utf-8",
        Some("md") => "text/markdown; charset=utf-8",
        Some("csv") => "text/csv; charset=utf-8",
        Some("xml") => "application/xml",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("webp") => "image/webp",
        Some("avif") => "image/avif",
        Some("ico") => "image/x-icon",
        Some("woff") => "font/woff",
        Some("woff2") => "font/woff2",
        Some("ttf") => "font/ttf",
        Some("otf") => "font/otf",
        Some("wasm") => "application/wasm",
        Some("pdf") => "application/pdf",
        Some("mp4") => "video/mp4",
        Some("webm") => "video/webm",
        Some("mp3") => "audio/mpeg",
        Some("ogg") => "audio/ogg",
        Some("zip") => "application/zip",
        Some("gz") => "application/gzip",
        _ => "application/octet-stream",
    }
}

/// A strong `ETag` from a file's modification time and size, as nginx makes it.
pub fn etag(mtime_secs: u64, size: u64) -> String {
    format!("\"{mtime_secs:x}-{size:x}\"")
}

/// An IMF-fixdate (RFC 9110 §5.6.7) for `secs` since the epoch.
pub fn http_date(secs: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil from days (H. Hinnant), for days since 1970-01-01.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{}, {day:02} {} {year} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        MONTHS[(month - 1) as usize],
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Whether `If-None-Match` names `etag` (weak comparison, RFC 9110 §13.1.2), or is `*`.
pub fn none_match(if_none_match: &[u8], etag: &str) -> bool {
    let tag = etag.trim_start_matches("W/");
    if_none_match.split(|&b| b == b',').any(|t| {
        let t = t.trim_ascii();
        t == b"*" || t.strip_prefix(b"W/").unwrap_or(t) == tag.as_bytes()
    })
}

/// What a `Range` header asks of a body of `size` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ranged {
    /// The whole body (no range, an unreadable one, or several: a server may
    /// answer those whole, RFC 9110 §14.2).
    Whole,
    /// `start..=end`.
    Part(u64, u64),
    /// No byte of the body: 416.
    Unsatisfiable,
}

/// Reads a `Range` value for a body of `size` bytes.
pub fn range(value: &[u8], size: u64) -> Ranged {
    let Ok(value) = std::str::from_utf8(value) else {
        return Ranged::Whole;
    };
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return Ranged::Whole;
    };
    if spec.contains(',') {
        return Ranged::Whole;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return Ranged::Whole;
    };
    let (a, b) = (a.trim(), b.trim());
    let num = |s: &str| s.parse::<u64>().ok();
    match (a.is_empty(), b.is_empty()) {
        // The last `n` bytes.
        (true, false) => match num(b) {
            Some(0) => Ranged::Unsatisfiable,
            Some(_) if size == 0 => Ranged::Unsatisfiable,
            Some(n) => Ranged::Part(size.saturating_sub(n), size - 1),
            None => Ranged::Whole,
        },
        (false, _) => {
            let Some(start) = num(a) else {
                return Ranged::Whole;
            };
            let end = if b.is_empty() { Some(u64::MAX) } else { num(b) };
            match end {
                None => Ranged::Whole,
                Some(end) if end < start => Ranged::Whole,
                Some(_) if start >= size => Ranged::Unsatisfiable,
                Some(end) => Ranged::Part(start, end.min(size - 1)),
            }
        }
        (true, true) => Ranged::Whole,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_under_the_root() {
        assert_eq!(relative_path("/a/b.html"), Ok("a/b.html".into()));
        assert_eq!(relative_path("/"), Ok(String::new()));
        assert_eq!(relative_path("/dir/"), Ok("dir/".into()));
        assert_eq!(relative_path("/a%20b/%C3%A9.txt"), Ok("a b/é.txt".into()));
        assert_eq!(relative_path("/a%2Fb"), Err(PathRefused::Bad));
        assert_eq!(relative_path("/a%5Cb"), Err(PathRefused::Bad));
        assert_eq!(relative_path("/a%00"), Err(PathRefused::Bad));
        assert_eq!(relative_path("/%2E%2E/etc"), Err(PathRefused::Bad));
        assert_eq!(relative_path("/a/../b"), Err(PathRefused::Bad));
        assert_eq!(relative_path("/a%zz"), Err(PathRefused::Bad));
        assert_eq!(relative_path("/%ff"), Err(PathRefused::Bad));
    }

    #[test]
    fn types_dates_and_tags() {
        assert_eq!(content_type("index.HTML"), "text/html; charset=utf-8");
        assert_eq!(content_type("app.js"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("noext"), "application/octet-stream");
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(http_date(1_709_251_200), "Fri, 01 Mar 2024 00:00:00 GMT");
        assert_eq!(etag(0x5f, 0x10), "\"5f-10\"");
        assert!(none_match(b"\"x\", W/\"5f-10\"", "\"5f-10\""));
        assert!(none_match(b"*", "\"a\""));
        assert!(!none_match(b"\"5f-11\"", "\"5f-10\""));
    }

    #[test]
    fn ranges() {
        assert_eq!(range(b"bytes=0-99", 1000), Ranged::Part(0, 99));
        assert_eq!(range(b"bytes=900-", 1000), Ranged::Part(900, 999));
        assert_eq!(range(b"bytes=-100", 1000), Ranged::Part(900, 999));
        assert_eq!(range(b"bytes=-2000", 1000), Ranged::Part(0, 999));
        assert_eq!(range(b"bytes=990-2000", 1000), Ranged::Part(990, 999));
        assert_eq!(range(b"bytes=1000-", 1000), Ranged::Unsatisfiable);
        assert_eq!(range(b"bytes=-0", 1000), Ranged::Unsatisfiable);
        assert_eq!(range(b"bytes=0-0", 0), Ranged::Unsatisfiable);
        assert_eq!(range(b"bytes=0-1,5-6", 1000), Ranged::Whole);
        assert_eq!(range(b"bytes=5-1", 1000), Ranged::Whole);
        assert_eq!(range(b"items=0-1", 1000), Ranged::Whole);
        assert_eq!(range(b"bytes=x-1", 1000), Ranged::Whole);
    }
}
