//! `medvqa eval`: a config plus command-line overrides, handed to [`crate::run::eval`].

use std::fmt::Write as _;

use anyhow::Context;

use super::{Outcome, out};
use crate::cli::EvalArgs;
use crate::config::Config;
use crate::run::{self, EvalOptions, EvalSummary};

/// `slot` takes `v` when the flag was given.
fn over<T>(slot: &mut T, v: Option<T>) {
    if let Some(v) = v {
        *slot = v;
    }
}

/// The config file (or, without one, `--dataset` and `--model`) with the flags applied.
/// A flag overrides its own key only: `--model` keeps the config's `name` and
/// `random_weights` (and with them the report's random-weights warning).
fn resolve(a: &EvalArgs) -> anyhow::Result<Config> {
    let mut c = match (&a.config, &a.data.dataset, &a.model) {
        (Some(file), _, _) => Config::from_file(file)?,
        (None, Some(spec), Some(model)) => {
            Config::minimal(spec, model).map_err(anyhow::Error::msg)?
        }
        _ => anyhow::bail!("eval needs --config FILE, or --dataset SPEC and --model DIR"),
    };
    let (d, ds, m) = (&a.data, &mut c.dataset, &mut c.model);
    over(&mut c.run.out, a.out.clone());
    over(&mut ds.spec, d.dataset.clone());
    over(&mut ds.image_root, d.image_root.clone().map(Some));
    over(&mut ds.box_frame, d.dataset_box_frame.map(Some));
    over(&mut ds.max_pixels, d.max_pixels);
    over(&mut ds.dicom_window, d.dicom_window);
    over(&mut ds.seed, d.dataset_seed);
    over(&mut ds.n, d.dataset_n.map(Some));
    if !d.select.filter.is_empty() {
        ds.filter = d.select.filter.clone();
    }
    if let Some(v) = d.select.sample {
        ds.sample = Some(v);
        ds.sample_seed = d.select.sample_seed;
    }
    over(&mut c.run.limit, d.select.limit.map(Some));
    over(&mut c.run.image_cache_mib, a.image_cache_mib.map(Some));
    over(&mut m.path, a.model.clone());
    over(&mut m.variant, a.variant.clone());
    over(&mut m.image_budget, a.image_budget.map(Some));
    over(&mut m.batch_size, a.batch_size);
    over(&mut m.sessions, a.sessions);
    over(&mut m.device, a.device);
    over(&mut m.max_new_tokens, a.max_new_tokens.map(Some));
    let named = a
        .perturbation
        .as_ref()
        .map(|v| v.iter().filter(|n| n.as_str() != "none").cloned().collect());
    over(&mut c.perturb.perturbations, named);
    c.perturb.any_modality |= a.any_modality;
    over(&mut c.perturb.severities, a.severity.clone());
    over(&mut c.run.seed, a.seed);
    over(&mut c.run.shard, a.shard.map(Some));
    c.score.semantic |= a.semantic;
    c.validate().map_err(anyhow::Error::msg)?;
    Ok(c)
}

pub fn run(a: &EvalArgs, quiet: bool, threads: Option<usize>) -> anyhow::Result<Outcome> {
    let cfg = resolve(a)?;
    let opts = EvalOptions {
        quiet,
        threads,
        report_only: a.report_only,
    };
    let summary = run::eval(&cfg, &opts).with_context(|| match &a.config {
        Some(file) => format!(
            "eval with {} (its relative paths resolve against {})",
            file.display(),
            match file.parent() {
                Some(p) if !p.as_os_str().is_empty() => format!("{}/", p.display()),
                _ => "./".to_string(),
            }
        ),
        None => "eval".to_string(),
    })?;
    finish(&summary)
}

/// Prints what a finished `eval` or `merge` measured.
pub(super) fn finish(s: &EvalSummary) -> anyhow::Result<Outcome> {
    let r = &s.report;
    let mut text = format!(
        "answered {} predictions ({} reused from the store) in {:.1} s; {} failed; {} missing\n",
        s.answered, s.reused, s.timing.wall_seconds, s.failures, r.counts.missing
    );
    for n in &r.header.notes {
        let _ = writeln!(text, "  note: {n}");
    }
    if let Some(u) = &s.timing.served {
        let _ = writeln!(
            text,
            "served: {} requests ({} retries), {} answered, {} failed; {} prompt + {} completion tokens; latency p50 {:.0} ms, p90 {:.0} ms, p99 {:.0} ms{}",
            u.requests,
            u.retries,
            u.answered,
            u.failed,
            u.prompt_tokens,
            u.completion_tokens,
            u.latency_ms.p50,
            u.latency_ms.p90,
            u.latency_ms.p99,
            u.cost_usd
                .map(|c| format!("; cost ${c:.4} at the config's prices"))
                .unwrap_or_default()
        );
    }
    text.push_str(&run::summary_text(r));
    let _ = writeln!(text, "report: {}", s.out.join("report.html").display());
    out(&text)?;
    Ok(Outcome::from_failures(s.failures))
}
