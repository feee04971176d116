//! The config's JSON Schema, read by an independent validator (python-jsonschema):
//! every shipped config passes, and typos and bad values an editor should flag fail.

use std::process::Command;

use crate::support::TempDir;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

fn validate(files: &[String]) -> (bool, String) {
    let out = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/it/schema/validate.py"
        ))
        .arg(format!("{ROOT}/config/fulcrum.schema.json"))
        .args(files)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn shipped_configs_pass_and_mistakes_fail() {
    let mut files = vec![
        format!("{ROOT}/config/reference.toml"),
        format!("{ROOT}/config/demo.toml"),
    ];
    for entry in std::fs::read_dir(format!("{ROOT}/examples")).unwrap() {
        files.push(entry.unwrap().path().display().to_string());
    }
    let (ok, text) = validate(&files);
    assert!(ok, "{text}");
    assert_eq!(text.matches(": valid").count(), files.len(), "{text}");

    let dir = TempDir::new();
    let bad = dir.path("bad.toml");
    std::fs::write(
        &bad,
        "[listeners.a]\naddres = \"x\"\n\n[pools.p]\nbackends = [\"a:1\"]\nconnect_timeout = \"5 parsecs\"\nbalance = \"fastest\"\n",
    )
    .unwrap();
    let (ok, text) = validate(&[bad.display().to_string()]);
    assert!(!ok, "{text}");
    for needle in ["'addres' was unexpected", "connect_timeout", "fastest"] {
        assert!(text.contains(needle), "{needle}: {text}");
    }
}
