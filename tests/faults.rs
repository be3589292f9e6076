#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Faults a shared cluster brings: a full file system under a running eval or perturb.
//!
//! The test mounts a small tmpfs, so it needs root (as on the CI machines); elsewhere it
//! prints a notice and skips.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::medvqa;

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(at.to_path_buf()))
    }

    fn resize(&self, size: &str) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(ok.success());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Runs `medvqa eval` on the fixture, failing the test if it does not end in 120 s.
fn eval(cfg: &Path) -> std::process::Output {
    let mut child = medvqa()
        .args(["eval", "--quiet", "--config", cfg.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t0.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("eval hung on a full disk");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn a_full_disk_stops_eval_with_the_file_named_and_the_run_resumes_once_space_is_back() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(fs) = Tmpfs::mount(&tmp.path().join("fs"), "12k") else {
        eprintln!("notice: cannot mount a tmpfs here (needs root); the full-disk test is skipped");
        return;
    };
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models/idefics3");
    let cfg = tmp.path().join("eval.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
[run]
out = "{out}"
seed = 3
[dataset]
spec = "phantom:all"
seed = 7
n = 3
[model]
path = "{model}"
random_weights = true
batch_size = 2
max_new_tokens = 6
[perturb]
perturbations = ["gaussian-noise", "rotate"]
severities = "1,4"
"#,
            out = fs.0.join("run").display(),
            model = model.display()
        ),
    )
    .unwrap();
    let o = eval(&cfg);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("predictions.jsonl") && err.contains("No space left on device"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    // Space is back: the same command resumes from what the store kept and finishes.
    fs.resize("16m");
    let o = eval(&cfg);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let store = std::fs::read_to_string(fs.0.join("run/predictions.jsonl")).unwrap();
    let keys: Vec<String> = store
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["key"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let unique: std::collections::HashSet<&String> = keys.iter().collect();
    assert_eq!(unique.len(), keys.len(), "every prediction stored once");
    assert!(fs.0.join("run/report.json").is_file());
    // No half-written report is left behind by the failed first run.
    let leftovers: Vec<_> = std::fs::read_dir(fs.0.join("run"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_full_disk_stops_perturb_with_the_image_named_and_a_rerun_completes() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(fs) = Tmpfs::mount(&tmp.path().join("fs"), "300k") else {
        eprintln!("notice: cannot mount a tmpfs here (needs root); the full-disk test is skipped");
        return;
    };
    let out = fs.0.join("out");
    let perturb = || {
        medvqa()
            .args([
                "perturb",
                "--quiet",
                "--dataset",
                "phantom:all",
                "--dataset-n",
                "4",
                "--perturbation",
                "gaussian-noise",
                "--severity",
                "1..5",
                "--out",
                out.to_str().unwrap(),
            ])
            .output()
            .unwrap()
    };
    let o = perturb();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&out.display().to_string())
            && err.contains(".png")
            && err.contains("No space left on device"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    // Space is back: the same command writes every image and the manifest.
    fs.resize("64m");
    let o = perturb();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let manifest = std::fs::read_to_string(out.join("manifest.jsonl")).unwrap();
    for line in manifest.lines().skip(1) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        for img in v["images"].as_array().unwrap() {
            let p = out.join(img.as_str().unwrap());
            image::open(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        }
    }
}
