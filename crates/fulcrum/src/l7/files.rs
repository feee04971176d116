//! Static files: a `static` route's answer from disk. Every look at the disk
//! (stat, open, the directory's index, a listing) runs on the blocking pool, never
//! on a worker; the body goes out with `sendfile` on plain connections, and in
//! 64 KiB reads (also on the blocking pool) through TLS and HTTP/2.
//!
//! Nothing outside `root` is ever sent: the path is the normalized one, each of
//! its segments is decoded and refused if it could climb or hold a separator, and
//! the file's real path (symbolic links resolved) must lie under the real root
//! unless `follow_symlinks` is set.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use bytes::Bytes;
use fulcrum_core::shape::encoding::{self, Coding};
use fulcrum_core::shape::files::{self as rules, Ranged};
use fulcrum_core::shape::path::split_query;

use crate::http::{ProxyError, Request};
use crate::state::StaticFiles;

/// A body read from a file.
#[derive(Debug)]
pub struct FileBody {
    /// The open file.
    pub file: File,
    /// First byte sent.
    pub offset: u64,
    /// Bytes sent.
    pub len: u64,
}

/// A static route's answer.
#[derive(Debug)]
pub struct FileAnswer {
    /// Status.
    pub status: u16,
    /// Fields, `content-length` among them.
    pub fields: Vec<(&'static str, String)>,
    /// Fields the route's `response_headers` add.
    pub extra: Vec<(Box<str>, String)>,
    /// A small body made here (a listing, a redirect's text), or nothing.
    pub bytes: Bytes,
    /// The file's bytes to send, when there are any (not for HEAD or 304).
    pub file: Option<FileBody>,
}

/// What a path named under the root.
enum Found {
    File(File, std::fs::Metadata, PathBuf),
    /// A directory asked for without its trailing `/`.
    Slash,
    /// A directory without its index: its entries when listing is on.
    Dir(Option<Vec<(String, bool)>>),
    Missing,
}

fn under_root(files: &StaticFiles, path: &Path) -> Option<PathBuf> {
    let real = std::fs::canonicalize(path).ok()?;
    (files.follow_symlinks || real.starts_with(&files.root)).then_some(real)
}

/// Looks `rel` up (blocking).
fn lookup(files: &StaticFiles, rel: &str) -> Found {
    let Some(real) = under_root(files, &files.root.join(rel)) else {
        return Found::Missing;
    };
    let Ok(meta) = std::fs::metadata(&real) else {
        return Found::Missing;
    };
    if meta.is_dir() {
        if !rel.is_empty() && !rel.ends_with('/') {
            return Found::Slash;
        }
        let index = real.join(&files.index);
        if let Some(index) = under_root(files, &index) {
            if let (Ok(file), Ok(meta)) = (File::open(&index), std::fs::metadata(&index)) {
                if meta.is_file() {
                    return Found::File(file, meta, index);
                }
            }
        }
        if !files.list {
            return Found::Dir(None);
        }
        let mut entries: Vec<(String, bool)> = std::fs::read_dir(&real)
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .filter_map(|e| {
                        let name = e.file_name().into_string().ok()?;
                        let dir = e.file_type().ok()?.is_dir();
                        (!name.starts_with('.')).then_some((name, dir))
                    })
                    .collect()
            })
            .unwrap_or_default();
        entries.sort();
        return Found::Dir(Some(entries));
    }
    if !meta.is_file() {
        return Found::Missing;
    }
    match File::open(&real) {
        Ok(file) => Found::File(file, meta, real),
        Err(_) => Found::Missing,
    }
}

/// A precompressed sibling (`name.br`, `name.gz`) the client takes (blocking).
fn sibling(files: &StaticFiles, path: &Path, coding: Coding) -> Option<(File, std::fs::Metadata)> {
    let ext = match coding {
        Coding::Br => "br",
        Coding::Gzip => "gz",
        Coding::Zstd => "zst",
    };
    let mut name = path.as_os_str().to_owned();
    name.push(".");
    name.push(ext);
    let real = under_root(files, Path::new(&name))?;
    let meta = std::fs::metadata(&real).ok()?;
    meta.is_file().then_some(())?;
    Some((File::open(&real).ok()?, meta))
}

