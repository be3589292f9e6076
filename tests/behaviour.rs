#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Behaviour pinned by hash, so that a refactor can show it changed nothing: the bytes of
//! an `eval` run's `report.json` and `scored.jsonl` (the reference VLM on phantoms under a
//! few perturbations), of a `perturb` export (manifest and every image), and of the
//! manifests the loaders export from the real sample data.
//!
//! The hashes live in `tests/golden/behaviour.txt`. A change that is meant to change
//! behaviour (new phantom pixels, a fixed box mapping) regenerates them with
//!
//! ```text
//! MEDVQA_BLESS=1 cargo test --test behaviour
//! ```
//!
//! and its commit message says which lines changed and why.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::{medvqa, stderr};
use sha2::{Digest, Sha256};

const GOLDEN: &str = "tests/golden/behaviour.txt";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// One hash over every file under `dir` (relative path and bytes, in sorted order).
fn tree_hash(dir: &Path) -> String {
    tree_hash_except(dir, &[])
}

/// [`tree_hash`] without the files named in `skip` (relative paths).
fn tree_hash_except(dir: &Path, skip: &[&str]) -> String {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<(String, PathBuf)>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, root, out);
            } else {
                let rel = p
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                out.push((rel, p));
            }
        }
    }
    let mut files = Vec::new();
    walk(dir, dir, &mut files);
    files.retain(|(rel, _)| !skip.contains(&rel.as_str()));
    files.sort();
    let mut h = Sha256::new();
    for (rel, p) in files {
        h.update(rel.as_bytes());
        h.update([0]);
        h.update(sha(&std::fs::read(p).unwrap()).as_bytes());
    }
    hex(&h.finalize())
}

/// Blessing rewrites the golden file; the tests of this binary run on threads.
static GOLDEN_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The golden hashes, by key.
fn read_golden() -> BTreeMap<String, String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(GOLDEN);
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect()
}

/// The golden hash of `key`, if the file has one.
fn golden(key: &str) -> Option<String> {
    read_golden().remove(key)
}

fn check(name: &str, got: BTreeMap<String, String>) {
    let _guard = GOLDEN_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(GOLDEN);
    let mut golden = read_golden();
    if std::env::var_os("MEDVQA_BLESS").is_some() {
        golden.retain(|k, _| !k.starts_with(&format!("{name}/")));
        golden.extend(got);
        let mut out = String::from(
            "# Hashes of medvqa's outputs (tests/behaviour.rs). Regenerate with\n\
             # MEDVQA_BLESS=1 cargo test --test behaviour, and say in the commit what changed.\n",
        );
        for (k, v) in &golden {
            out.push_str(&format!("{k} {v}\n"));
        }
        std::fs::write(&path, out).unwrap();
        return;
    }
    let mut differ = Vec::new();
    for (k, v) in &got {
        match golden.get(k) {
            Some(g) if g == v => {}
            Some(g) => differ.push(format!("{k}: now {v}, golden {g}")),
            None => differ.push(format!("{k}: not in {GOLDEN}")),
        }
    }
    assert!(
        differ.is_empty(),
        "behaviour changed:\n  {}\nIf the change is meant, regenerate with MEDVQA_BLESS=1 cargo test --test behaviour and say why in the commit.",
        differ.join("\n  ")
    );
}

