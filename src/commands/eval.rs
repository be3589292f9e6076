//! `medvqa eval` and `medvqa merge`: a config plus command-line overrides, handed to
//! [`crate::pipeline`].

use std::fmt::Write as _;

use anyhow::Context;

use super::{Outcome, out};
use crate::cli::{EvalArgs, MergeArgs};
use crate::config::Config;
use crate::pipeline::{self, EvalOptions, EvalSummary};

/// The config file (or, without one, `--dataset` and `--model`) with the flags applied.
fn resolve(a: &EvalArgs) -> anyhow::Result<Config> {
    let mut c = match (&a.config, &a.data.dataset, &a.model) {
        (Some(file), _, _) => Config::from_file(file)?,
        (None, Some(spec), Some(model)) => {
            Config::minimal(spec, model).map_err(anyhow::Error::msg)?
        }
        _ => anyhow::bail!("eval needs --config FILE, or --dataset SPEC and --model DIR"),
    };
    if let Some(v) = &a.out {
        c.run.out = v.clone();
    }
    let d = &a.data;
    if let Some(v) = &d.dataset {
        c.dataset.spec = v.clone();
    }
    if let Some(v) = &d.image_root {
        c.dataset.image_root = Some(v.clone());
    }
    if let Some(v) = d.dataset_box_frame {
        c.dataset.box_frame = Some(v);
    }
    if let Some(v) = d.max_pixels {
        c.dataset.max_pixels = v;
    }
    if let Some(v) = d.dataset_seed {
        c.dataset.seed = v;
    }
    if let Some(v) = d.dataset_n {
        c.dataset.n = Some(v);
    }
    if !d.select.filter.is_empty() {
        c.dataset.filter = d.select.filter.clone();
    }
    if let Some(v) = d.select.sample {
        c.dataset.sample = Some(v);
        c.dataset.sample_seed = d.select.sample_seed;
    }
    if let Some(v) = d.select.limit {
        c.run.limit = Some(v);
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
        c.model.device = *v;
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
        c.run.shard = Some(*v);
    }
    if a.semantic {
        c.score.semantic = true;
    }
    c.validate().map_err(anyhow::Error::msg)?;
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
    .with_context(|| match &a.config {
        Some(file) => format!(
            "eval with {} (its relative paths resolve against {})",
            file.display(),
            folder_of(file)
        ),
        None => "eval".to_string(),
    })?;
    finish(&summary)
}

/// A config file's folder as an error names it (`./` for the current one).
fn folder_of(file: &std::path::Path) -> String {
    match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => format!("{}/", p.display()),
        _ => "./".to_string(),
    }
}

/// The config the shards ran with, from their `config.resolved.toml`: they must agree
/// except for `run.out` and `run.shard`, which differ by design.
fn shards_config(runs: &[std::path::PathBuf]) -> anyhow::Result<Config> {
    let mut first: Option<(std::path::PathBuf, Config)> = None;
    for run in runs {
        let path = run.join("config.resolved.toml");
        let mut c = Config::from_file(&path).with_context(|| {
            format!(
                "{} has no readable config; pass --config FILE",
                run.display()
            )
        })?;
        c.run.out = std::path::PathBuf::new();
        c.run.shard = None;
        match &first {
            None => first = Some((path, c)),
            Some((p0, c0)) if *c0 != c => anyhow::bail!(
                "the shards ran with different configs: {} and {} differ beyond run.out and run.shard; pass --config FILE to merge anyway",
                p0.display(),
                path.display()
            ),
            Some(_) => {}
        }
    }
    first
        .map(|(_, c)| c)
        .ok_or_else(|| anyhow::anyhow!("no shard run folders given"))
}

pub fn merge(a: &MergeArgs, quiet: bool, threads: Option<usize>) -> anyhow::Result<Outcome> {
    let mut cfg = match &a.config {
        Some(file) => Config::from_file(file)?,
        None => shards_config(&a.runs)?,
    };
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
