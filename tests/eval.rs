#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `medvqa eval` end to end on the phantom sets with a fixture model: reports, resume after
//! SIGKILL, shards and merge, thread-count independence, per-sample failures.

mod common;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{medvqa, stderr, stdout};

const MODEL: &str = "tests/fixtures/models/idefics3";

/// A small run: 3 questions per phantom set, a few perturbations at two severities.
fn config(dir: &Path, extra: &str) -> PathBuf {
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join(MODEL);
    let text = format!(
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
perturbations = ["gaussian-noise", "rotate", "frame-shuffle"]
severities = "1,4"

[score]
by = ["set"]
bootstrap = 200
{extra}
"#,
        out = dir.join("run").display(),
        model = model.display(),
    );
    let path = dir.join("eval.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn eval(cfg: &Path, args: &[&str]) -> std::process::Output {
    medvqa()
        .args(["eval", "--quiet", "--config", cfg.to_str().unwrap()])
        .args(args)
        .output()
        .unwrap()
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn keys(path: &Path) -> Vec<String> {
    lines(path)
        .iter()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["key"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

#[test]
fn eval_writes_every_report_and_resumes_without_rerunning() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), "");
    let o = eval(&cfg, &[]);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    let run = tmp.path().join("run");
    for f in [
        "config.resolved.toml",
        "predictions.jsonl",
        "report.json",
        "report.md",
        "report.html",
        "summary.csv",
        "scored.jsonl",
        "timing.json",
    ] {
        assert!(run.join(f).is_file(), "{f} missing");
    }
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("report.json")).unwrap()).unwrap();
    // 9 samples: each clean, gaussian-noise and rotate at 2 severities, frame-shuffle at 2
    // severities on the 3 multi-frame samples.
    let n_pred = lines(&run.join("predictions.jsonl")).len();
    assert_eq!(n_pred, 9 * 5 + 3 * 2);
    assert_eq!(report["counts"]["samples"], 9);
    assert_eq!(report["counts"]["scored"], n_pred);
    assert_eq!(report["counts"]["missing"], 0);
    assert!(
        report["header"]["notes"][0]
            .as_str()
            .unwrap()
            .contains("random weights"),
        "{}",
        report["header"]
    );
    let conditions: HashSet<String> = report["robustness"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| format!("{}@{}", r["perturbation"].as_str().unwrap(), r["severity"]))
        .collect();
    for c in ["gaussian-noise@1", "rotate@4", "frame-shuffle@1"] {
        assert!(conditions.contains(c), "{conditions:?}");
    }
    let timing: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("timing.json")).unwrap()).unwrap();
    // Peak resident memory, where the system reports it (Linux): more than the binary
    // alone, less than this machine has.
    if std::path::Path::new("/proc/self/status").exists() {
        let mib = timing["peak_rss_mib"].as_f64().unwrap();
        assert!(mib > 5.0 && mib < 64.0 * 1024.0, "{mib}");
    }
    for stage in [
        "load",
        "perturb",
        "preprocess",
        "model",
        "model_compute",
        "score",
        "report",
    ] {
        assert!(timing["stages"][stage].is_number(), "{stage}: {timing}");
    }
    // One session: the graphs run inside the time the pipeline waits on the model.
    let stage = |s: &str| timing["stages"][s].as_f64().unwrap();
    assert!(
        stage("model_compute") > 0.0 && stage("model_compute") <= stage("model"),
        "{timing}"
    );

    // The same command again: everything is stored, nothing is answered, same report.
    let before = std::fs::read(run.join("report.json")).unwrap();
    let o = eval(&cfg, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).starts_with("answered 0 predictions"),
        "{}",
        stdout(&o)
    );
    assert_eq!(lines(&run.join("predictions.jsonl")).len(), n_pred);
    assert_eq!(std::fs::read(run.join("report.json")).unwrap(), before);
    // The rerun's cost (issue 15): no inference, no preprocessing, no perturbation; what is
    // left (load, plan, score, report) does not grow with the model. BENCHMARKS.md records
    // the wall-time ratio on the default run.
    let rerun: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("timing.json")).unwrap()).unwrap();
    for stage in ["model", "model_compute", "preprocess", "perturb"] {
        let t = rerun["stages"][stage].as_f64().unwrap_or(0.0);
        assert!(t == 0.0, "{stage} took {t} s on a finished run: {rerun}");
    }
    // `records` counts the predictions this process answered: none.
    assert_eq!(rerun["records"], 0, "{rerun}");
}