#[test]
fn eval_with_the_reference_model_is_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/reference-vlm");
    let out = dir.path().join("run");
    let o = medvqa()
        .args([
            "eval",
            "--quiet",
            "--dataset",
            "phantom:all",
            "--dataset-seed",
            "11",
        ])
        .args(["--dataset-n", "5", "--model", model.to_str().unwrap()])
        .args(["--out", out.to_str().unwrap(), "--max-new-tokens", "48"])
        .args([
            "--perturbation",
            "gaussian-noise,rotate,zoom,cxr-grid,frame-shuffle,frame-drop",
        ])
        .args(["--severity", "0,4", "--seed", "5", "--batch-size", "4"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // The model's answers, in key order: they come from ONNX Runtime's float kernels,
    // which may differ in the last bits on another CPU and so flip a near-tie token. The
    // token probabilities (rounded to 4 decimals) feed the calibration numbers, so they
    // count as part of the answer too.
    let mut answers: Vec<(String, String, String)> =
        std::fs::read_to_string(out.join("predictions.jsonl"))
            .unwrap()
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                (
                    v["key"].to_string(),
                    v["response"].to_string(),
                    v["token_probs"].to_string(),
                )
            })
            .collect();
    answers.sort();
    let answers = sha(format!("{answers:?}").as_bytes());
    let bless = std::env::var_os("MEDVQA_BLESS").is_some();
    if !bless && golden("eval/answers").is_some_and(|g| g != answers) {
        eprintln!(
            "NOTICE: the reference model answers differently on this machine than where the \
             goldens were made (ONNX Runtime's kernels on another CPU); SKIPPING the eval \
             report hashes, which would only measure that"
        );
        return;
    }
    let mut got = BTreeMap::new();
    got.insert("eval/answers".to_string(), answers);
    for f in ["report.json", "scored.jsonl", "summary.csv"] {
        got.insert(
            format!("eval/{f}"),
            sha(&std::fs::read(out.join(f)).unwrap()),
        );
    }
    check("eval", got);
}

#[test]
fn a_perturb_export_is_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("perturbed");
    let o = medvqa()
        .args([
            "perturb",
            "--quiet",
            "--dataset",
            "phantom:all",
            "--dataset-seed",
            "11",
        ])
        .args(["--dataset-n", "5", "--perturbation", "modality-default"])
        .args([
            "--severity",
            "0,2,5",
            "--seed",
            "3",
            "--out",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let mut got = BTreeMap::new();
    got.insert(
        "perturb/manifest.jsonl".into(),
        sha(&std::fs::read(out.join("manifest.jsonl")).unwrap()),
    );
    // The images apart from the manifest, so that a change to box mapping shows as such.
    got.insert(
        "perturb/images".into(),
        tree_hash_except(&out, &["manifest.jsonl"]),
    );
    check("perturb", got);
}

#[test]
fn the_loaders_read_the_real_samples_unchanged() {
    let Some(d) = common::shared_data() else {
        return;
    };
    let specs = [
        ("gemex", format!("gemex:{}", d.join("gemex").display())),
        (
            "kvasir-vqa-x1",
            format!(
                "kvasir-vqa-x1:{}",
                d.join("kvasir_vqa_x1/test-00000-of-00001.parquet")
                    .display()
            ),
        ),
        (
            "medframeqa",
            format!(
                "medframeqa:{}",
                d.join("medframeqa/test-00000-of-00001.parquet").display()
            ),
        ),
        (
            "nih-bbox",
            format!(
                "nih-bbox:{}",
                d.join("chest_xray/annotations_only/BBox_List_2017.csv")
                    .display()
            ),
        ),
        (
            "vindr",
            format!(
                "vindr:{}",
                d.join("chest_xray/annotations_only/vinbigdata-train.csv.gz")
                    .display()
            ),
        ),
    ];
    let mut got = BTreeMap::new();
    for (name, spec) in specs {
        let dir = tempfile::tempdir().unwrap();
        let manifest = dir.path().join("export/manifest.jsonl");
        let o = medvqa()
            .args([
                "inspect",
                "--quiet",
                "--no-decode",
                "--dataset",
                &spec,
                "--export",
            ])
            .arg(&manifest)
            .output()
            .unwrap();
        // Rows whose images are elsewhere fail, each with its reason (exit 3); the export
        // holds the samples that loaded.
        assert!(
            matches!(o.status.code(), Some(0 | 3)),
            "{name}: {}",
            stderr(&o)
        );
        got.insert(
            format!("loaders/{name}/export"),
            tree_hash(manifest.parent().unwrap()),
        );
        // The counts and every failure with its reason, the data folder's path taken out.
        let o = medvqa()
            .args([
                "inspect",
                "--quiet",
                "--no-decode",
                "--json",
                "--dataset",
                &spec,
            ])
            .output()
            .unwrap();
        let text = common::stdout(&o).replace(&d.display().to_string(), "$DATA");
        assert!(text.contains("\"counts\""), "{name}: {text}");
        got.insert(format!("loaders/{name}/inspect"), sha(text.as_bytes()));
    }
    check("loaders", got);
}
