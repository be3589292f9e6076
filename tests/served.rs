#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `medvqa eval` and `medvqa ask` against a served model: a chat-completions server on
//! loopback (tests/support/chat_server.rs), started by each test, scripted to answer, to fail
//! in every way a serving engine fails, and to log exactly what it was sent.

#[path = "support/chat_server.rs"]
mod chat_server;
mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chat_server::{ChatServer, Reply, Seen, answer_for, pixel_digest};
use common::{medvqa, stderr, stdout};
use serde_json::Value;

const KEY_VAR: &str = "MEDVQA_TEST_SERVED_KEY";
const KEY: &str = "sk-test-0123456789abcdef-SECRET";

/// A served-model config on the phantom sets.
fn config(dir: &Path, url: &str, n: usize, model_extra: &str) -> PathBuf {
    let text = format!(
        r#"
[run]
out = "{out}"
seed = 3

[dataset]
spec = "phantom:all"
seed = 7
n = {n}

[model]
backend = "openai"
url = "{url}"
model = "test/served-vlm"
api_key_env = "{KEY_VAR}"
box_frame = "normalized"
max_tokens = 16
{model_extra}

[perturb]
perturbations = ["gaussian-noise", "frame-shuffle"]
severities = "2"

[score]
bootstrap = 100
"#,
        out = dir.join("run").display(),
    );
    let path = dir.join("served.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn eval(cfg: &Path) -> std::process::Output {
    medvqa()
        .args(["eval", "--quiet", "--config", cfg.to_str().unwrap()])
        .env(KEY_VAR, KEY)
        .output()
        .unwrap()
}

fn records(run: &Path) -> Vec<Value> {
    std::fs::read_to_string(run.join("predictions.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Files under `dir`, relative, sorted.
fn files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// (question, image digests) → how many requests carried them.
type Carried = BTreeMap<(String, Vec<String>), usize>;

/// What `medvqa perturb` writes for the same dataset, perturbations and seed: the images
/// every condition should show the model.
fn exported(dir: &Path) -> Carried {
    let out = dir.join("export");
    let o = medvqa()
        .args([
            "perturb",
            "--quiet",
            "--dataset",
            "phantom:all",
            "--dataset-seed",
            "7",
            "--dataset-n",
            "2",
            "--perturbation",
            "gaussian-noise,frame-shuffle",
            "--severity",
            "0,2",
            "--seed",
            "3",
            "--out",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let mut want = Carried::new();
    let manifest = std::fs::read_to_string(out.join("manifest.jsonl")).unwrap();
    for line in manifest.lines().skip(1) {
        let v: Value = serde_json::from_str(line).unwrap();
        let images = v["images"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| pixel_digest(&image::open(out.join(p.as_str().unwrap())).unwrap()))
            .collect();
        let q = v["question"].as_str().unwrap().trim().to_string();
        *want.entry((q, images)).or_default() += 1;
    }
    want
}

fn carried(log: &[Seen]) -> Carried {
    let mut got = Carried::new();
    for s in log {
        *got.entry((s.question().to_string(), s.images.clone()))
            .or_default() += 1;
    }
    got
}

#[test]
fn a_served_run_sends_exactly_the_perturbed_images_and_writes_the_onnx_reports() {
    let tmp = tempfile::tempdir().unwrap();
    let server = ChatServer::start(
        |s| match s.authorization.as_deref() {
            Some(a) if a == format!("Bearer {KEY}") => Reply::Answer(answer_for(s)),
            _ => Reply::Status {
                code: 401,
                message: "no key".into(),
                retry_after: None,
            },
        },
        |_| Duration::ZERO,
    );
    let cfg = config(tmp.path(), &server.url(), 2, "max_concurrency = 3");
    let o = eval(&cfg);
    assert!(o.status.success(), "{}", stderr(&o));
    let served_out = o;
    let run = tmp.path().join("run");
    let recs = records(&run);
    let log = server.log();

    // One request per prediction, each answered, all with the model name and the key.
    assert!(!recs.is_empty());
    assert_eq!(log.len(), recs.len());
    assert!(recs.iter().all(|r| r["response"].is_string()), "{recs:?}");
    assert!(log.iter().all(|s| s.model == "test/served-vlm"));
    assert!(
        log.iter()
            .all(|s| s.body["temperature"] == 0.0 && s.body["max_tokens"] == 16)
    );

    // Every condition's images, in order, pixel for pixel what `medvqa perturb` writes.
    assert_eq!(carried(&log), exported(tmp.path()));
    // Frame questions carry several images; a shuffled order reaches the server shuffled.
    assert!(log.iter().any(|s| s.images.len() > 1));

    // The same report files as an ONNX run of the same plan.
    let onnx_dir = tmp.path().join("onnx");
    std::fs::create_dir_all(&onnx_dir).unwrap();
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models/idefics3");
    let onnx_cfg = onnx_dir.join("onnx.toml");
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        &tmp.path().join("run").display().to_string(),
        &onnx_dir.join("run").display().to_string(),
    );
    let model_section = format!(
        "[model]\npath = \"{}\"\nrandom_weights = true\nmax_new_tokens = 4\n",
        model.display()
    );
    let start = text.find("[model]").unwrap();
    let end = text.find("[perturb]").unwrap();
    std::fs::write(
        &onnx_cfg,
        format!("{}{}\n{}", &text[..start], model_section, &text[end..]),
    )
    .unwrap();
    let o = medvqa()
        .args(["eval", "--quiet", "--config", onnx_cfg.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(files(&run), files(&onnx_dir.join("run")));

    // Usage in timing.json; the header says what the model saw.
    let timing = json(&run.join("timing.json"));
    let served = &timing["served"];
    assert_eq!(served["requests"], recs.len());
    assert_eq!(served["answered"], recs.len());
    assert_eq!(served["retries"], 0);
    assert!(
        stdout(&served_out).contains(&format!("served: {} requests (0 retries)", recs.len())),
        "{}",
        stdout(&served_out)
    );
    assert_eq!(served["prompt_tokens"], 100 * recs.len());
    assert!(served["latency_ms"]["p50"].as_f64().unwrap() >= 0.0);
    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(report.contains("test/served-vlm"), "{report}");
    assert!(report.contains("lossless PNG"), "{report}");
    assert!(server.max_in_flight() <= 3);
}

#[test]
fn faults_lose_nothing_retry_what_is_worth_retrying_and_never_exceed_the_limit() {
    let tmp = tempfile::tempdir().unwrap();
    // First attempts meet the faults in turn (429, 503, a stall past the timeout, a dropped
    // connection, then two answers); later attempts are answered. Two questions always fail:
    // one refused (400), one malformed.
    let met = std::sync::Arc::new(std::sync::Mutex::new(BTreeMap::<&str, usize>::new()));
    let firsts = std::sync::atomic::AtomicUsize::new(0);
    let tally = met.clone();
    let server = ChatServer::start(
        move |s| {
            let q = s.question();
            if q.contains("pneumothorax") {
                return Reply::Status {
                    code: 400,
                    message: "At most 0 image(s) may be provided in one request.".into(),
                    retry_after: None,
                };
            }
            if q.contains("colour") {
                return Reply::Malformed;
            }
            if s.attempt > 1 {
                return Reply::Answer(answer_for(s));
            }
            let i = firsts.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let (name, reply) = match i % 6 {
                0 => (
                    "429",
                    Reply::Status {
                        code: 429,
                        message: "rate limited".into(),
                        retry_after: Some(1),
                    },
                ),
                1 => (
                    "503",
                    Reply::Status {
                        code: 503,
                        message: "overloaded".into(),
                        retry_after: None,
                    },
                ),
                2 => ("stall", Reply::Stall(Duration::from_secs(3))),
                3 => ("drop", Reply::Drop),
                _ => ("answer", Reply::Answer(answer_for(s))),
            };
            *tally.lock().unwrap().entry(name).or_default() += 1;
            reply
        },
        |_| Duration::from_millis(5),
    );
    let cfg = config(
        tmp.path(),
        &server.url(),
        2,
        "max_concurrency = 4\ntimeout_s = 1\nmax_retries = 3\nretry_backoff_s = 0.05",
    );
    let t = Instant::now();
    let o = eval(&cfg);
    let took = t.elapsed();
    // Failed samples give exit code 3, with a report.
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let run = tmp.path().join("run");
    let recs = records(&run);
    let planned = json(&run.join("report.json"));
    let log = server.log();

    // Nothing lost: each planned prediction is answered or failed with its reason.
    assert_eq!(planned["counts"]["missing"], 0);
    let failed: Vec<&Value> = recs.iter().filter(|r| r["error"].is_string()).collect();
    assert!(
        recs.iter()
            .all(|r| r["response"].is_string() != r["error"].is_string())
    );
    assert!(!failed.is_empty());
    for r in &failed {
        let e = r["error"].as_str().unwrap();
        assert!(
            e.contains("HTTP 400: At most 0 image(s)") || e.contains("not JSON"),
            "{e}"
        );
    }
    // A refused request is not repeated; every other fault is, until it is answered.
    let refused: Vec<&Seen> = log
        .iter()
        .filter(|s| s.question().contains("pneumothorax"))
        .collect();
    assert!(!refused.is_empty() && refused.iter().all(|s| s.attempt == 1));
    let answered = recs.iter().filter(|r| r["response"].is_string()).count();
    assert!(answered > 0);
    let timing = json(&run.join("timing.json"));
    assert!(
        timing["served"]["retries"].as_u64().unwrap() > 0,
        "{timing}"
    );
    assert_eq!(timing["served"]["requests"], log.len());
    assert!(
        planned["counts"]["failures"].as_u64().unwrap() >= failed.len() as u64,
        "{}",
        planned["counts"]
    );

    // Every kind of fault happened; each was retried to an answer, since the only failures
    // (checked above) are the refused and the malformed ones.
    let met = met.lock().unwrap().clone();
    for kind in ["429", "503", "stall", "drop"] {
        assert!(met.get(kind).copied().unwrap_or(0) > 0, "{kind}: {met:?}");
    }

    // The limit holds, stalled requests included.
    assert!(server.max_in_flight() <= 4, "{}", server.max_in_flight());
    assert!(took < Duration::from_secs(120), "{took:?}");
}

#[test]
fn a_killed_served_run_resumes_to_the_report_of_an_unbroken_one_whatever_the_reply_order() {
    let tmp = tempfile::tempdir().unwrap();
    // Unbroken: replies come back out of order (each waits 0-40 ms, by its content).
    let jittered = ChatServer::start(
        |s| Reply::Answer(answer_for(s)),
        |s| {
            let d = s.images.first().map_or(0, |d| d.as_bytes()[1] as u64);
            Duration::from_millis((d * 7 + s.text.len() as u64) % 41)
        },
    );
    let whole = tmp.path().join("whole");
    std::fs::create_dir_all(&whole).unwrap();
    let o = eval(&config(&whole, &jittered.url(), 3, "max_concurrency = 8"));
    assert!(o.status.success(), "{}", stderr(&o));

    // Killed: in order, slowly, and SIGKILLed once some predictions are stored.
    let steady = ChatServer::start(
        |s| Reply::Answer(answer_for(s)),
        |_| Duration::from_millis(40),
    );
    let killed = tmp.path().join("killed");
    std::fs::create_dir_all(&killed).unwrap();
    let cfg = config(&killed, &steady.url(), 3, "max_concurrency = 2");
    let store = killed.join("run/predictions.jsonl");
    let mut child = medvqa()
        .args(["eval", "--quiet", "--config", cfg.to_str().unwrap()])
        .env(KEY_VAR, KEY)
        .spawn()
        .unwrap();
    let t = Instant::now();
    while std::fs::read_to_string(&store).map_or(0, |s| s.lines().count()) == 0 {
        assert!(t.elapsed() < Duration::from_secs(60), "nothing stored");
        assert!(
            child.try_wait().unwrap().is_none(),
            "finished before the kill"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let partial = std::fs::read_to_string(&store).unwrap().lines().count();
    let total = records(&whole.join("run")).len();
    assert!(
        partial < total,
        "killed after {partial} of {total}: too late"
    );
    let o = eval(&cfg);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains(&format!("({partial} reused from the store)")),
        "{}",
        stdout(&o)
    );
    assert_eq!(
        std::fs::read(killed.join("run/report.json")).unwrap(),
        std::fs::read(whole.join("run/report.json")).unwrap()
    );
    // Each prediction asked once, except those in flight at the kill.
    assert!(
        steady.log().len() <= total + 2 * 4,
        "{}",
        steady.log().len()
    );
}

#[test]
fn the_api_key_never_leaks_even_when_a_server_echoes_it() {
    let tmp = tempfile::tempdir().unwrap();
    let server = ChatServer::start(
        |s| {
            if s.question().contains("pneumothorax") {
                Reply::Status {
                    code: 400,
                    message: format!(
                        "bad request from {}",
                        s.authorization.clone().unwrap_or_default()
                    ),
                    retry_after: None,
                }
            } else {
                Reply::Answer(answer_for(s))
            }
        },
        |_| Duration::ZERO,
    );
    let cfg = config(tmp.path(), &server.url(), 2, "");
    let o = eval(&cfg);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        server
            .log()
            .iter()
            .all(|s| s.authorization.as_deref() == Some(&format!("Bearer {KEY}")))
    );
    let run = tmp.path().join("run");
    let mut texts = vec![stdout(&o), stderr(&o)];
    for f in files(&run) {
        texts.push(String::from_utf8_lossy(&std::fs::read(run.join(&f)).unwrap()).into_owned());
    }
    for t in &texts {
        assert!(
            !t.contains(KEY) && !t.contains("0123456789abcdef"),
            "the key leaked: {t}"
        );
    }
    let recs = records(&run);
    assert!(
        recs.iter().any(|r| r["error"]
            .as_str()
            .is_some_and(|e| e.contains("Bearer [API key]"))),
        "{recs:?}"
    );
    let resolved = std::fs::read_to_string(run.join("config.resolved.toml")).unwrap();
    assert!(resolved.contains(KEY_VAR));

    // No key in the environment: one clear line naming the variable, nothing written.
    let empty = tmp.path().join("nokey");
    std::fs::create_dir_all(&empty).unwrap();
    let cfg = config(&empty, &server.url(), 1, "");
    let o = medvqa()
        .args(["eval", "--quiet", "--config", cfg.to_str().unwrap()])
        .env_remove(KEY_VAR)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains(KEY_VAR), "{}", stderr(&o));
    assert!(!empty.join("run").exists());
}

#[test]
fn ask_answers_through_a_served_model() {
    let tmp = tempfile::tempdir().unwrap();
    let server = ChatServer::answering();
    let png = tmp.path().join("x.png");
    let img = image::RgbImage::from_fn(40, 30, |x, y| image::Rgb([x as u8 * 6, y as u8 * 8, 90]));
    img.save(&png).unwrap();
    let o = medvqa()
        .args([
            "ask",
            "--url",
            &server.url(),
            "--served-model",
            "test/served-vlm",
            "--image",
            png.to_str().unwrap(),
            "--kind",
            "single_choice",
            "--option",
            "a polyp",
            "--option",
            "no polyp",
            "What does the image show?",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).starts_with("A\n"), "{}", stdout(&o));
    assert!(stdout(&o).contains("extracted: A"), "{}", stdout(&o));
    let log = server.log();
    assert_eq!(log.len(), 1);
    assert_eq!(
        log[0].images,
        vec![pixel_digest(&image::DynamicImage::ImageRgb8(img))]
    );
    assert!(log[0].text.contains("A. a polyp\nB. no polyp"));

    // A grounding question needs a declared frame.
    let o = medvqa()
        .args([
            "ask",
            "--url",
            &server.url(),
            "--served-model",
            "m",
            "--image",
            png.to_str().unwrap(),
            "--kind",
            "grounding",
            "Where is the polyp?",
        ])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--box-frame"), "{}", stderr(&o));
}

#[test]
fn the_configured_prompt_is_sent_and_is_part_of_the_store_key() {
    let tmp = tempfile::tempdir().unwrap();
    let server = ChatServer::answering();
    let cfg = config(tmp.path(), &server.url(), 1, "");
    let o = eval(&cfg);
    assert!(o.status.success(), "{}", stderr(&o));
    let first = server.log().len();
    assert!(first > 0);
    assert!(
        server
            .log()
            .iter()
            .all(|s| s.body["messages"].as_array().unwrap().len() == 1)
    );

    // A system message and the images after the text: every prediction is asked again.
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str(
        "\n[prompt]\nsystem = \"Answer as a radiologist.\"\nimages = \"last\"\n[prompt.instructions]\nopen = \"\"\n",
    );
    std::fs::write(&cfg, text).unwrap();
    let o = eval(&cfg);
    assert!(
        o.status.success(),
        "{:?} {}{}",
        o.status,
        stdout(&o),
        stderr(&o)
    );
    assert!(
        stdout(&o).contains("(0 reused from the store)"),
        "{}",
        stdout(&o)
    );
    let log = server.log();
    assert_eq!(log.len(), 2 * first);
    for s in &log[first..] {
        let m = s.body["messages"].as_array().unwrap();
        assert_eq!(m[0]["role"], "system");
        assert_eq!(m[0]["content"], "Answer as a radiologist.");
        let content = m[1]["content"].as_array().unwrap();
        assert_eq!(content[0]["type"], "text");
        assert!(content[1..].iter().all(|c| c["type"] == "image_url"));
    }
    let report = std::fs::read_to_string(tmp.path().join("run/report.md")).unwrap();
    assert!(
        report.contains("prompt from the config's [prompt]"),
        "{report}"
    );
}

/// A judge: correct when the response contains the reference, unparsed for colour
/// questions, from the user text the judge prompt writes.
fn judge_reply(s: &Seen) -> Reply {
    let field = |name: &str| {
        s.text
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or("")
            .trim()
            .to_lowercase()
    };
    if field("Question:").contains("colour") {
        return Reply::Answer("I cannot tell.".into());
    }
    let right = field("Model response:").contains(&field("Reference answer:"));
    Reply::Answer(format!("```json\n{{\"correct\": {right}}}\n```"))
}

#[test]
fn an_llm_judge_grades_open_answers_once_and_caches_its_verdicts() {
    let tmp = tempfile::tempdir().unwrap();
    let model = ChatServer::answering();
    let judge = ChatServer::start(judge_reply, |_| Duration::ZERO);
    let cfg = config(tmp.path(), &model.url(), 2, "");
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str(&format!(
        "\n[score.judge]\nurl = \"{}\"\nmodel = \"judge-m\"\nmax_concurrency = 2\n",
        judge.url()
    ));
    std::fs::write(&cfg, text).unwrap();
    let o = eval(&cfg);
    assert!(o.status.success(), "{}", stderr(&o));
    let run = tmp.path().join("run");
    let asked = judge.log().len();
    assert!(asked > 0);
    assert!(judge.log().iter().all(|s| s.model == "judge-m"
        && s.body["temperature"] == 0
        && s.body["messages"][0]["role"] == "system"));
    // One line per verdict asked; every open record graded.
    let cache = std::fs::read_to_string(run.join("judgements.jsonl")).unwrap();
    assert_eq!(cache.lines().count(), asked, "{cache}");
    let scored: Vec<Value> = std::fs::read_to_string(run.join("scored.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let open: Vec<&Value> = scored.iter().filter(|s| s["kind"] == "open").collect();
    assert!(!open.is_empty());
    for s in &open {
        let q = s["question"].as_str().unwrap();
        if q.contains("colour") {
            assert_eq!(s["judge"], "unparsed", "{s}");
            assert!(s["metrics"].get("judge").is_none());
        } else {
            let v = s["metrics"]["judge"].as_f64().unwrap();
            let right = s["response"]
                .as_str()
                .unwrap()
                .to_lowercase()
                .contains(&s["reference"].as_str().unwrap().to_lowercase());
            assert_eq!(v, if right { 1.0 } else { 0.0 }, "{s}");
        }
    }
    assert!(
        scored
            .iter()
            .filter(|s| s["kind"] != "open")
            .all(|s| s.get("judge").is_none())
    );
    let report = json(&run.join("report.json"));
    assert!(
        report["overall"]["judge"]["n"].as_u64().unwrap() > 0,
        "{}",
        report["overall"]
    );
    let agreement = &report["judge_agreement"];
    assert!(agreement["unparsed"].as_u64().unwrap() > 0);
    assert_eq!(agreement["rows"][0]["metric"], "exact_match");
    assert!(
        std::fs::read_to_string(run.join("report.md"))
            .unwrap()
            .contains("## LLM judge")
    );

    // A rerun asks the judge nothing and reports the same bytes.
    let before = std::fs::read(run.join("report.json")).unwrap();
    let o = eval(&cfg);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(judge.log().len(), asked);
    assert_eq!(std::fs::read(run.join("report.json")).unwrap(), before);

    // `medvqa score` grades external predictions with the same judge, into its own cache.
    let preds = tmp.path().join("preds.jsonl");
    let lines: String = records(&run)
        .iter()
        .filter(|r| r["perturbation"].is_null())
        .map(|r| {
            format!(
                "{}\n",
                serde_json::json!({"id": r["id"], "response": r["response"]})
            )
        })
        .collect();
    std::fs::write(&preds, lines).unwrap();
    let out = tmp.path().join("scored");
    let o = medvqa()
        .args([
            "score",
            "--quiet",
            "--dataset",
            "phantom:all",
            "--dataset-seed",
            "7",
            "--dataset-n",
            "2",
            "--predictions",
            preds.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--judge-url",
            &judge.url(),
            "--judge-model",
            "judge-m",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    // Its own cache: each distinct (question, reference, response) of the clean open
    // answers asked once more.
    let more = judge.log().len() - asked;
    assert!(more > 0);
    let cache = std::fs::read_to_string(out.join("judgements.jsonl")).unwrap();
    assert_eq!(cache.lines().count(), more);
    let report = json(&out.join("report.json"));
    assert!(report["overall"]["judge"]["n"].as_u64().unwrap() > 0);
    assert!(out.join("judgements.jsonl").is_file());
}

#[test]
fn served_shards_merge_into_the_unsharded_report_and_compare_works() {
    let tmp = tempfile::tempdir().unwrap();
    let server = ChatServer::answering();
    let cfg = config(tmp.path(), &server.url(), 2, "max_concurrency = 4");
    let o = eval(&cfg);
    assert!(o.status.success(), "{}", stderr(&o));
    let whole = tmp.path().join("run/report.json");
    let mut shards = Vec::new();
    for i in 0..2 {
        let dir = tmp.path().join(format!("shard{i}"));
        let o = medvqa()
            .args(["eval", "--quiet", "--config", cfg.to_str().unwrap()])
            .args(["--shard", &format!("{i}/2"), "--out", dir.to_str().unwrap()])
            .env(KEY_VAR, KEY)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        shards.push(dir);
    }
    // merge needs no key: it asks nothing.
    let merged = tmp.path().join("merged");
    let asked = server.log().len();
    let o = medvqa()
        .args(["merge", "--quiet", "--out", merged.to_str().unwrap()])
        .args(shards.iter().map(|d| d.to_str().unwrap()))
        .env_remove(KEY_VAR)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(server.log().len(), asked);
    assert_eq!(
        std::fs::read(merged.join("report.json")).unwrap(),
        std::fs::read(&whole).unwrap()
    );
    // And compare pairs the served run with the merged one.
    let o = medvqa()
        .args(["compare", "--quiet"])
        .arg(tmp.path().join("run"))
        .arg(&merged)
        .args(["--out", tmp.path().join("cmp").to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
}
