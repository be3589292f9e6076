//! `medvqa merge`: shards' stores joined into one run folder, then scored and reported
//! from the store as `eval --report-only` would.

use std::path::{Path, PathBuf};

use super::{EvalOptions, EvalSummary, RunError, eval};
use crate::config::Config;
use crate::store::{self, Record, Store};

/// What `merge` is asked: the shards' run folders, and optionally the config and folder.
#[derive(Debug, Clone, Default)]
pub struct MergeRequest {
    pub runs: Vec<PathBuf>,
    /// The config to report with; default: the shards' own `config.resolved.toml`.
    pub config: Option<PathBuf>,
    pub out: Option<PathBuf>,
    /// Merge shards whose dataset fingerprints differ.
    pub force: bool,
}

/// What `merge` did before reporting: predictions added, and duplicate keys ignored.
#[derive(Debug)]
pub struct Merged {
    pub added: usize,
    pub duplicates: usize,
    pub summary: EvalSummary,
}

/// Joins the shards' stores into the output folder and reports from it. `notes` gets the
/// fingerprint checks' remarks as they come.
pub fn merge(
    req: &MergeRequest,
    opts: &EvalOptions,
    notes: &mut dyn FnMut(&str),
) -> Result<Merged, RunError> {
    let mut cfg = match &req.config {
        Some(file) => Config::from_file(file)?,
        None => shards_config(&req.runs)?,
    };
    if let Some(o) = &req.out {
        cfg.run.out = o.clone();
    }
    cfg.run.shard = None;
    if let Some((first, rest)) = req.runs.split_first() {
        for r in rest {
            for note in
                crate::fingerprint::check_pair(first, r, req.force).map_err(RunError::Usage)?
            {
                notes(&note);
            }
        }
    }
    // Held through the report `eval` builds (the lock is re-entrant in one process).
    let _lock = super::lock::acquire(&cfg.run.out)?;
    let (added, duplicates) = merge_stores(&cfg.run.out, &req.runs)?;
    let summary = eval(
        &cfg,
        &EvalOptions {
            report_only: true,
            ..opts.clone()
        },
    )?;
    Ok(Merged {
        added,
        duplicates,
        summary,
    })
}

/// The config the shards ran with, from their `config.resolved.toml`: they must agree
/// except for `run.out` and `run.shard`, which differ by design.
pub fn shards_config(runs: &[PathBuf]) -> Result<Config, RunError> {
    let mut first: Option<(PathBuf, Config)> = None;
    for run in runs {
        let path = run.join("config.resolved.toml");
        let mut c = Config::from_file(&path).map_err(|e| {
            RunError::Usage(format!(
                "{} has no readable config ({}); pass --config FILE",
                run.display(),
                crate::failure::error_chain(&e)
            ))
        })?;
        c.run.out = PathBuf::new();
        c.run.shard = None;
        match &first {
            None => first = Some((path, c)),
            Some((p0, c0)) if *c0 != c => {
                return Err(RunError::Usage(format!(
                    "the shards ran with different configs: {} and {} differ beyond run.out and run.shard; pass --config FILE to merge anyway",
                    p0.display(),
                    path.display()
                )));
            }
            Some(_) => {}
        }
    }
    first
        .map(|(_, c)| c)
        .ok_or_else(|| RunError::Usage("no shard run folders given".into()))
}

/// `medvqa merge`: the union of several run folders' stores, deduplicated by key, written
/// to `out/predictions.jsonl` (existing records kept).
pub fn merge_stores(out: &Path, runs: &[PathBuf]) -> Result<(usize, usize), RunError> {
    std::fs::create_dir_all(out).map_err(|source| RunError::RunFolder {
        path: out.to_path_buf(),
        source,
    })?;
    let (mut store, _, _) = Store::open(&out.join("predictions.jsonl"))?;
    let mut added = 0;
    let mut dups = 0;
    for dir in runs {
        let (records, stats) = store::read(&dir.join("predictions.jsonl"))?;
        dups += stats.duplicates;
        let fresh: Vec<Record> = records
            .into_iter()
            .filter(|r| !store.is_done(&r.key))
            .collect();
        added += fresh.len();
        store.append(&fresh)?;
    }
    Ok((added, dups))
}
