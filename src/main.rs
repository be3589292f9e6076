//! The `medvqa` binary: parse arguments, run, map the outcome to an exit code.
//!
//! Exit codes (also in README and `--help`):
//! - 0: everything ran and no sample failed;
//! - 1: the command could not run (bad config, unreadable dataset file, …);
//! - 2: bad command-line usage;
//! - 3: the command ran, but some samples failed and were recorded with their reasons.

use std::process::ExitCode;

use clap::Parser;

use medvqa::cli::Cli;
use medvqa::commands::{self, Outcome};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match commands::run(cli) {
        Ok(Outcome::Clean) => ExitCode::SUCCESS,
        Ok(Outcome::SamplesFailed(_)) => ExitCode::from(3),
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// `medvqa inspect … | head` closes stdout early; that is not an error.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
