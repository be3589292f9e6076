//! `medvqa phantom`: write built-in phantom sets as a manifest plus PNGs.

use anyhow::Context;

use super::{Outcome, out};
use crate::cli::{PhantomArgs, PhantomSetArg};
use crate::data::manifest;
use crate::data::phantom::{self, PhantomSet};
use crate::progress::Progress;

pub fn run(a: &PhantomArgs, quiet: bool) -> anyhow::Result<Outcome> {
    let sets: &[PhantomSet] = match a.set {
        PhantomSetArg::Cxr => &[PhantomSet::Cxr],
        PhantomSetArg::Endoscopy => &[PhantomSet::Endoscopy],
        PhantomSetArg::Frames => &[PhantomSet::Frames],
        PhantomSetArg::All => &PhantomSet::ALL,
    };
    let progress = Progress::new(sets.len() as u64, "phantom", quiet);
    let mut samples = Vec::new();
    for &set in sets {
        samples.extend(phantom::generate(
            set,
            a.seed,
            a.n.unwrap_or(phantom::DEFAULT_QUESTIONS),
        ));
        progress.inc(1);
    }
    progress.finish();
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let path = a.out.join("manifest.jsonl");
    manifest::write(&path, phantom::DATASET_NAME, &samples, "")
        .with_context(|| format!("writing {}", path.display()))?;
    out(&format!(
        "wrote {} questions to {}\n",
        samples.len(),
        path.display()
    ))?;
    Ok(Outcome::Clean)
}