#[test]
fn geometric_perturbations_move_the_ground_truth_that_is_scored() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), "");
    assert_eq!(eval(&cfg, &[]).status.code(), Some(0));
    let run = tmp.path().join("run");
    let mut rotated = 0;
    for l in lines(&run.join("predictions.jsonl")) {
        let v: serde_json::Value = serde_json::from_str(&l).unwrap();
        match v["perturbation"].as_str() {
            Some("rotate") if v["gt_boxes"].is_array() => rotated += 1,
            Some("gaussian-noise") | None => assert!(v["gt_boxes"].is_null(), "{l}"),
            Some("frame-shuffle") => assert!(v["frames"].is_array(), "{l}"),
            _ => {}
        }
    }
    // Every phantom question carries boxes? No: but each case has a grounding question.
    assert!(
        rotated >= 3 * 2,
        "{rotated} rotated predictions carry moved boxes"
    );
}

#[test]
fn controls_and_option_rotation_run_in_eval_and_reach_the_report() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), "");
    let o = eval(
        &cfg,
        &[
            "--perturbation",
            "controls,option-order,gaussian-noise",
            "--severity",
            "3",
            // Two cases per set, so that every image has another sample's to swap in.
            "--dataset-n",
            "10",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let run = tmp.path().join("run");
    let mut seen = std::collections::BTreeMap::<String, usize>::new();
    for l in lines(&run.join("predictions.jsonl")) {
        let v: serde_json::Value = serde_json::from_str(&l).unwrap();
        let p = v["perturbation"].as_str().unwrap_or("clean").to_string();
        // Every record is answered or carries its reason: nothing silently dropped.
        assert!(v["response"].is_string() || v["error"].is_string(), "{l}");
        match p.as_str() {
            "no-image" => assert_eq!(v["frames"], serde_json::json!([]), "{l}"),
            "blank-image" | "swapped-image" => {
                // Boxes are not scored under a control: stored as none where there were some.
                assert!(
                    v["gt_boxes"].is_null() || v["gt_boxes"] == serde_json::json!([]),
                    "{l}"
                );
            }
            _ => {}
        }
        *seen.entry(p).or_default() += 1;
    }
    let clean = seen["clean"];
    for control in ["blank-image", "swapped-image", "no-image"] {
        assert_eq!(seen.get(control), Some(&clean), "{control}: {seen:?}");
    }
    // 3 single- and 3 multi-choice questions per set; every one has at least 3 options.
    assert!(seen["option-rotate"] >= 2 * 2 * 3, "{seen:?}");
    let rep: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("report.json")).unwrap()).unwrap();
    let controls: HashSet<&str> = rep["image_reliance"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["control"].as_str().unwrap())
        .collect();
    assert_eq!(
        controls,
        HashSet::from(["blank-image", "swapped-image", "no-image"])
    );
    let kinds: HashSet<&str> = rep["option_order"]["circular"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, HashSet::from(["single_choice", "multi_choice"]));
    assert!(
        !rep["consistency_by_reliance"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    // Only gaussian-noise is a robustness condition.
    assert_eq!(
        rep["robustness_summary"]["conditions"], 1,
        "{}",
        rep["robustness_summary"]
    );
    let html = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert!(html.contains("Option order") && html.contains("Consistency × image reliance"));
}

#[test]
fn frame_perturbations_remap_answers_or_report_them_apart() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), "");
    let o = eval(
        &cfg,
        &[
            "--perturbation",
            "frame-drop,frame-shuffle",
            "--severity",
            "4",
            "--filter",
            "set=frames",
            "--dataset-n",
            "20",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let run = tmp.path().join("run");
    let scored: Vec<serde_json::Value> = lines(&run.join("scored.jsonl"))
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let clean_ref = |id: &str| {
        scored
            .iter()
            .find(|r| r["id"] == id && r["perturbation"] == "none")
            .map(|r| r["reference"].clone())
            .unwrap()
    };
    let shuffled: Vec<&serde_json::Value> = scored
        .iter()
        .filter(|r| r["perturbation"] != "none")
        .collect();
    // The phantom clips know which frames show the subject: "in how many frames" counts
    // the frames left after a drop, "first appears in frame 3" becomes the frame it is seen
    // in after the shuffle.
    let remapped = shuffled
        .iter()
        .filter(|r| r["reference"] != clean_ref(r["id"].as_str().unwrap()))
        .count();
    assert!(remapped >= 1, "no answer followed the shuffled frames");
    for r in &shuffled {
        let id = r["id"].as_str().unwrap();
        let has_rule = [
            "first-frame",
            "last-frame",
            "frames-count",
            "in-every-frame",
            "visible-in-frame",
        ]
        .iter()
        .any(|t| id.ends_with(t));
        if r["reference"] != clean_ref(id) {
            assert!(has_rule, "{id}: remapped without a rule");
        }
        // Questions without a rule cannot be followed: reported apart.
        if !has_rule {
            assert_eq!(r["order_dependent"], true, "{id}");
        }
    }
    let rep: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("report.json")).unwrap()).unwrap();
    let rows: Vec<&str> = rep["robustness"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["perturbation"].as_str().unwrap())
        .collect();
    assert_eq!(
        rows,
        [
            "frame-drop",
            "frame-drop (order-dependent)",
            "frame-shuffle",
            "frame-shuffle (order-dependent)"
        ]
    );
    assert_eq!(rep["robustness_summary"]["conditions"], 2);
}

