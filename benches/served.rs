//! Throughput of `medvqa eval` against a served model: the loopback chat-completions server
//! of the tests (tests/support/chat_server.rs) answering every request after a fixed 200 ms,
//! as a model would, at concurrency 1, 4, 16 and 64.
//!
//! ```text
//! $ cargo bench --bench served                 # the table in BENCHMARKS.md
//! $ cargo bench --bench served -- --quick      # fewer predictions at concurrency 1
//! ```
//!
//! Each row is one whole `eval` into a fresh run folder. The answering phase (perturbing and
//! PNG-encoding the next step's images while this step's requests run, the requests, the
//! store) is timed apart from the run's fixed costs (load, plan, score, report). With a
//! latency L and concurrency c, a perfect client would answer c / L predictions per second;
//! the overhead per request is the answering time beyond N·L/c, spread over the N requests,
//! as one request sees it (× c). A row at zero latency gives the client's own cost. Not a criterion bench: one run of a few
//! hundred requests per row is the measurement, and criterion's repetitions would multiply
//! minutes of fixed latency for no better estimate.

#[path = "../tests/support/chat_server.rs"]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod chat_server;

use std::time::{Duration, Instant};

use chat_server::{ChatServer, Reply, answer_for};
use medvqa::config::Config;
use medvqa::run::{EvalOptions, eval};

fn config(out: &std::path::Path, url: &str, n: usize, concurrency: usize) -> Config {
    let text = format!(
        r#"
[run]
out = "{out}"
[dataset]
spec = "phantom:all"
seed = 7
n = {n}
[model]
backend = "openai"
url = "{url}"
model = "bench"
box_frame = "normalized"
max_concurrency = {concurrency}
[perturb]
perturbations = ["gaussian-noise"]
severities = "1..5"
[score]
bootstrap = 100
"#,
        out = out.display()
    );
    match Config::from_toml(&text) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("bench config: {e}");
            std::process::exit(1);
        }
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let latency = Duration::from_millis(200);
    let server = ChatServer::start_with(|s| Reply::Answer(answer_for(s)), move |_| latency, false);
    let instant =
        ChatServer::start_with(|s| Reply::Answer(answer_for(s)), |_| Duration::ZERO, false);
    let tmp = std::env::temp_dir().join(format!("medvqa-served-bench-{}", std::process::id()));
    println!(
        "| concurrency | latency | predictions | whole run (s) | answering (s) | predictions/s | ideal/s | share of ideal | overhead per request (ms) |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let rows: &[(usize, Duration, usize)] = &[
        (1, Duration::ZERO, 20),
        (1, latency, if quick { 4 } else { 20 }),
        (4, latency, 20),
        (16, latency, 20),
        (64, latency, 20),
        (64, Duration::ZERO, 20),
    ];
    for (i, &(c, lat, n)) in rows.iter().enumerate() {
        let url = if lat.is_zero() {
            instant.url()
        } else {
            server.url()
        };
        let out = tmp.join(format!("run{i}"));
        let cfg = config(&out, &url, n, c);
        let t = Instant::now();
        let summary = match eval(
            &cfg,
            &EvalOptions {
                quiet: true,
                threads: None,
                report_only: false,
            },
        ) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("eval failed: {e}");
                std::process::exit(1);
            }
        };
        let whole = t.elapsed().as_secs_f64();
        let stage = |k: &str| summary.timing.stages.get(k).copied().unwrap_or(0.0);
        // The answering loop: waiting on the server, waiting for images, and the store.
        let wall = stage("model") + stage("waiting_for_images") + stage("store");
        let n = summary.answered as f64;
        let ideal_wall = n * lat.as_secs_f64() / c as f64;
        let ideal = if lat.is_zero() {
            f64::NAN
        } else {
            c as f64 / lat.as_secs_f64()
        };
        let overhead_ms = (wall - ideal_wall) / n * c as f64 * 1e3;
        println!(
            "| {c} | {} ms | {} | {whole:.2} | {wall:.2} | {:.1} | {} | {} | {overhead_ms:.1} |",
            lat.as_millis(),
            summary.answered,
            n / wall,
            if ideal.is_nan() {
                "-".into()
            } else {
                format!("{ideal:.1}")
            },
            if ideal.is_nan() {
                "-".into()
            } else {
                format!("{:.0}%", 100.0 * (n / wall) / ideal)
            },
        );
    }
    let _ = std::fs::remove_dir_all(&tmp);
}
