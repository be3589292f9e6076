//! Integration-test crates are compiled without `#[cfg(test)]` on their helpers, so the
//! test-only allowances of clippy.toml do not reach them: each test file opens with
//! `#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]`.
//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output};

/// The real sample data in `../shared/data`, or `None` (with a notice on stderr that libtest
/// does not capture) when it is absent on a user's machine. CI sets
/// `MEDVQA_REQUIRE_SHARED_DATA=1`, which turns a missing folder into a failure.
pub fn shared_data() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data");
    if dir.is_dir() {
        return Some(dir);
    }
    if std::env::var_os("MEDVQA_REQUIRE_SHARED_DATA").is_some() {
        panic!("../shared/data is missing and MEDVQA_REQUIRE_SHARED_DATA is set");
    }
    let _ = writeln!(
        std::io::stderr(),
        "NOTICE: ../shared/data not found; SKIPPING a test that needs the real sample data"
    );
    None
}

/// The medvqa binary built for this test run.
pub fn medvqa() -> Command {
    Command::new(env!("CARGO_BIN_EXE_medvqa"))
}

/// Runs the binary with `args` and returns its output.
pub fn run(args: &[&str]) -> Output {
    medvqa().args(args).output().expect("medvqa runs")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Every `.rs` file under `dir`, recursively, in sorted order: the source scans of
/// `tests/layers.rs` and `tests/simd.rs`.
pub fn rust_sources(dir: &std::path::Path) -> Vec<PathBuf> {
    fn visit(dir: &std::path::Path, files: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                visit(&p, files);
            } else if p.extension().is_some_and(|x| x == "rs") {
                files.push(p);
            }
        }
    }
    let mut files = Vec::new();
    visit(dir, &mut files);
    files.sort();
    files
}