fn field<'r>(req: &Request<'r>, name: &[u8]) -> Option<&'r [u8]> {
    req.fields()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn small(status: u16, fields: Vec<(&'static str, String)>, body: impl Into<Bytes>) -> FileAnswer {
    let bytes: Bytes = body.into();
    let mut fields = fields;
    fields.push(("content-length", bytes.len().to_string()));
    FileAnswer {
        status,
        fields,
        extra: Vec::new(),
        bytes,
        file: None,
    }
}

/// Answers `req` (its normalized, rewritten `target`) from `files`.
pub async fn serve(
    files: &std::sync::Arc<StaticFiles>,
    req: &Request<'_>,
    target: &str,
) -> Result<FileAnswer, ProxyError> {
    let head = req.is_head();
    if !matches!(req.method, "GET" | "HEAD") {
        let allow = vec![
            ("allow", "GET, HEAD".to_owned()),
            ("content-type", "text/plain".into()),
        ];
        return Ok(small(405, allow, &b"Method Not Allowed\n"[..]));
    }
    let (path, query) = split_query(target);
    let Ok(rel) = rules::relative_path(path) else {
        return Ok(small(
            404,
            vec![("content-type", "text/plain".into())],
            &b"Not Found\n"[..],
        ));
    };
    let accept: Vec<&[u8]> = req
        .fields()
        .filter(|(n, _)| n.eq_ignore_ascii_case(b"accept-encoding"))
        .map(|(_, v)| v)
        .collect();
    let coding = encoding::choose(accept.iter().copied(), &[Coding::Br, Coding::Gzip]);
    let ranged = field(req, b"range").is_some();
    let looked = {
        let files = files.clone();
        tokio::task::spawn_blocking(move || {
            let mut found = lookup(&files, &rel);
            if matches!(found, Found::Missing) {
                if let Some(fb) = &files.fallback {
                    if let f @ Found::File(..) = lookup(&files, fb) {
                        found = f;
                    }
                }
            }
            // A precompressed sibling, for a whole-body request only.
            let pre = match (&found, coding) {
                (Found::File(_, _, real), Some(c)) if !ranged => {
                    sibling(&files, real, c).map(|s| (c, s))
                }
                _ => None,
            };
            (found, pre)
        })
        .await
    };
    let (found, pre) = looked.map_err(|e| ProxyError::BadResponse(format!("file lookup: {e}")))?;
    let text = || vec![("content-type", "text/plain".to_owned())];
    let (file, meta, real) = match found {
        Found::Missing => return Ok(small(404, text(), &b"Not Found\n"[..])),
        Found::Dir(None) => return Ok(small(403, text(), &b"Forbidden\n"[..])),
        Found::Slash => {
            let location = format!("{path}/{query}");
            return Ok(small(301, vec![("location", location)], Bytes::new()));
        }
        Found::Dir(Some(entries)) => {
            let title = html_escape(&format!("Index of {path}"));
            let mut page = format!("<!doctype html><title>{title}</title><h1>{title}</h1><ul>");
            for (name, dir) in entries {
                let slash = if dir { "/" } else { "" };
                let href: String = name
                    .bytes()
                    .map(|b| {
                        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                            (b as char).to_string()
                        } else {
                            format!("%{b:02X}")
                        }
                    })
                    .collect();
                page.push_str(&format!(
                    "<li><a href=\"{href}{slash}\">{}{slash}</a></li>",
                    html_escape(&name)
                ));
            }
            page.push_str("</ul>\n");
            let html = vec![("content-type", "text/html; charset=utf-8".to_owned())];
            return Ok(small(200, html, page));
        }
        Found::File(file, meta, real) => (file, meta, real),
    };
    let name = real
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    let (file, size, encoded) = match pre {
        Some((c, (f, m))) => (f, m.len(), Some(c)),
        None => (file, meta.len(), None),
    };
    let mut etag = rules::etag(mtime, size);
    if let Some(c) = encoded {
        // Another representation, another tag.
        etag.insert_str(etag.len() - 1, &format!("-{}", c.token()));
    }
    let last_modified = rules::http_date(mtime);
    let mut fields = vec![
        ("content-type", rules::content_type(name).to_owned()),
        ("etag", etag.clone()),
        ("last-modified", last_modified.clone()),
        ("accept-ranges", "bytes".to_owned()),
    ];
    if let Some(c) = encoded {
        fields.push(("content-encoding", c.token().to_owned()));
        fields.push(("vary", "Accept-Encoding".to_owned()));
    }
    let not_modified = match field(req, b"if-none-match") {
        Some(inm) => rules::none_match(inm, &etag),
        None => field(req, b"if-modified-since")
            .is_some_and(|ims| ims.trim_ascii() == last_modified.as_bytes()),
    };
    if not_modified {
        return Ok(FileAnswer {
            status: 304,
            fields,
            extra: Vec::new(),
            bytes: Bytes::new(),
            file: None,
        });
    }
    // If-Range: a range only while the client's copy is the current one.
    let range_ok = field(req, b"if-range").is_none_or(|v| {
        v.trim_ascii() == etag.as_bytes() || v.trim_ascii() == last_modified.as_bytes()
    });
    let (status, offset, len) = match field(req, b"range").filter(|_| range_ok && encoded.is_none())
    {
        None => (200, 0, size),
        Some(r) => match rules::range(r, size) {
            Ranged::Whole => (200, 0, size),
            Ranged::Part(a, b) => {
                fields.push(("content-range", format!("bytes {a}-{b}/{size}")));
                (206, a, b - a + 1)
            }
            Ranged::Unsatisfiable => {
                fields.retain(|(n, _)| *n != "content-type");
                fields.push(("content-range", format!("bytes */{size}")));
                fields.push(("content-type", "text/plain".to_owned()));
                return Ok(small(416, fields, &b"Range Not Satisfiable\n"[..]));
            }
        },
    };
    fields.push(("content-length", len.to_string()));
    Ok(FileAnswer {
        status,
        fields,
        extra: Vec::new(),
        bytes: Bytes::new(),
        file: (!head && len > 0).then_some(FileBody { file, offset, len }),
    })
}

/// Reads up to `max` bytes of `body` at its offset (blocking pool), advancing it.
pub async fn read_chunk(body: &mut FileBody, max: usize) -> std::io::Result<Bytes> {
    let file = body.file.try_clone()?;
    let (offset, want) = (body.offset, body.len.min(max as u64) as usize);
    let chunk = tokio::task::spawn_blocking(move || {
        use std::os::unix::fs::FileExt;
        let mut buf = vec![0u8; want];
        let mut got = 0;
        while got < want {
            match file.read_at(&mut buf[got..], offset + got as u64)? {
                0 => break,
                n => got += n,
            }
        }
        buf.truncate(got);
        Ok::<_, std::io::Error>(buf)
    })
    .await
    .map_err(std::io::Error::other)??;
    if chunk.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "file shrank while sent",
        ));
    }
    body.offset += chunk.len() as u64;
    body.len -= chunk.len() as u64;
    Ok(Bytes::from(chunk))
}
