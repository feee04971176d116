//! Static files: a `static` route's answer from disk. Every look at the disk
//! (stat, open, the directory's index, a listing) runs on the blocking pool, never
//! on a worker, and its result is kept for a second in the worker's cache, with
//! the open file (and, up to 64 KiB, its bytes), as nginx's `open_file_cache`
//! does. Bodies go out from memory when small, else with `sendfile` on plain
//! connections, and in 64 KiB reads (on the blocking pool) through TLS and HTTP/2.
//!
//! Nothing outside `root` is ever sent: the path is the normalized one, each of
//! its segments is decoded and refused if it could climb or hold a separator, and
//! the file's real path (symbolic links resolved) must lie under the real root
//! unless `follow_symlinks` is set.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use bytes::Bytes;
use fulcrum_core::shape::encoding::{self, Coding};
use fulcrum_core::shape::files::{self as rules, Ranged};
use fulcrum_core::shape::path::split_query;

use crate::http::{ProxyError, Request};
use crate::state::StaticFiles;

/// A body read from a file.
#[derive(Debug)]
pub struct FileBody {
    /// The open file (shared with the worker's cache).
    pub file: Arc<File>,
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
    /// A body held in memory (a small file, a listing, an error's text), or nothing.
    pub bytes: Bytes,
    /// The file's bytes to send from disk, when there are any (not for HEAD or 304).
    pub file: Option<FileBody>,
}

/// Files up to this size are kept in memory with their cache entry: one write
/// sends head and body.
const SMALL: u64 = 64 * 1024;
/// How long a cache entry is trusted before the disk is asked again (nginx's
/// `open_file_cache_valid`, shorter): a changed file shows within a second.
const VALID: Duration = Duration::from_secs(1);
/// Entries a worker keeps; past it the cache starts over.
const ENTRIES: usize = 4096;

/// One representation of a file: the file itself or a precompressed sibling.
#[derive(Clone, Debug)]
struct Rep {
    file: Arc<File>,
    size: u64,
    small: Option<Bytes>,
}

/// A file found, with what answering for it needs.
#[derive(Debug)]
struct Info {
    plain: Rep,
    mtime: u64,
    name: String,
    br: Option<Rep>,
    gz: Option<Rep>,
}

/// What a path named under the root.
#[derive(Debug)]
enum Found {
    File(Info),
    /// A directory asked for without its trailing `/`.
    Slash,
    /// A directory without its index: its entries when listing is on.
    Dir(Option<Vec<(String, bool)>>),
    Missing,
}

/// A worker's cached lookup.
struct Entry {
    files: Arc<StaticFiles>,
    at: Instant,
    found: Rc<Found>,
}

thread_local! {
    /// Each worker's open-file cache (a worker is one thread): a hot file is
    /// served with no system call but the write.
    static CACHE: RefCell<HashMap<(usize, String), Entry>> = RefCell::new(HashMap::new());
}

fn under_root(files: &StaticFiles, path: &Path) -> Option<PathBuf> {
    let real = std::fs::canonicalize(path).ok()?;
    (files.follow_symlinks || real.starts_with(&files.root)).then_some(real)
}

/// Opens `real` (a regular file under the root), reading it whole when small.
fn rep(real: &Path) -> Option<Rep> {
    let file = File::open(real).ok()?;
    let meta = file.metadata().ok()?;
    if !meta.is_file() {
        return None;
    }
    let size = meta.len();
    let small = (size <= SMALL).then(|| std::fs::read(real).ok()).flatten();
    // A file that changed size between the stat and the read is read again next time.
    let small = small.filter(|b| b.len() as u64 == size).map(Bytes::from);
    Some(Rep {
        file: Arc::new(file),
        size,
        small,
    })
}

/// A precompressed sibling (`name.br`, `name.gz`), when there is one under the root.
fn sibling(files: &StaticFiles, real: &Path, ext: &str) -> Option<Rep> {
    let mut name = real.as_os_str().to_owned();
    name.push(".");
    name.push(ext);
    rep(&under_root(files, Path::new(&name))?)
}

fn info(files: &StaticFiles, real: &Path) -> Option<Info> {
    let plain = rep(real)?;
    let mtime = plain
        .file
        .metadata()
        .ok()?
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    Some(Info {
        plain,
        mtime,
        name: real.file_name()?.to_str()?.to_owned(),
        br: sibling(files, real, "br"),
        gz: sibling(files, real, "gz"),
    })
}

