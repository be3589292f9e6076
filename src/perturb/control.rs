//! Controls: conditions that take the image away, to measure how much a model's answers
//! depend on it at all. A model that answers as well with a blank image did not look.
//!
//! - `blank-image`: every image replaced by a uniform mid-grey image (value 128 in every
//!   channel) of the same size and channel count, so the prompt, the image-token count and
//!   the preprocessing are unchanged and only the content is gone.
//! - `swapped-image`: every image replaced by an image of another sample of the same
//!   modality, as decoded. A model that answers as well about the wrong patient did not
//!   look. The donor is fixed per image ([`Swaps`]), never drawn in processing order.
//! - `no-image`: the question alone, with no image. A model whose template or graph
//!   needs an image fails that sample, with its reason; the run goes on.
//!
//! A control removes what the ground-truth boxes point at, so boxes are not scored under it
//! ([`super::View::boxes`] gives none).

use std::collections::{BTreeMap, HashMap, HashSet};

use rand_chacha::ChaCha8Rng;

use super::{ANY, Apply, ApplyError, Family, Modality, PerturbError, Perturbation, Perturbed};
use super::{SeedContext, derive_seed};
use crate::pixels::Pixels;
use crate::sample::{ImageRef, Sample};

/// The grey level of the blank image.
pub const BLANK_LEVEL: u8 = 128;

pub const BLANK: Perturbation = Perturbation {
    name: "blank-image",
    family: Family::Control,
    summary: "control: every image replaced by uniform mid-grey of the same size (boxes not scored)",
    modalities: ANY,
    levels: 1,
    seeded: false,
    geometric: false,
    parameter: "grey level",
    table: |_| BLANK_LEVEL.to_string(),
    apply: Apply::Image(blank),
};

pub const SWAPPED: Perturbation = Perturbation {
    name: "swapped-image",
    family: Family::Control,
    summary: "control: every image replaced by the image of another sample of the same modality (boxes not scored)",
    modalities: ANY,
    levels: 1,
    seeded: true,
    geometric: false,
    parameter: "donor",
    table: |_| "another sample's image, same modality".to_string(),
    apply: Apply::Swap,
};

pub const NO_IMAGE: Perturbation = Perturbation {
    name: "no-image",
    family: Family::Control,
    summary: "control: the question without any image (a model that needs one fails the sample)",
    modalities: ANY,
    levels: 1,
    seeded: false,
    geometric: false,
    parameter: "images",
    table: |_| "none".to_string(),
    apply: Apply::NoImage,
};

/// The donor of every image for `swapped-image`: for each image, an image of another
/// sample with the same modality.
///
/// The images of one modality (distinct keys) are put in the order of
/// `derive_seed(run_seed, dataset, key, "swapped-image", 1)` (ties by key), a cycle; an
/// image's donor is the next image in that cycle that no sample shares with it. So the
/// donor depends on the seed and on which images the loaded dataset holds, never on the
/// order samples are read or processed, and no image is its own donor.
#[derive(Debug, Clone, Default)]
pub struct Swaps {
    donors: HashMap<String, ImageRef>,
    /// The modality of the images that have no donor, for the error.
    lonely: HashMap<String, String>,
}

impl Swaps {
    /// The donors for every image of `samples`.
    pub fn new(ctx: &SeedContext, samples: &[Sample]) -> Swaps {
        // key -> (image, the samples holding it), per modality
        type Holders<'a> = BTreeMap<&'a str, (&'a ImageRef, Vec<usize>)>;
        let mut groups: BTreeMap<Option<Modality>, Holders<'_>> = BTreeMap::new();
        for (si, s) in samples.iter().enumerate() {
            let group = groups.entry(Modality::of(s)).or_default();
            for img in &s.images {
                group
                    .entry(img.key.as_str())
                    .or_insert_with(|| (img, Vec::new()))
                    .1
                    .push(si);
            }
        }
        let mut out = Swaps::default();
        for (modality, images) in groups {
            let mut cycle: Vec<(u64, &str)> = images
                .keys()
                .map(|k| {
                    let seed = derive_seed(ctx.run_seed, &ctx.dataset, k, SWAPPED.name, 1);
                    (seed, *k)
                })
                .collect();
            cycle.sort_unstable();
            let n = cycle.len();
            for (pos, (_, key)) in cycle.iter().enumerate() {
                let holders: HashSet<usize> = images[key].1.iter().copied().collect();
                let donor = (1..n)
                    .map(|step| cycle[(pos + step) % n].1)
                    .find(|d| !images[d].1.iter().any(|si| holders.contains(si)));
                match donor {
                    Some(d) => {
                        out.donors.insert(key.to_string(), images[d].0.clone());
                    }
                    None => {
                        let m = modality.map_or("(none)", Modality::as_str);
                        out.lonely.insert(key.to_string(), m.to_string());
                    }
                }
            }
        }
        out
    }

    /// The image seen in place of `key`.
    pub fn donor(&self, key: &str) -> Result<&ImageRef, PerturbError> {
        self.donors.get(key).ok_or_else(|| PerturbError::NoDonor {
            key: key.to_string(),
            modality: self
                .lonely
                .get(key)
                .cloned()
                .unwrap_or_else(|| "(not in the dataset)".to_string()),
        })
    }
}

fn blank(p: &Pixels, _severity: u8, _rng: &mut ChaCha8Rng) -> Result<Perturbed, ApplyError> {
    let (w, h) = p.dimensions();
    let pixels = match p {
        Pixels::Gray(_) => Pixels::Gray(image::GrayImage::from_pixel(
            w,
            h,
            image::Luma([BLANK_LEVEL]),
        )),
        Pixels::Rgb(_) => Pixels::Rgb(image::RgbImage::from_pixel(
            w,
            h,
            image::Rgb([BLANK_LEVEL; 3]),
        )),
    };
    Ok(Perturbed::photometric(pixels))
}
