//! `report.html` in a real browser: headless Chromium loads it without console errors, the
//! rendered DOM holds the SVG charts, and a screenshot is kept in
//! `target/test-artifacts/report.png` for people to look at.
//!
//! Chromium comes from Debian's `chromium` package (`scripts/setup.sh --test` installs it).
//! Without it the test prints a notice and passes, unless MEDVQA_REQUIRE_CHROMIUM is set
//! (CI sets it).

// Test code may unwrap and panic (clippy.toml allows it inside #[test] only).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod scoring_fixture;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn chromium() -> Option<PathBuf> {
    for name in [
        "chromium",
        "chromium-browser",
        "google-chrome",
        "google-chrome-stable",
    ] {
        if let Ok(o) = Command::new("which").arg(name).output()
            && o.status.success()
        {
            let p = String::from_utf8_lossy(&o.stdout).trim().to_string();
            if !p.is_empty() {
                return Some(PathBuf::from(p));
            }
        }
    }
    if std::env::var_os("MEDVQA_REQUIRE_CHROMIUM").is_some() {
        panic!(
            "chromium is not installed and MEDVQA_REQUIRE_CHROMIUM is set (scripts/setup.sh --test installs it)"
        );
    }
    let _ = writeln!(
        std::io::stderr(),
        "NOTICE: chromium not found; SKIPPING the headless browser check of report.html"
    );
    None
}

/// Runs chromium headless with `extra` flags on `url`, killing it after 90 s.
fn run_chromium(bin: &Path, profile: &Path, extra: &[String], url: &str) -> (String, String) {
    let mut cmd = Command::new(bin);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--enable-logging=stderr",
        "--v=0",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(extra)
    .arg(url)
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    // Drain both pipes while waiting: `--dump-dom` writes more than a pipe holds, and a
    // child blocked on a full pipe never exits (regression: the check hung at 90 s).
    let drain = |mut r: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if start.elapsed() > Duration::from_secs(90) {
            let _ = child.kill();
            panic!("chromium did not finish within 90 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    (out.join().unwrap(), err.join().unwrap())
}

/// Console messages the page itself caused (chromium logs them as `CONSOLE(line)`), and
/// resources it failed to load.
fn page_errors(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter(|l| {
            l.contains(":CONSOLE")
                || l.contains("Uncaught")
                || l.contains("Failed to load resource")
        })
        .map(str::to_string)
        .collect()
}

#[test]
fn report_html_renders_in_headless_chromium_with_charts_and_no_console_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let manifest = scoring_fixture::write_dataset(&tmp.path().join("data"));
    let preds = tmp.path().join("p.jsonl");
    scoring_fixture::write_predictions(&preds, false);
    // Confidences spread over (0, 1), so that the calibration section and its two charts
    // render too.
    let with_confidence: Vec<String> = std::fs::read_to_string(&preds)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["confidence"] = serde_json::json!(((i * 37) % 100) as f64 / 100.0);
            v.to_string()
        })
        .collect();
    std::fs::write(&preds, with_confidence.join("\n")).unwrap();
    let out = tmp.path().join("run");
    let o = common::run(&[
        "score",
        "--quiet",
        "--dataset",
        &format!("jsonl:{}", manifest.display()),
        "--predictions",
        preds.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--box-frame",
        "grid:1000",
        "--by",
        "type",
        "--model",
        "fixture responses",
        "--note",
        "responses are scripted to degrade with severity",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", common::stderr(&o));
    let html_path = out.join("report.html");
    let html = std::fs::read_to_string(&html_path).unwrap();
    assert!(html.matches("<svg class=\"chart\"").count() >= 5);
    assert!(
        html.contains("data:image/png;base64,"),
        "thumbnails missing"
    );

    let artifacts = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    for f in ["report.html", "report.json", "report.md", "summary.csv"] {
        std::fs::copy(out.join(f), artifacts.join(f)).unwrap();
    }

    let Some(bin) = chromium() else {
        return;
    };
    let url = format!("file://{}", html_path.display());
    let shot = artifacts.join("report.png");
    let _ = std::fs::remove_file(&shot);
    let (_, err) = run_chromium(
        &bin,
        &tmp.path().join("profile1"),
        &[
            format!("--screenshot={}", shot.display()),
            "--window-size=1280,2600".into(),
            "--hide-scrollbars".into(),
        ],
        &url,
    );
    assert!(
        page_errors(&err).is_empty(),
        "console errors: {:?}",
        page_errors(&err)
    );
    let png =
        std::fs::read(&shot).unwrap_or_else(|_| panic!("no screenshot; chromium said:\n{err}"));
    let img = image::load_from_memory(&png).unwrap();
    assert_eq!((img.width(), img.height()), (1280, 2600));

    let (dom, err) = run_chromium(
        &bin,
        &tmp.path().join("profile2"),
        &["--dump-dom".into()],
        &url,
    );
    assert!(
        page_errors(&err).is_empty(),
        "console errors: {:?}",
        page_errors(&err)
    );
    // The browser parsed the charts into SVG elements: polylines per perturbation, bars.
    assert!(
        dom.matches("<svg class=\"chart\"").count() >= 5,
        "charts missing from the DOM"
    );
    assert!(dom.contains("<polyline"), "no line chart in the DOM");
    assert!(dom.contains("class=\"bar\""), "no bar chart in the DOM");
    for id in [
        "overall",
        "severity",
        "groups",
        "worst",
        "robustness",
        "calibration",
        "examples",
    ] {
        assert!(
            dom.contains(&format!("id=\"{id}\"")),
            "section {id} missing"
        );
    }
    eprintln!("screenshot: {}", shot.display());
}
