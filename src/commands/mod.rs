//! What each subcommand does. `main.rs` maps the [`Outcome`] to an exit code; errors that
//! stop a command are `anyhow` here, at the edge, wrapping the library's typed errors.

mod ask;
mod compare;
mod datasets;
mod eval;
mod inspect;
mod merge;
mod perturb;
mod perturbations;
mod phantom;
mod score;

use std::io::Write;

use crate::cli::{Cli, Command, DatasetArgs};
use crate::data::Dataset;
use crate::data::select::Selected;

/// How a command that ran ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every sample went through.
    Clean,
    /// The command finished, but this many samples failed (each recorded with its reason).
    SamplesFailed(usize),
}

impl Outcome {
    pub fn from_failures(n: usize) -> Outcome {
        if n == 0 {
            Outcome::Clean
        } else {
            Outcome::SamplesFailed(n)
        }
    }
}

pub fn run(cli: Cli) -> anyhow::Result<Outcome> {
    if let Some(n) = cli.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n.max(1))
            .build_global()
            .map_err(|e| anyhow::anyhow!("cannot set up {n} worker threads: {e}"))?;
    }
    let quiet = cli.quiet;
    match cli.command {
        Command::Phantom(a) => phantom::run(&a, quiet),
        Command::Inspect(a) => inspect::run(&a, quiet),
        Command::Datasets => datasets::run(),
        Command::Ask(a) => ask::run(&a, cli.threads),
        Command::Score(a) => score::run(&a, quiet),
        Command::Compare(a) => compare::run(&a),
        Command::Eval(a) => eval::run(&a, quiet, cli.threads),
        Command::Merge(a) => merge::run(&a, quiet, cli.threads),
        Command::Perturb(a) => perturb::run(&a, quiet),
        Command::Perturbations(a) => perturbations::run(&a),
    }
}

/// Loads the dataset named by the shared dataset flags and keeps the samples they select
/// (`--filter`, `--sample`, `--limit`), saying on stderr what the selection kept.
pub(crate) fn load_dataset(a: &DatasetArgs) -> anyhow::Result<(Dataset, Selected)> {
    let (ds, selected) = a.source().load()?;
    if let Some(note) = &selected.note {
        eprintln!("{note}");
    }
    Ok((ds, selected))
}

/// Writes to stdout, returning the io error (a closed pipe included) instead of panicking
/// as `println!` would.
pub(crate) fn out(text: &str) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()
}