/// Looks `rel` up (blocking).
fn lookup(files: &StaticFiles, rel: &str) -> Found {
    let Some(real) = under_root(files, &files.root.join(rel)) else {
        return Found::Missing;
    };
    let Ok(meta) = std::fs::metadata(&real) else {
        return Found::Missing;
    };
    if !meta.is_dir() {
        return info(files, &real).map_or(Found::Missing, Found::File);
    }
    if !rel.is_empty() && !rel.ends_with('/') {
        return Found::Slash;
    }
    if let Some(index) = under_root(files, &real.join(&files.index)) {
        if let Some(found) = info(files, &index) {
            return Found::File(found);
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
    Found::Dir(Some(entries))
}

/// `rel` under `files`: from the worker's cache while fresh, else looked up on the
/// blocking pool (with the fallback for a missing file).
async fn find(files: &Arc<StaticFiles>, rel: String) -> Result<Rc<Found>, ProxyError> {
    let key = (Arc::as_ptr(files) as usize, rel);
    let cached = CACHE.with(|c| {
        let c = c.borrow();
        let e = c.get(&key)?;
        (Arc::ptr_eq(&e.files, files) && e.at.elapsed() < VALID).then(|| e.found.clone())
    });
    if let Some(found) = cached {
        return Ok(found);
    }
    let looked = {
        let (files, rel) = (files.clone(), key.1.clone());
        tokio::task::spawn_blocking(move || {
            let found = lookup(&files, &rel);
            match (&found, &files.fallback) {
                (Found::Missing, Some(fb)) => match lookup(&files, fb) {
                    f @ Found::File(_) => f,
                    _ => found,
                },
                _ => found,
            }
        })
        .await
    };
    let found = Rc::new(looked.map_err(|e| ProxyError::BadResponse(format!("file lookup: {e}")))?);
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.len() >= ENTRIES {
            c.clear();
        }
        c.insert(
            key,
            Entry {
                files: files.clone(),
                at: Instant::now(),
                found: found.clone(),
            },
        );
    });
    Ok(found)
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

fn listing(path: &str, entries: &[(String, bool)]) -> FileAnswer {
    let title = html_escape(&format!("Index of {path}"));
    let mut page = format!("<!doctype html><title>{title}</title><h1>{title}</h1><ul>");
    for (name, dir) in entries {
        let slash = if *dir { "/" } else { "" };
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
            html_escape(name)
        ));
    }
    page.push_str("</ul>\n");
    let html = vec![("content-type", "text/html; charset=utf-8".to_owned())];
    small(200, html, page)
}

/// Answers `req` (its normalized, rewritten `target`) from `files`.
pub async fn serve(
    files: &Arc<StaticFiles>,
    req: &Request<'_>,
    target: &str,
) -> Result<FileAnswer, ProxyError> {
    let mut answer = answer(files, req, target).await?;
    if req.is_head() {
        // The fields, the length among them, without the body.
        answer.bytes = Bytes::new();
        answer.file = None;
    }
    Ok(answer)
}

async fn answer(
    files: &Arc<StaticFiles>,
    req: &Request<'_>,
    target: &str,
) -> Result<FileAnswer, ProxyError> {
    let text = || vec![("content-type", "text/plain".to_owned())];
    if !matches!(req.method, "GET" | "HEAD") {
        let mut allow = text();
        allow.push(("allow", "GET, HEAD".to_owned()));
        return Ok(small(405, allow, &b"Method Not Allowed\n"[..]));
    }
    let (path, query) = split_query(target);
    let Ok(rel) = rules::relative_path(path) else {
        return Ok(small(404, text(), &b"Not Found\n"[..]));
    };
    let found = find(files, rel).await?;
    let info = match &*found {
        Found::Missing => return Ok(small(404, text(), &b"Not Found\n"[..])),
        Found::Dir(None) => return Ok(small(403, text(), &b"Forbidden\n"[..])),
        Found::Slash => {
            let location = format!("{path}/{query}");
            return Ok(small(301, vec![("location", location)], Bytes::new()));
        }
        Found::Dir(Some(entries)) => return Ok(listing(path, entries)),
        Found::File(info) => info,
    };
    let ranged = field(req, b"range").is_some();
    // A precompressed sibling, for a whole-body request that takes its coding.
    let offered: Vec<Coding> = [(Coding::Br, &info.br), (Coding::Gzip, &info.gz)]
        .into_iter()
        .filter(|(_, r)| r.is_some())
        .map(|(c, _)| c)
        .collect();
    let accept = req
        .fields()
        .filter(|(n, _)| n.eq_ignore_ascii_case(b"accept-encoding"))
        .map(|(_, v)| v);
    let coding = (!ranged && !offered.is_empty())
        .then(|| encoding::choose(accept, &offered))
        .flatten();
    let (rep, encoded) = match coding {
        Some(Coding::Br) => (info.br.as_ref().unwrap_or(&info.plain), coding),
        Some(Coding::Gzip) => (info.gz.as_ref().unwrap_or(&info.plain), coding),
        _ => (&info.plain, None),
    };
    let size = rep.size;
    let mut etag = rules::etag(info.mtime, size);
    if let Some(c) = encoded {
        // Another representation, another tag.
        etag.insert_str(etag.len() - 1, &format!("-{}", c.token()));
    }
    let last_modified = rules::http_date(info.mtime);
    let mut fields = vec![
        ("content-type", rules::content_type(&info.name).to_owned()),
        ("etag", etag.clone()),
        ("last-modified", last_modified.clone()),
        ("accept-ranges", "bytes".to_owned()),
    ];
    if let Some(c) = encoded {
        fields.push(("content-encoding", c.token().to_owned()));
    }
    if !offered.is_empty() {
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
    let (bytes, file) = match &rep.small {
        Some(b) => {
            let (a, z) = (offset as usize, (offset + len) as usize);
            (b.slice(a.min(b.len())..z.min(b.len())), None)
        }
        None => (
            Bytes::new(),
            (len > 0).then(|| FileBody {
                file: rep.file.clone(),
                offset,
                len,
            }),
        ),
    };
    Ok(FileAnswer {
        status,
        fields,
        extra: Vec::new(),
        bytes,
        file,
    })
}

/// Reads up to `max` bytes of `body` at its offset (blocking pool), advancing it.
pub async fn read_chunk(body: &mut FileBody, max: usize) -> std::io::Result<Bytes> {
    let file = body.file.clone();
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
