//! The command line as packages use it: `--version`, completions a shell accepts,
//! and a manual page `man` renders.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::support::bin;

fn run(args: &[&str]) -> String {
    let out = Command::new(bin()).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn version_names_the_commit_and_build_date() {
    let v = run(&["--version"]);
    let rest = v
        .strip_prefix(&format!("fulcrum {} (commit ", env!("CARGO_PKG_VERSION")))
        .expect(&v);
    let (commit, date) = rest
        .trim_end()
        .trim_end_matches(')')
        .split_once(", built ")
        .expect(&v);
    assert!(
        commit == "unknown" || commit.bytes().all(|b| b.is_ascii_hexdigit()),
        "{v}"
    );
    let parts: Vec<&str> = date.split('-').collect();
    assert_eq!(
        parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
        [4, 2, 2],
        "{v}"
    );
}

#[test]
fn bash_reads_the_completions() {
    let script = run(&["completions", "bash"]);
    assert!(script.contains("upgrade") && script.contains("--keys-only"));
    let mut bash = Command::new("bash")
        .arg("-n")
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    bash.stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    assert!(
        bash.wait().unwrap().success(),
        "bash -n refused the completions"
    );
    for shell in ["zsh", "fish"] {
        assert!(run(&["completions", shell]).contains("upgrade"), "{shell}");
    }
}

#[test]
fn the_manual_page_renders() {
    let roff = run(&["manpage"]);
    assert!(
        roff.starts_with(".ie") || roff.contains(".TH fulcrum 1"),
        "{roff}"
    );
    let mut groff = match Command::new("groff")
        .args(["-man", "-Tutf8"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
    {
        Ok(g) => g,
        // Without groff the roff text itself is checked.
        Err(_) => {
            assert!(roff.contains("SIGUSR1") && roff.contains("upgrade"));
            return;
        }
    };
    groff
        .stdin
        .take()
        .unwrap()
        .write_all(roff.as_bytes())
        .unwrap();
    let out = groff.wait_with_output().unwrap();
    // Bold and underline are overstruck (`X\x08X`): keep the last of each pair.
    let mut page = String::new();
    for c in String::from_utf8_lossy(&out.stdout).chars() {
        if c == '\u{8}' {
            page.pop();
        } else {
            page.push(c);
        }
    }
    for needle in ["NAME", "SYNOPSIS", "SIGUSR1", "upgrade", "completions"] {
        assert!(page.contains(needle), "{needle} missing from:\n{page}");
    }
}
