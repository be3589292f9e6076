//! `medvqa score`: score external predictions (e.g. from an API model) against a dataset
//! and write the run folder: report.json, report.md, report.html, summary.csv,
//! scored.jsonl, rejected.jsonl, timing.json. The work is [`crate::run::score_predictions`].

use std::fmt::Write as _;

use anyhow::Context;

use super::{Outcome, out};
use crate::cli::{PredFrameArg, ScoreArgs};
use crate::run::{self, ScoreRequest};

pub fn run(a: &ScoreArgs, _quiet: bool) -> anyhow::Result<Outcome> {
    let req = ScoreRequest {
        dataset: a.data.source(),
        predictions: a.predictions.clone(),
        out: a.out.clone(),
        box_frame: match a.box_frame {
            PredFrameArg::Dataset => None,
            PredFrameArg::Frame(f) => Some(f),
        },
        grounding: a.grounding,
        model: a.model.clone(),
        by: a.by.clone(),
        bootstrap: a.bootstrap,
        bootstrap_seed: a.bootstrap_seed,
        notes: a.notes.clone(),
        semantic: a.semantic,
        semantic_model: a.semantic_model.clone(),
        cluster: a.cluster.clone(),
        judge: match (&a.judge_url, &a.judge_model) {
            (Some(url), Some(model)) => Some(crate::run::judge::JudgeSettings {
                url: url.clone(),
                model: model.clone(),
                api_key_env: a.judge_key_env.clone(),
                max_concurrency: a.judge_concurrency.max(1),
                retry: Default::default(),
            }),
            _ => None,
        },
    };
    let s =
        run::score_predictions(&req).with_context(|| format!("score into {}", a.out.display()))?;
    for f in s.load_failures.iter().chain(&s.runs.failures) {
        eprintln!("failed: {f}");
    }
    for r in &s.runs.rejected {
        let at = r
            .location
            .as_deref()
            .map(|l| format!("{l} "))
            .unwrap_or_default();
        eprintln!(
            "rejected: {at}{}: {}",
            r.id.as_deref().unwrap_or("(no id)"),
            r.reason
        );
    }
    for (cond, ids) in &s.runs.missing {
        let first: Vec<&str> = ids.iter().take(5).map(String::as_str).collect();
        eprintln!(
            "missing: {} of {} samples have no {cond} prediction (first: {})",
            ids.len(),
            s.samples,
            first.join(", ")
        );
    }
    let r = &s.report;
    let c = &r.counts;
    let mut text = format!(
        "scored {} predictions ({} clean) on {} samples; {} rejected, {} failed, {} missing\n",
        c.scored, c.scored_clean, c.samples, c.rejected, c.failures, c.missing,
    );
    for n in r.header.notes.iter().filter(|n| n.starts_with("by:")) {
        let _ = writeln!(text, "  note: {n}");
    }
    text.push_str(&run::summary_text(r));
    let _ = writeln!(text, "reports in {}", a.out.display());
    out(&text)?;
    Ok(Outcome::from_failures(s.failed()))
}