#[test]
fn a_second_process_on_the_same_run_folder_stops_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), "");
    let run = tmp.path().join("run");
    // Enough work that the first process still runs when the second starts.
    let args = ["--dataset-n", "30"];
    let mut first = medvqa()
        .args(["eval", "--quiet", "--config", cfg.to_str().unwrap()])
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = first.id();
    let lock = run.join(".medvqa.lock");
    let t0 = Instant::now();
    while std::fs::read_to_string(&lock).ok() != Some(format!("pid {pid}\n")) {
        assert!(
            first.try_wait().unwrap().is_none(),
            "the first eval ended early"
        );
        assert!(t0.elapsed() < Duration::from_secs(120), "no lock taken");
        std::thread::sleep(Duration::from_millis(20));
    }
    let second = eval(&cfg, &args);
    assert_eq!(second.status.code(), Some(1), "{}", stderr(&second));
    let err = stderr(&second);
    assert!(
        err.contains("in use by another medvqa process") && err.contains(&format!("pid {pid}")),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(first.wait().unwrap().success());
    // Every record once: the second process wrote nothing.
    let keys = keys(&run.join("predictions.jsonl"));
    let unique: HashSet<&String> = keys.iter().collect();
    assert_eq!(unique.len(), keys.len());
    // Once the first is gone the folder is free again: a rerun resumes, answering nothing.
    let o = eval(&cfg, &args);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(self::keys(&run.join("predictions.jsonl")).len(), keys.len());
}

