//! `medvqa eval` and `medvqa merge`: a config plus command-line overrides, handed to
//! [`crate::pipeline`].

use std::fmt::Write as _;

use anyhow::Context;

use super::{Outcome, out};
use crate::cli::{EvalArgs, MergeArgs};
use crate::config::Config;
use crate::pipeline::{self, EvalOptions, EvalSummary};

/// The config file with the flags applied.
fn resolve(a: &EvalArgs) -> anyhow::Result<Config> {
    let mut c = Config::from_file(&a.config)?;
    if let Some(v) = &a.out {
        c.run.out = v.clone();
    }
    if let Some(v) = &a.dataset {
        c.dataset.spec = v.clone();
    }
    if let Some(v) = &a.image_root {
        c.dataset.image_root = Some(v.clone());
    }
    // A flag overrides its own key only: `--model` keeps the config's `name` and
    // `random_weights` (and with them the report's random-weights warning).
    if let Some(v) = &a.model {
        c.model.path = v.clone();
    }
    if let Some(v) = &a.variant {
        c.model.variant = v.clone();
    }
    if let Some(v) = a.image_budget {
        c.model.image_budget = Some(v);
    }
    if let Some(v) = a.batch_size {
        c.model.batch_size = v;
    }
    if let Some(v) = a.sessions {
        c.model.sessions = v;
    }
    if let Some(v) = &a.device {
        c.model.device = v.clone();
    }
    if let Some(v) = a.max_new_tokens {
        c.model.max_new_tokens = Some(v);
    }
    if let Some(v) = &a.perturbation {
        c.perturb.perturbations = v.iter().filter(|n| n.as_str() != "none").cloned().collect();
    }
    if a.any_modality {
        c.perturb.any_modality = true;
    }
    if let Some(v) = &a.severity {
        c.perturb.severities = v.clone();
    }
    if let Some(v) = a.seed {
        c.run.seed = v;
    }
    if let Some(v) = &a.shard {
        c.run.shard = Some(v.clone());
    }
    if let Some(v) = a.limit {
        c.run.limit = Some(v);
    }
    if a.semantic {
        c.score.semantic = true;
    }
    Ok(c)
}

pub fn run(a: &EvalArgs, quiet: bool, threads: Option<usize>) -> anyhow::Result<Outcome> {
    let cfg = resolve(a)?;
    let summary = pipeline::run(
        &cfg,
        &EvalOptions {
            quiet,
            threads,
            report_only: a.report_only,
        },
    )
    .with_context(|| format!("eval with {}", a.config.display()))?;
    finish(&summary)
}

pub fn merge(a: &MergeArgs, quiet: bool, threads: Option<usize>) -> anyhow::Result<Outcome> {
    let mut cfg = Config::from_file(&a.config)?;
    if let Some(o) = &a.out {
        cfg.run.out = o.clone();
    }
    cfg.run.shard = None;
    if let Some((first, rest)) = a.runs.split_first() {
        for r in rest {
            for note in
                crate::fingerprint::check_pair(first, r, a.force).map_err(anyhow::Error::msg)?
            {
                eprintln!("{note}");
            }
        }
    }
    let (added, dups) = pipeline::merge_stores(&cfg.run.out, &a.runs)
        .with_context(|| format!("merging into {}", cfg.run.out.display()))?;
    if !quiet {
        eprintln!(
            "merge: {added} predictions from {} run folder(s){}",
            a.runs.len(),
            if dups > 0 {
                format!(" ({dups} duplicate keys ignored)")
            } else {
                String::new()
            }
        );
    }
    let summary = pipeline::run(
        &cfg,
        &EvalOptions {
            quiet,
            threads,
            report_only: true,
        },
    )?;
    finish(&summary)
}

fn finish(s: &EvalSummary) -> anyhow::Result<Outcome> {
    let r = &s.report;
    let mut text = String::new();
    let _ = writeln!(
        text,
        "answered {} predictions ({} reused from the store) in {:.1} s; {} failed; {} missing",
        s.answered, s.reused, s.timing.wall_seconds, s.failures, r.counts.missing
    );
    for n in &r.header.notes {
        let _ = writeln!(text, "  note: {n}");
    }
    let head = crate::report::headline_lines(r);
    if !head.is_empty() {
        let _ = writeln!(text, "headline, by question kind (clean):");
        for line in head {
            let _ = writeln!(text, "{line}");
        }
        let _ = writeln!(text, "every metric (clean, all kinds together):");
    }
    for (m, v) in &r.overall {
        let _ = writeln!(
            text,
            "  {m:<17} {:.4}  [{:.4}, {:.4}]  n={}",
            v.value, v.ci_low, v.ci_high, v.n
        );
    }
    if let Some(x) = r.robustness_summary.as_ref().and_then(|x| x.score) {
        let _ = writeln!(
            text,
            "  {:<17} {x:.4} (mean relative score over the track)",
            "robustness"
        );
    }
    let _ = writeln!(
        text,
        "unparsed (clean): {} answers, {} without boxes",
        r.unparsed.answer, r.unparsed.boxes
    );
    for line in crate::report::box_scope_lines(r) {
        let _ = writeln!(text, "{line}");
    }
    let _ = writeln!(text, "report: {}", s.out.join("report.html").display());
    out(&text)?;
    Ok(Outcome::from_failures(s.failures))
}
