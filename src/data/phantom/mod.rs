//! Built-in phantom sets: medvqa's embedded default data (`phantom:cxr`, `phantom:endoscopy`,
//! `phantom:frames`, `phantom:all`).
//!
//! ```text
//! $ medvqa phantom --set all --seed 7 --out phantoms
//! wrote 600 questions to phantoms/manifest.jsonl
//! ```
//!
//! Each set draws synthetic cases whose findings are known exactly, then asks questions of
//! all five kinds about them. A case is a pure function of `(seed, set, case index)`, so the
//! output never depends on thread count or order.

mod common;
mod cxr;
mod endoscopy;
mod frames;
mod questions;
mod scope;

use image::GrayImage;

use super::{DataError, Dataset, DatasetFormat, LoadOptions};
use crate::geometry::{BBox, BoxFrame};
use crate::pixels::Pixels;
use crate::sample::Sample;

/// The dataset identity used in perturbation seeds, whichever sets are loaded.
pub const DATASET_NAME: &str = "phantom";

/// Questions per set when `--n` is not given.
pub const DEFAULT_QUESTIONS: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PhantomSet {
    Cxr,
    Endoscopy,
    Frames,
}

impl PhantomSet {
    pub const ALL: [PhantomSet; 3] = [PhantomSet::Cxr, PhantomSet::Endoscopy, PhantomSet::Frames];

    pub fn name(self) -> &'static str {
        match self {
            PhantomSet::Cxr => "cxr",
            PhantomSet::Endoscopy => "endoscopy",
            PhantomSet::Frames => "frames",
        }
    }
}

/// Which phantom sets: `all`, one name, or a comma list (`cxr,frames`); what `phantom:SPEC`
/// and `medvqa phantom --set` both read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhantomSets(pub Vec<PhantomSet>);

impl std::str::FromStr for PhantomSets {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim() == "all" {
            return Ok(PhantomSets(PhantomSet::ALL.to_vec()));
        }
        let mut out = Vec::new();
        for name in s.split(',').map(str::trim) {
            let set = PhantomSet::ALL
                .into_iter()
                .find(|p| p.name() == name)
                .ok_or_else(|| {
                    format!("unknown phantom set {name:?}; use cxr, endoscopy, frames or all")
                })?;
            if !out.contains(&set) {
                out.push(set);
            }
        }
        Ok(PhantomSets(out))
    }
}

/// A finding the generator drew, with its exact pixel mask. Tests use the mask to check
/// answers and boxes against what is really in the image, also after geometric
/// perturbations.
#[derive(Debug, Clone)]
pub struct Finding {
    /// What it is: `nodule`, `effusion`, `polyp`, `instrument`, ….
    pub label: String,
    /// Which image of the case it is on.
    pub image: usize,
    /// Normalised box, tight around the mask.
    pub bbox: BBox,
    /// Same size as the image; 255 where the finding is, 0 elsewhere.
    pub mask: GrayImage,
}

/// One generated case: its images (one, or 2-5 frames) and what is in them.
#[derive(Debug, Clone)]
pub struct Case {
    /// `<set>/<case index, 4 digits>`, e.g. `cxr/0007`.
    pub key: String,
    pub images: Vec<Pixels>,
    pub findings: Vec<Finding>,
}

/// Case `index` of a set: a pure function of its arguments.
pub fn case(set: PhantomSet, seed: u64, index: usize) -> Case {
    match set {
        PhantomSet::Cxr => cxr::case(seed, index),
        PhantomSet::Endoscopy => endoscopy::case(seed, index),
        PhantomSet::Frames => frames::case(seed, index),
    }
}

/// `n` questions of the set, deterministic from `seed`.
pub fn generate(set: PhantomSet, seed: u64, n: usize) -> Vec<Sample> {
    match set {
        PhantomSet::Cxr => cxr::generate(seed, n),
        PhantomSet::Endoscopy => endoscopy::generate(seed, n),
        PhantomSet::Frames => frames::generate(seed, n),
    }
}

pub const FORMAT: DatasetFormat = DatasetFormat {
    name: "phantom",
    cluster: "image",
    summary: "built-in synthetic sets, generated in memory from --dataset-seed",
    layout: "phantom:cxr | phantom:endoscopy | phantom:frames | phantom:all  (no files)",
    frame: "normalized (generated)",
    ids: "<set>/<case>/<question>, e.g. cxr/0007/count",
    load,
};

fn load(path: &str, opts: &LoadOptions) -> Result<Dataset, DataError> {
    let PhantomSets(sets) = path.parse().map_err(DataError::Other)?;
    let n = opts.n.unwrap_or(DEFAULT_QUESTIONS);
    let samples = sets
        .into_iter()
        .flat_map(|s| generate(s, opts.seed, n))
        .collect();
    Ok(Dataset {
        name: DATASET_NAME.to_string(),
        format: FORMAT.name,
        source_frame: BoxFrame::Normalized,
        samples,
        failures: Vec::new(),
    })
}