#[test]
fn a_run_killed_midway_resumes_to_the_same_report() {
    let tmp = tempfile::tempdir().unwrap();
    let whole_dir = tmp.path().join("whole");
    let killed_dir = tmp.path().join("killed");
    std::fs::create_dir_all(&whole_dir).unwrap();
    std::fs::create_dir_all(&killed_dir).unwrap();
    let whole = config(&whole_dir, "");
    let killed = config(&killed_dir, "");

    assert_eq!(eval(&whole, &["--batch-size", "1"]).status.code(), Some(0));

    let store = killed_dir.join("run/predictions.jsonl");
    let mut child = medvqa()
        .args([
            "eval",
            "--quiet",
            "--config",
            killed.to_str().unwrap(),
            "--batch-size",
            "1",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        let n = std::fs::read_to_string(&store)
            .map(|s| s.lines().count())
            .unwrap_or(0);
        if n >= 8 {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run finished before it could be killed"
        );
        assert!(start.elapsed() < Duration::from_secs(120), "no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let partial = lines(&store).len();
    assert!(
        partial < 9 * 5 + 3 * 2,
        "killed after {partial} predictions: too late"
    );

    let o = eval(&killed, &["--batch-size", "1"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let k = keys(&store);
    let unique: HashSet<&String> = k.iter().collect();
    assert_eq!(unique.len(), k.len(), "duplicate keys in predictions.jsonl");
    assert_eq!(
        std::fs::read(killed_dir.join("run/report.json")).unwrap(),
        std::fs::read(whole_dir.join("run/report.json")).unwrap(),
        "a resumed run must write the same report.json"
    );
}

#[test]
fn shards_merged_equal_an_unsharded_run_and_threads_do_not_matter() {
    // (issue 15, part 6: thread counts never change the predictions or the report)
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), "");
    let one = medvqa()
        .args([
            "--threads",
            "1",
            "eval",
            "--quiet",
            "--config",
            cfg.to_str().unwrap(),
        ])
        .args(["--out", tmp.path().join("t1").to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(one.status.code(), Some(0), "{}", stderr(&one));
    let two = medvqa()
        .env("RAYON_NUM_THREADS", "2")
        .args([
            "--threads",
            "2",
            "eval",
            "--quiet",
            "--config",
            cfg.to_str().unwrap(),
        ])
        .args([
            "--out",
            tmp.path().join("t2").to_str().unwrap(),
            "--batch-size",
            "3",
        ])
        .output()
        .unwrap();
    assert_eq!(two.status.code(), Some(0), "{}", stderr(&two));
    let reference = std::fs::read(tmp.path().join("t1/report.json")).unwrap();
    assert_eq!(
        std::fs::read(tmp.path().join("t2/report.json")).unwrap(),
        reference
    );
    // The same config on 1 and 2 threads: the same predictions, byte for byte, once each
    // record's timing is set aside.
    let three = medvqa()
        .args(["--threads", "2", "eval", "--quiet", "--config"])
        .arg(&cfg)
        .args(["--out", tmp.path().join("t3").to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(three.status.code(), Some(0), "{}", stderr(&three));
    let untimed = |dir: &str| -> Vec<String> {
        lines(&tmp.path().join(dir).join("predictions.jsonl"))
            .iter()
            .map(|l| {
                let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
                v.as_object_mut().unwrap().remove("timing_ms");
                v.to_string()
            })
            .collect()
    };
    assert_eq!(untimed("t1"), untimed("t3"));
    assert_eq!(
        std::fs::read(tmp.path().join("t3/report.json")).unwrap(),
        reference
    );

    let mut shard_dirs = Vec::new();
    for i in 0..2 {
        let dir = tmp.path().join(format!("shard{i}"));
        let o = eval(
            &cfg,
            &["--shard", &format!("{i}/2"), "--out", dir.to_str().unwrap()],
        );
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let r: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("report.json")).unwrap()).unwrap();
        assert!(
            r["counts"]["missing"].as_u64().unwrap() > 0,
            "a shard's report says what it lacks"
        );
        shard_dirs.push(dir);
    }
    let merged = tmp.path().join("merged");
    let o = medvqa()
        .args([
            "merge",
            "--quiet",
            "--config",
            cfg.to_str().unwrap(),
            "--out",
            merged.to_str().unwrap(),
        ])
        .args(shard_dirs.iter().map(|d| d.to_str().unwrap()))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        std::fs::read(merged.join("report.json")).unwrap(),
        reference
    );

    // Without --config, merge reads the config the shards saved (config.resolved.toml,
    // paths relative to each shard's folder) and writes the same report.
    let merged2 = tmp.path().join("merged-from-shards");
    let o = medvqa()
        .args(["merge", "--quiet", "--out", merged2.to_str().unwrap()])
        .args(shard_dirs.iter().map(|d| d.to_str().unwrap()))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        std::fs::read(merged2.join("report.json")).unwrap(),
        reference
    );
    // Shards that ran with different configs are refused by name.
    let other = tmp.path().join("shard1/config.resolved.toml");
    let text = std::fs::read_to_string(&other).unwrap();
    std::fs::write(&other, text.replace("seed = 3", "seed = 4")).unwrap();
    let o = medvqa()
        .args(["merge", "--quiet", "--out", merged2.to_str().unwrap()])
        .args(shard_dirs.iter().map(|d| d.to_str().unwrap()))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("different configs"), "{}", stderr(&o));
}

#[test]
fn eval_runs_from_flags_alone_on_a_selection() {
    let tmp = tempfile::tempdir().unwrap();
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join(MODEL);
    let out = tmp.path().join("run");
    let o = medvqa()
        .args([
            "eval",
            "--quiet",
            "--dataset",
            "phantom:all",
            "--dataset-seed",
            "7",
        ])
        .args(["--dataset-n", "10", "--model", model.to_str().unwrap()])
        .args(["--out", out.to_str().unwrap(), "--perturbation", "none"])
        .args([
            "--max-new-tokens",
            "4",
            "--filter",
            "kind=closed|open,set=cxr|frames",
        ])
        .args(["--sample", "4", "--sample-seed", "2"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let scored = lines(&out.join("scored.jsonl"));
    assert_eq!(scored.len(), 4, "{scored:?}");
    for l in &scored {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert!(
            ["closed", "open"].contains(&v["kind"].as_str().unwrap()),
            "{l}"
        );
        let id = v["id"].as_str().unwrap();
        assert!(id.starts_with("cxr/") || id.starts_with("frames/"), "{l}");
    }
    let report = std::fs::read_to_string(out.join("report.json")).unwrap();
    assert!(
        report.contains("selected 4 of 30 samples: filter kind=closed|open, set=cxr|frames, then a seeded sample of 4 (seed 2)"),
        "{report}"
    );
    // A filter key no sample has names the closest one.
    let o = medvqa()
        .args(["eval", "--quiet", "--dataset", "phantom:cxr", "--model"])
        .args([model.to_str().unwrap(), "--out", out.to_str().unwrap()])
        .args(["--filter", "knd=closed"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("did you mean kind?"), "{}", stderr(&o));
    // Neither a config nor --dataset and --model: a usage error that says what is needed.
    let o = medvqa()
        .args(["eval", "--dataset", "phantom:cxr"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--config"), "{}", stderr(&o));
}

#[test]
fn samples_the_model_cannot_take_fail_alone_and_are_counted() {
    let tmp = tempfile::tempdir().unwrap();
    // The frames set has 2-5 images per question; allow 1.
    let cfg = config(tmp.path(), "");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("max_new_tokens = 6", "max_new_tokens = 6\nmax_images = 1");
    std::fs::write(&cfg, text).unwrap();
    let o = eval(&cfg, &[]);
    assert_eq!(o.status.code(), Some(3), "{}\n{}", stdout(&o), stderr(&o));
    let run = tmp.path().join("run");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("report.json")).unwrap()).unwrap();
    // 3 multi-frame samples x (clean + 2 noise + 2 rotate + 2 shuffle) conditions.
    assert_eq!(report["counts"]["failures"], 3 * 7, "{}", report["counts"]);
    let listed = report["failures"]["items"].as_array().unwrap();
    assert!(
        listed.iter().any(|f| f["reason"]
            .as_str()
            .unwrap()
            .contains("max_images is set to 1")),
        "{listed:?}"
    );
    // The single-image samples were all answered.
    assert_eq!(report["counts"]["scored"], 6 * 5);
}

#[test]
fn a_missing_model_folder_stops_the_run_with_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), "");
    let o = eval(
        &cfg,
        &["--model", tmp.path().join("nope").to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("nope"), "{err}");
    // Nothing was written: the run folder appears only once everything has been read.
    assert!(!tmp.path().join("run").exists());
    // A bad value in the config or a flag stops the run before it writes anything, too.
    let o = eval(&cfg, &["--perturbation", "gausian-noise"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("did you mean gaussian-noise?"),
        "{}",
        stderr(&o)
    );
    assert!(!tmp.path().join("run").exists());
}

#[test]
fn unknown_config_keys_are_rejected_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), "bootstrapp = 3");
    let o = eval(&cfg, &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("bootstrapp"), "{}", stderr(&o));
}

#[test]
fn the_model_flag_overrides_the_model_path_only() {
    // Regression: `--model` also reset `name` and `random_weights`, so the report lost its
    // random-weights warning.
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), "");
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "random_weights = true",
        "random_weights = true\nname = \"fixture under test\"",
    );
    std::fs::write(&cfg, text).unwrap();
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join(MODEL);
    let o = eval(
        &cfg,
        &["--model", model.to_str().unwrap(), "--perturbation", "none"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let run = tmp.path().join("run");
    let resolved = std::fs::read_to_string(run.join("config.resolved.toml")).unwrap();
    assert!(resolved.contains("random_weights = true"), "{resolved}");
    assert!(
        resolved.contains("name = \"fixture under test\""),
        "{resolved}"
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["header"]["model"], "fixture under test");
    let notes = report["header"]["notes"].to_string();
    assert!(notes.contains("random weights"), "{notes}");
}

/// `(confidence, correct)` of a scored.jsonl line, correct by the calibration rule:
/// accuracy (closed, choice), exact_match (open), acc@0.5 (grounding).
fn confidence_pair(v: &serde_json::Value) -> Option<(f64, bool)> {
    let metric = match v["kind"].as_str()? {
        "open" => "exact_match",
        "grounding" => "acc@0.5",
        _ => "accuracy",
    };
    Some((
        v["confidence"].as_f64()?,
        v["metrics"][metric].as_f64()? >= 1.0,
    ))
}

#[test]
fn eval_records_confidences_and_reports_calibration() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), "");
    let o = eval(&cfg, &[]);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    let run = tmp.path().join("run");
    // Every answered prediction carries one probability per generated token, ends rising
    // through the response.
    let mut probs: HashMap<String, Vec<f64>> = HashMap::new();
    for l in lines(&run.join("predictions.jsonl")) {
        let v: serde_json::Value = serde_json::from_str(&l).unwrap();
        let Some(response) = v["response"].as_str() else {
            continue;
        };
        let t = v["token_probs"].as_array().expect("token_probs");
        assert_eq!(t.len() as u64, v["tokens"].as_u64().unwrap());
        let mut last = 0;
        for x in t {
            let (end, p) = (x["end"].as_u64().unwrap(), x["p"].as_f64().unwrap());
            assert!(p > 0.0 && p <= 1.0, "{p}");
            assert!(end >= last && end as usize <= response.len());
            last = end;
        }
        let key = format!("{}|{}|{}", v["id"], v["perturbation"], v["severity"]);
        probs.insert(key, t.iter().map(|x| x["p"].as_f64().unwrap()).collect());
    }
    // Each scored confidence is the geometric mean of a run of its tokens' probabilities:
    // all of them (scope response) or those of the answer (scope answer).
    let gm = |p: &[f64]| (p.iter().map(|v| v.ln()).sum::<f64>() / p.len() as f64).exp();
    let mut clean = Vec::new();
    for l in lines(&run.join("scored.jsonl")) {
        let v: serde_json::Value = serde_json::from_str(&l).unwrap();
        let pert = if v["perturbation"] == "none" {
            serde_json::Value::Null
        } else {
            v["perturbation"].clone()
        };
        let p = &probs[&format!("{}|{}|{}", v["id"], pert, v["severity"])];
        let c = v["confidence"].as_f64().expect("a confidence");
        match v["confidence_scope"].as_str().unwrap() {
            "response" => assert!((c - gm(p)).abs() < 1e-6, "{c} vs {}", gm(p)),
            "answer" => assert!(
                (0..p.len()).any(|i| (i..p.len()).any(|j| (gm(&p[i..=j]) - c).abs() < 1e-6)),
                "{c} is no run of {p:?}"
            ),
            other => panic!("scope {other}"),
        }
        if v["perturbation"] == "none"
            && let Some(pair) = confidence_pair(&v)
        {
            clean.push(pair);
        }
    }
    // The report's clean calibration, recomputed here: Brier, and ECE over 15 equal-mass
    // bins (sorted by confidence; a cut inside tied confidences moves past them).
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("report.json")).unwrap()).unwrap();
    let rows = report["calibration"]["rows"]
        .as_array()
        .expect("calibration rows");
    let row = rows
        .iter()
        .find(|r| r["perturbation"] == "none" && r["kind"] == "all")
        .unwrap();
    assert_eq!(row["n"].as_u64().unwrap() as usize, clean.len());
    let n = clean.len() as f64;
    let brier = clean
        .iter()
        .map(|&(c, y)| (c - f64::from(u8::from(y))).powi(2))
        .sum::<f64>()
        / n;
    assert!((row["brier"].as_f64().unwrap() - brier).abs() < 1e-5);
    clean.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let b = 15.min(clean.len());
    let mut cuts = vec![0];
    for k in 1..=b {
        let mut c = k * clean.len() / b;
        while c < clean.len() && clean[c - 1].0 == clean[c].0 {
            c += 1;
        }
        if c > *cuts.last().unwrap() {
            cuts.push(c);
        }
    }
    let mut ece = 0.0;
    for w in cuts.windows(2) {
        let part = &clean[w[0]..w[1]];
        let k = part.len() as f64;
        let conf = part.iter().map(|x| x.0).sum::<f64>() / k;
        let acc = part.iter().filter(|x| x.1).count() as f64 / k;
        ece += k / n * (acc - conf).abs();
    }
    assert!((row["ece"].as_f64().unwrap() - ece).abs() < 1e-5);
    assert!(
        !report["calibration"]["shift"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let csv = std::fs::read_to_string(run.join("summary.csv")).unwrap();
    assert!(csv.contains("\ncalibration,kind,all,none,0,ece,"), "{csv}");
    let md = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(md.contains("## Calibration"));
    let html = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert!(html.contains("Reliability diagram"));
}
