#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Video files as multi-image samples, through FFmpeg: the phantom clips written as FFV1
//! videos decode to exactly the PNG frames they were made from, once per video; `inspect`
//! and `eval` run on a video manifest and answer as on the PNGs; damaged videos and
//! impossible frame rules fail their samples with the reason.

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use common::{medvqa, stderr, stdout};
use medvqa::data::decode::{ImageStore, decode_source};
use medvqa::data::{LoadOptions, load};
use medvqa::sample::ImageSource;

const MODEL: &str = "tests/fixtures/models/idefics3";

/// Whether FFmpeg's programs are here. `scripts/setup.sh --test` installs them; a plain
/// `cargo test` on a machine without them skips these tests with a notice. CI sets
/// `MEDVQA_REQUIRE_FFMPEG=1`, which makes their absence a failure.
fn have_ffmpeg() -> bool {
    let ok = ["ffmpeg", "ffprobe"].iter().all(|t| {
        std::process::Command::new(t)
            .arg("-version")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if !ok {
        if std::env::var_os("MEDVQA_REQUIRE_FFMPEG").is_some() {
            panic!("ffmpeg/ffprobe are missing and MEDVQA_REQUIRE_FFMPEG is set");
        }
        let _ = writeln!(
            std::io::stderr(),
            "NOTICE: ffmpeg/ffprobe not on PATH; SKIPPING a video test (scripts/setup.sh --test installs FFmpeg)"
        );
    }
    ok
}

/// `medvqa phantom --set frames --video` into a fresh folder.
fn phantom_clips(dir: &Path, n: usize) -> PathBuf {
    let out = dir.join("clips");
    let o = medvqa()
        .args(["phantom", "--set", "frames", "--seed", "5", "--video"])
        .args(["--n", &n.to_string(), "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("lossless FFV1 videos"),
        "{}",
        stdout(&o)
    );
    out
}

/// A temporary folder with `n` phantom clip questions and their videos, or `None` (with the
/// notice) where FFmpeg is missing.
fn clips(n: usize) -> Option<(tempfile::TempDir, PathBuf)> {
    if !have_ffmpeg() {
        return None;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = phantom_clips(tmp.path(), n);
    Some((tmp, out))
}

#[test]
fn video_frames_decode_to_the_png_frames_they_were_made_from_once_per_video() {
    let Some((_tmp, out)) = clips(20) else {
        return;
    };
    let opts = LoadOptions::default();
    let pngs = load(
        &format!("jsonl:{}", out.join("manifest.jsonl").display()),
        &opts,
    )
    .unwrap();
    let videos = load(
        &format!("jsonl:{}", out.join("manifest-video.jsonl").display()),
        &opts,
    )
    .unwrap();
    assert!(videos.failures.is_empty(), "{:?}", videos.failures);
    assert_eq!(videos.samples.len(), pngs.samples.len());
    // Loading probes the videos; it decodes nothing.
    let passes = |s: &medvqa::sample::Sample| match &s.images[0].source {
        ImageSource::Frame { video, .. } => video.decode_passes(),
        _ => panic!("{} is not a video sample", s.id),
    };
    assert!(videos.samples.iter().all(|s| passes(s) == 0));
    let by_id: HashMap<&str, _> = pngs.samples.iter().map(|s| (s.id.as_str(), s)).collect();
    let store = ImageStore::new(1 << 30, 1 << 30);
    let mut clips = std::collections::BTreeSet::new();
    let mut frames = 0;
    for s in &videos.samples {
        let png = by_id[s.id.as_str()];
        assert_eq!(s.images.len(), png.images.len(), "{}", s.id);
        assert_eq!(s.boxes, png.boxes, "{}: boxes on frames", s.id);
        assert_eq!(s.task, png.task);
        for (v, p) in s.images.iter().zip(&png.images) {
            let ImageSource::Frame { index, .. } = &v.source else {
                panic!("{} is not a video frame", v.key);
            };
            // Frame 2 of frames/0003.mkv is frames/0003_f3.png.
            let (clip, _) = v.key.split_once(".mkv#").unwrap();
            assert_eq!(format!("{clip}_f{}.png", index + 1), p.key);
            let got = store.get(v).unwrap();
            let want = decode_source(&p.source, &p.key, 1 << 30).unwrap();
            assert!(*got == want, "{} differs from {}", v.key, p.key);
            clips.insert(v.origin().to_string());
            frames += 1;
        }
    }
    assert!(frames >= 40, "{frames}");
    // Every clip was decoded in one ffmpeg pass, whatever number of questions use it.
    assert!(videos.samples.iter().all(|s| passes(s) == 1));
    assert_eq!(clips.len(), 4);
}

#[test]
fn the_video_phantom_is_byte_identical_across_runs() {
    if !have_ffmpeg() {
        return;
    }
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let (a, b) = (phantom_clips(a.path(), 8), phantom_clips(b.path(), 8));
    for name in ["frames/0000.mkv", "frames/0001.mkv", "manifest-video.jsonl"] {
        assert_eq!(
            std::fs::read(a.join(name)).unwrap(),
            std::fs::read(b.join(name)).unwrap(),
            "{name}"
        );
    }
}

/// A manifest of video lines over the phantom clips, with `extra` lines appended.
fn manifest_with(out: &Path, lines: &[&str]) -> PathBuf {
    let path = out.join("videos.jsonl");
    let mut text = String::new();
    for l in lines {
        text.push_str(l);
        text.push('\n');
    }
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn bad_videos_and_impossible_rules_fail_their_samples_with_the_reason() {
    let Some((_tmp, out)) = clips(8) else {
        return;
    };
    let good = std::fs::read(out.join("frames/0000.mkv")).unwrap();
    std::fs::write(out.join("empty.mkv"), b"").unwrap();
    std::fs::write(out.join("truncated.mkv"), &good[..good.len() / 3]).unwrap();
    std::fs::write(out.join("not-a-video.mkv"), b"hello, this is text").unwrap();
    let mut corrupt = good.clone();
    let mid = corrupt.len() / 2;
    for b in &mut corrupt[mid..mid + 2000] {
        *b ^= 0x5A;
    }
    std::fs::write(out.join("corrupt.mkv"), &corrupt).unwrap();
    let line = |id: &str, video: &str, frames: &str| {
        format!(
            r#"{{"id": "{id}", "video": "{video}", "frames": {frames}, "question": "Is there a polyp?", "kind": "closed", "answer": "yes"}}"#
        )
    };
    let lines = [
        line("ok-uniform", "frames/0000.mkv", r#"{"uniform": 2}"#),
        line("ok-at", "frames/0000.mkv", r#"{"at": [0.5, 2.0]}"#),
        line("ok-fps", "frames/0000.mkv", r#"{"fps": 0.5}"#),
        line("too-many", "frames/0000.mkv", r#"{"uniform": 9}"#),
        line("past-end", "frames/0000.mkv", r#"{"at": [60]}"#),
        line("empty", "empty.mkv", r#"{"uniform": 2}"#),
        line("truncated", "truncated.mkv", r#"{"uniform": 5}"#),
        line("text", "not-a-video.mkv", r#"{"uniform": 1}"#),
        line("missing", "nowhere.mkv", r#"{"uniform": 1}"#),
        line("escape", "../clips/frames/0000.mkv", r#"{"uniform": 1}"#),
        line("corrupt", "corrupt.mkv", r#"{"uniform": 3}"#),
        r#"{"id": "no-rule", "video": "frames/0000.mkv", "question": "q", "kind": "closed", "answer": "no"}"#.to_string(),
        r#"{"id": "box-off-rule", "video": "frames/0000.mkv", "frames": {"uniform": 2}, "question": "q", "kind": "grounding", "boxes": [{"frame": 1, "box": [0.1, 0.1, 0.2, 0.2]}]}"#.to_string(),
        r#"{"id": "box-on-frame", "video": "frames/0000.mkv", "frames": {"uniform": 2}, "question": "q", "kind": "grounding", "boxes": [{"frame": 2, "box": [0.1, 0.1, 0.2, 0.2]}]}"#.to_string(),
    ];
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let path = manifest_with(&out, &refs);
    let ds = load(
        &format!("jsonl:{}", path.display()),
        &LoadOptions::default(),
    )
    .unwrap();
    let reasons: HashMap<String, String> = ds
        .failures
        .iter()
        .map(|f| (f.id.clone().unwrap_or_default(), f.reason.clone()))
        .collect();
    let loaded: Vec<&str> = ds.samples.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(
        loaded,
        ["ok-uniform", "ok-at", "ok-fps", "corrupt", "box-on-frame"],
        "{reasons:#?}"
    );
    let has = |id: &str, text: &str| {
        let r = reasons
            .get(id)
            .unwrap_or_else(|| panic!("{id} did not fail"));
        assert!(r.contains(text), "{id}: {r}");
    };
    has(
        "too-many",
        "asks for 9 frames, but the video has 3 frames at 1 fps, 3.000 s",
    );
    has("past-end", "time 60 s is past the end of the video");
    has("empty", "the video file is empty");
    has(
        "truncated",
        "truncated.mkv cannot be decoded: the video stream has no frames",
    );
    has("text", "ffprobe cannot read it");
    has("missing", "does not exist");
    has("escape", "'..'");
    has("no-rule", "needs a \"frames\" rule");
    has(
        "box-off-rule",
        "box 0 is on frame 1, which the rule does not choose (it chooses [0, 2])",
    );
    let frames_of = |id: &str| -> Vec<String> {
        ds.samples
            .iter()
            .find(|s| s.id == id)
            .unwrap()
            .images
            .iter()
            .map(|i| i.key.clone())
            .collect()
    };
    assert_eq!(
        frames_of("ok-uniform"),
        ["frames/0000.mkv#0", "frames/0000.mkv#2"]
    );
    assert_eq!(
        frames_of("ok-at"),
        ["frames/0000.mkv#0", "frames/0000.mkv#2"]
    );
    assert_eq!(
        frames_of("ok-fps"),
        ["frames/0000.mkv#0", "frames/0000.mkv#2"]
    );
    // A file damaged mid-stream probes (its packets are all there), but its frames fail to
    // decode, with the reason; other videos still decode.
    let store = ImageStore::new(1 << 30, 1 << 30);
    let s = ds.samples.iter().find(|s| s.id == "corrupt").unwrap();
    let errs: Vec<String> = s
        .images
        .iter()
        .filter_map(|i| store.get(i).err().map(|e| e.to_string()))
        .collect();
    assert!(!errs.is_empty(), "the damaged video decoded cleanly");
    assert!(
        errs.iter()
            .all(|e| e.contains("ffmpeg reported a damaged stream") && e.contains("CRC")),
        "{errs:?}"
    );
    let ok = ds.samples.iter().find(|s| s.id == "ok-uniform").unwrap();
    assert!(ok.images.iter().all(|i| store.get(i).is_ok()));
}

#[test]
fn inspect_and_eval_run_on_a_video_manifest_and_answer_as_on_the_pngs() {
    let Some((tmp, out)) = clips(10) else {
        return;
    };
    // The folder-of-videos spec reads questions.jsonl.
    std::fs::copy(
        out.join("manifest-video.jsonl"),
        out.join("questions.jsonl"),
    )
    .unwrap();
    let o = medvqa()
        .args(["inspect", "--dataset", &format!("videos:{}", out.display())])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("10 loaded, 0 failed"), "{}", stdout(&o));
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join(MODEL);
    let run = |spec: String, name: &str| -> HashMap<String, String> {
        let dir = tmp.path().join(name);
        let o = medvqa()
            .args(["eval", "--quiet", "--dataset", &spec, "--model"])
            .args([model.to_str().unwrap(), "--out", dir.to_str().unwrap()])
            .args(["--perturbation", "none", "--max-new-tokens", "6"])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        std::fs::read_to_string(dir.join("predictions.jsonl"))
            .unwrap()
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                (
                    v["id"].as_str().unwrap().to_string(),
                    v["response"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    };
    let from_pngs = run(
        format!("jsonl:{}", out.join("manifest.jsonl").display()),
        "png",
    );
    let from_videos = run(format!("videos:{}", out.display()), "video");
    assert_eq!(from_pngs.len(), 10);
    assert_eq!(from_videos, from_pngs);
}

#[test]
fn without_ffmpeg_a_video_sample_fails_with_one_clear_reason() {
    let Some((_tmp, out)) = clips(4) else {
        return;
    };
    let o = medvqa()
        .env("PATH", "")
        .args(["inspect", "--dataset"])
        .arg(format!(
            "jsonl:{}",
            out.join("manifest-video.jsonl").display()
        ))
        .output()
        .unwrap();
    let text = format!("{}{}", stdout(&o), stderr(&o));
    assert!(text.contains("4 failed"), "{text}");
    assert!(
        text.contains("the `ffprobe` program is not on PATH; medvqa reads videos through FFmpeg"),
        "{text}"
    );
}

#[test]
fn a_video_is_decoded_once_whichever_question_asks_first() {
    let Some((_tmp, out)) = clips(8) else {
        return;
    };
    let q = |id: &str, frames: &str| {
        format!(
            r#"{{"id": "{id}", "video": "frames/0000.mkv", "frames": {frames}, "question": "q", "kind": "closed", "answer": "yes"}}"#
        )
    };
    let path = manifest_with(
        &out,
        &[
            &q("ends", r#"{"uniform": 2}"#),
            &q("middle", r#"{"at": [1.0]}"#),
        ],
    );
    let ds = load(
        &format!("jsonl:{}", path.display()),
        &LoadOptions::default(),
    )
    .unwrap();
    assert!(ds.failures.is_empty(), "{:?}", ds.failures);
    let store = ImageStore::new(1 << 30, 1 << 30);
    // The middle frame first, then the first and last: one pass decodes all three.
    for id in ["middle", "ends"] {
        let s = ds.samples.iter().find(|s| s.id == id).unwrap();
        for i in &s.images {
            store.get(i).unwrap();
        }
    }
    let ImageSource::Frame { video, .. } = &ds.samples[0].images[0].source else {
        panic!("not a video frame");
    };
    assert_eq!(video.decode_passes(), 1);
}
