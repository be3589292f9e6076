//! `medvqa phantom`: write built-in phantom sets as a manifest plus PNGs.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use anyhow::Context;
use rayon::prelude::*;

use super::{Outcome, out};
use crate::cli::PhantomArgs;
use crate::data::manifest;
use crate::data::phantom::{self, PhantomSet};
use crate::progress::Progress;
use crate::sample::{ImageSource, Sample};

pub fn run(a: &PhantomArgs, quiet: bool) -> anyhow::Result<Outcome> {
    let sets: &[PhantomSet] = &a.set.0;
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
    encode_images(&mut samples)?;
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

/// Encodes every distinct generated image to PNG once, in parallel, so that writing the
/// manifest only copies bytes. The encoder's settings are fixed, so the bytes do not
/// depend on which thread encoded them.
fn encode_images(samples: &mut [Sample]) -> anyhow::Result<()> {
    let mut unique = BTreeMap::new();
    for s in samples.iter() {
        for img in &s.images {
            if let ImageSource::Pixels(p) = &img.source {
                unique.entry(img.key.clone()).or_insert_with(|| p.clone());
            }
        }
    }
    let encoded: HashMap<String, Arc<[u8]>> = unique
        .into_par_iter()
        .map(|(key, p)| {
            let bytes = p
                .encode_png()
                .with_context(|| format!("encoding {key} as PNG"))?;
            Ok((key, Arc::from(bytes)))
        })
        .collect::<anyhow::Result<_>>()?;
    for s in samples.iter_mut() {
        for img in &mut s.images {
            if let Some(b) = encoded.get(&img.key) {
                img.source = ImageSource::Bytes(b.clone());
            }
        }
    }
    Ok(())
}
