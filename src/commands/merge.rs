//! `medvqa merge`: shards' run folders joined into one and reported
//! ([`crate::run::merge`]).

use anyhow::Context;

use super::Outcome;
use crate::cli::MergeArgs;
use crate::run::{self, EvalOptions, MergeRequest};

pub fn run(a: &MergeArgs, quiet: bool, threads: Option<usize>) -> anyhow::Result<Outcome> {
    let req = MergeRequest {
        runs: a.runs.clone(),
        config: a.config.clone(),
        out: a.out.clone(),
        force: a.force,
    };
    let opts = EvalOptions {
        quiet,
        threads,
        report_only: true,
    };
    let m = run::merge(&req, &opts, &mut |note| eprintln!("{note}")).context("merge")?;
    if !quiet {
        eprintln!(
            "merge: {} predictions from {} run folder(s){}",
            m.added,
            a.runs.len(),
            if m.duplicates > 0 {
                format!(" ({} duplicate keys ignored)", m.duplicates)
            } else {
                String::new()
            }
        );
    }
    super::eval::finish(&m.summary)
}
