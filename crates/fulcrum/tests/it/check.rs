//! `fulcrum check FILE`: exit 0 and a summary, or every error as `FILE:LINE: KEY: REASON`
//! and exit 1; then the files the config names are read as `run` would
//! (`--keys-only` skips that).

use std::path::PathBuf;

use crate::support::*;
use crate::support_tls::Ca;

fn repo_file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../config")
        .join(name)
}

/// Runs `fulcrum check` off the runtime, so `within` can time it out.
async fn run_check(path: PathBuf) -> (i32, String) {
    run_check_with(&[], path).await
}

/// `run_check` with flags.
async fn run_check_with(flags: &'static [&'static str], path: PathBuf) -> (i32, String) {
    tokio::task::spawn_blocking(move || check_with(flags, &path))
        .await
        .unwrap()
}

/// Writes `text` to a temp file and checks it.
async fn check_text(text: &str) -> (TempDir, PathBuf, i32, String) {
    let dir = TempDir::new();
    let path = dir.path("fulcrum.toml");
    std::fs::write(&path, text).unwrap();
    let (code, out) = run_check(path.clone()).await;
    (dir, path, code, out)
}

/// Asserts `out` has exactly the lines `FILE:LINE: KEY: REASON` for `expected`
/// (line, key, a word of the reason).
fn assert_errors(path: &std::path::Path, out: &str, expected: &[(usize, &str, &str)]) {
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines.len(),
        expected.len(),
        "wanted {} errors, got:\n{out}",
        expected.len()
    );
    for (line, key, word) in expected {
        let prefix = format!("{}:{line}: {key}: ", path.display());
        let found = lines.iter().find(|l| l.starts_with(&prefix));
        let found = found.unwrap_or_else(|| panic!("no line starting {prefix:?} in:\n{out}"));
        assert!(
            found.to_lowercase().contains(word),
            "{found:?} does not mention {word:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_file_passes_with_a_summary() {
    within(async {
    let text = "workers = 1\n\n[listeners.public]\naddress = \"127.0.0.1:0\"\n\n[[routes]]\npool = \"p\"\n\n[pools.p]\nbackends = [\"127.0.0.1:9001\", { address = \"127.0.0.1:9002\", weight = 2 }]\n";
    let (_dir, path, code, out) = check_text(text).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.starts_with(&format!("{}: ok", path.display())), "{out}");
    })
    .await;
}
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_and_demo_configs_pass() {
    within(async {
        // The reference names certificate files that exist on no machine: its keys
        // are what it documents.
        let (code, out) = run_check_with(&["--keys-only"], repo_file("reference.toml")).await;
        assert_eq!(code, 0, "reference.toml: {out}");
        assert!(out.contains("ok") && out.contains("(keys only)"), "{out}");
        let (code, out) = run_check(repo_file("reference.toml")).await;
        assert_eq!(code, 1, "reference.toml: {out}");
        let (code, out) = run_check(repo_file("demo.toml")).await;
        assert_eq!(code, 0, "demo.toml: {out}");
        assert!(out.contains("ok") && !out.contains("keys only"), "{out}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_files_a_config_names_are_read() {
    within(async {
        let dir = TempDir::new();
        let (cert, key) = Ca::new("Check CA")
            .leaf(&["check.test"], false)
            .write(&dir, "leaf");
        let (other, _) = Ca::new("Other CA")
            .leaf(&["other.test"], false)
            .write(&dir, "other");
        let config = |cert: &str, key: &str| {
            format!(
                "workers = 1\n[listeners.secure]\naddress = \"127.0.0.1:0\"\nprotocol = \"https\"\n\
                 tls = {{ certificates = [{{ cert = {cert:?}, key = {key:?} }}] }}\n\
                 [[routes]]\npool = \"p\"\n[pools.p]\nbackends = [\"127.0.0.1:9001\"]\n"
            )
        };
        let path = dir.path("fulcrum.toml");
        std::fs::write(&path, config(&cert, &key)).unwrap();
        let (code, out) = run_check(path.clone()).await;
        assert_eq!(code, 0, "{out}");

        // A missing file: named, with its key, and nothing else printed.
        let missing = dir.path("missing.pem").display().to_string();
        std::fs::write(&path, config(&missing, &key)).unwrap();
        let (code, out) = run_check(path.clone()).await;
        assert_eq!(code, 1, "{out}");
        let prefix = format!(
            "{}: listeners.secure.tls: certificates[0]: {missing}",
            path.display()
        );
        assert!(out.starts_with(&prefix), "{out}");
        assert_eq!(out.lines().count(), 1, "{out}");
        // --keys-only does not read it.
        let (code, out) = run_check_with(&["--keys-only"], path.clone()).await;
        assert_eq!(code, 0, "{out}");

        // A key that does not belong to the certificate.
        std::fs::write(&path, config(&other, &key)).unwrap();
        let (code, out) = run_check(path.clone()).await;
        assert_eq!(code, 1, "{out}");
        assert!(
            out.contains("listeners.secure.tls: certificates[0]:"),
            "{out}"
        );
    })
    .await;
}
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn semantic_errors_are_all_reported_on_their_lines() {
    within(async {
        let text = "\
workers = 1

[listeners.a]
address = \"127.0.0.1:8080\"

[listeners.b]
address = \"127.0.0.1:8080\"

[[routes]]
pool = \"nope\"

[pools.p]
backends = [{ address = \"127.0.0.1:9001\", weight = 0 }]

[pools.e]
backends = []
";
        let (_dir, path, code, out) = check_text(text).await;
        assert_eq!(code, 1, "{out}");
        assert_errors(
            &path,
            &out,
            &[
                (7, "listeners.b.address", "duplicate"),
                (10, "routes[0].pool", "nope"),
                (13, "pools.p.backends[0].weight", "at least 1"),
                (16, "pools.e.backends", "no backends"),
            ],
        );
    })
    .await;
}
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_key_is_reported_on_its_line() {
    within(async {
    let text = "workers = 1\n[listeners.a]\naddress = \"127.0.0.1:0\"\nadress = \"typo\"\n[[routes]]\npool = \"p\"\n[pools.p]\nbackends = [\"127.0.0.1:9001\"]\n";
    let (_dir, path, code, out) = check_text(text).await;
    assert_eq!(code, 1, "{out}");
    assert_errors(&path, &out, &[(4, "listeners.a.adress", "unknown key")]);
    })
    .await;
}
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_duration_is_reported_on_its_line() {
    within(async {
    let text = "workers = 1\n[listeners.a]\naddress = \"127.0.0.1:0\"\n[[routes]]\npool = \"p\"\n[pools.p]\nbackends = [\"127.0.0.1:9001\"]\n\nconnect_timeout = \"5 parsecs\"\n";
    let (_dir, path, code, out) = check_text(text).await;
    assert_eq!(code, 1, "{out}");
    assert_errors(&path, &out, &[(9, "pools.p.connect_timeout", "duration")]);
    })
    .await;
}
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_backend_address_is_reported() {
    within(async {
    let text = "workers = 1\n[listeners.a]\naddress = \"127.0.0.1:0\"\n[[routes]]\npool = \"p\"\n[pools.p]\nbackends = [\n  \"127.0.0.1:9001\",\n  \"127.0.0.1\",\n]\n";
    let (_dir, path, code, out) = check_text(text).await;
    assert_eq!(code, 1, "{out}");
    assert_errors(&path, &out, &[(9, "pools.p.backends[1].address", "host:port")]);
    })
    .await;
}
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_error_is_reported_at_once() {
    within(async {
        let text = "\
workers = 1
bogus = 1

[listeners.a]
address = \"127.0.0.1:8080\"

[listeners.b]
address = \"127.0.0.1:8080\"

[[routes]]
pool = \"nope\"

[pools.p]
backends = [{ address = \"127.0.0.1:9001\", weight = 0 }]
connect_timeout = \"5 parsecs\"

[pools.e]
backends = []
";
        let (_dir, path, code, out) = check_text(text).await;
        assert_eq!(code, 1, "{out}");
        assert_errors(
            &path,
            &out,
            &[
                (2, "bogus", "unknown key"),
                (8, "listeners.b.address", "duplicate"),
                (11, "routes[0].pool", "nope"),
                (14, "pools.p.backends[0].weight", "at least 1"),
                (15, "pools.p.connect_timeout", "duration"),
                (18, "pools.e.backends", "no backends"),
            ],
        );
    })
    .await;
}
