//! Datasets: one loader per published format, a registry keyed by name, and safe decoding.
//!
//! ```text
//! $ medvqa inspect --dataset jsonl:tests/fixtures/manifest/ok.jsonl
//! ```
//!
//! A dataset is named on the command line by a spec, `FORMAT:PATH` (`jsonl:data/x.jsonl`,
//! `phantom:cxr`). Every loader returns a [`Dataset`]: the samples that loaded plus a
//! [`Failure`] for each row that did not, with its location and reason. Only problems that
//! stop the whole dataset (the file is missing, the spec names no format) are `Err`.
//!
//! Adding a format is one file in this folder plus one entry in [`FORMATS`].

pub mod coco;
pub mod decode;
pub mod dicom;
pub mod gemex;
pub mod hf;
pub mod import;
pub mod kvasir_seg;
pub mod kvasir_vqa_x1;
pub mod manifest;
pub mod medframeqa;
pub mod nih_bbox;
pub mod phantom;
pub mod select;
pub mod video;
pub mod vindr;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;

use rayon::prelude::*;

use crate::failure::{Failure, Stage};
use crate::geometry::BoxFrame;
use crate::sample::Sample;
use decode::{DEFAULT_MAX_PIXELS, ImageStore};

/// A loaded dataset.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// The dataset's identity in seeds (docs/design.md §3) and reports.
    pub name: String,
    /// The registry name of the format it was read from.
    pub format: &'static str,
    /// The frame the source file declares for its boxes (they are already normalised in
    /// `samples`); reports print it so nobody has to guess.
    pub source_frame: BoxFrame,
    pub samples: Vec<Sample>,
    pub failures: Vec<Failure>,
}

impl Dataset {
    /// Decodes every distinct image once, in parallel, and moves each sample with an image
    /// that fails into `failures` with the image's error.
    pub fn validate_images(&mut self, store: &ImageStore, progress: &crate::progress::Progress) {
        let mut unique: BTreeMap<&str, &crate::sample::ImageRef> = BTreeMap::new();
        for s in &self.samples {
            for img in &s.images {
                unique.entry(img.key.as_str()).or_insert(img);
            }
        }
        progress.set_length(unique.len() as u64);
        let errors: HashMap<String, decode::ImageError> = unique
            .par_iter()
            .filter_map(|(key, img)| {
                let r = store.get(img);
                progress.inc(1);
                r.err().map(|e| (key.to_string(), e))
            })
            .collect();
        if errors.is_empty() {
            return;
        }
        let (ok, bad): (Vec<Sample>, Vec<Sample>) = std::mem::take(&mut self.samples)
            .into_iter()
            .partition(|s| s.images.iter().all(|i| !errors.contains_key(&i.key)));
        self.samples = ok;
        for s in bad {
            if let Some(err) = s.images.iter().find_map(|i| errors.get(&i.key)) {
                self.failures
                    .push(Failure::new(Stage::Decode, err).with_id(s.id.clone()));
            }
        }
    }
}

/// Options that apply across formats. Each loader uses what concerns it.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Where image paths resolve when the format keeps images apart from its rows (GEMeX's
    /// MIMIC-CXR-JPG root). Defaults to the dataset file's folder.
    pub image_root: Option<PathBuf>,
    /// Overrides the format's declared source box frame (GEMeX: `pixels:224x224`).
    pub box_frame: Option<BoxFrame>,
    /// The pixel budget for any one image.
    pub max_pixels: u64,
    /// Seed for generated sets (phantoms).
    pub seed: u64,
    /// Number of questions for generated sets; `None` is the set's default.
    pub n: Option<usize>,
    /// How DICOM grey values become 8-bit (`--dicom-window`).
    pub dicom_window: dicom::Window,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            image_root: None,
            box_frame: None,
            max_pixels: DEFAULT_MAX_PIXELS,
            seed: 0,
            n: None,
            dicom_window: dicom::Window::Auto,
        }
    }
}

/// Errors that stop a whole dataset from loading.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error(
        "dataset spec {spec:?} has no format; write FORMAT:PATH, e.g. jsonl:{spec} (formats: {known})"
    )]
    NoFormat { spec: String, known: String },
    #[error(
        "unknown dataset format {name:?} in {spec:?}; known formats: {known} (see `medvqa datasets`)"
    )]
    UnknownFormat {
        name: String,
        spec: String,
        known: String,
    },
    #[error("cannot read {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error(transparent)]
    Select(#[from] select::SelectError),
    #[error("{0}")]
    Other(String),
}

/// Which dataset, read how, and which of its samples: what every command's dataset flags
/// and a config's `[dataset]` resolve to.
#[derive(Debug, Clone, Default)]
pub struct DatasetSource {
    pub spec: String,
    pub load: LoadOptions,
    pub selection: select::Selection,
}

impl DatasetSource {
    /// Every sample of the dataset, before the selection.
    pub fn load_all(&self) -> Result<Dataset, DataError> {
        load(&self.spec, &self.load)
    }

    /// The dataset with the selection applied; the note says what it kept.
    pub fn load(&self) -> Result<(Dataset, select::Selected), DataError> {
        let mut ds = self.load_all()?;
        let selected = self.select(&mut ds.samples)?;
        Ok((ds, selected))
    }

    /// Keeps the selected samples.
    pub fn select(&self, samples: &mut Vec<Sample>) -> Result<select::Selected, DataError> {
        Ok(self.selection.apply(samples)?)
    }

    /// The seed a generated (phantom) set was made with, for the dataset fingerprint.
    pub fn generated_seed(&self) -> Option<u64> {
        self.spec.starts_with("phantom").then_some(self.load.seed)
    }
}

/// A dataset format in the registry.
pub struct DatasetFormat {
    /// The spec prefix: `jsonl`, `gemex`, ….
    pub name: &'static str,
    /// What the bootstrap resamples together by default (`image`, `meta.video_id`): the unit
    /// whose questions are not independent. A config's `score.cluster` overrides it.
    pub cluster: &'static str,
    /// One line for `medvqa datasets`.
    pub summary: &'static str,
    /// The expected files and layout, several lines.
    pub layout: &'static str,
    /// The declared source box frame, in words.
    pub frame: &'static str,
    /// What the sample ids look like, for joining predictions.
    pub ids: &'static str,
    pub load: fn(path: &str, opts: &LoadOptions) -> Result<Dataset, DataError>,
}

/// Every dataset format medvqa reads.
pub static FORMATS: &[DatasetFormat] = &[
    manifest::FORMAT,
    manifest::VIDEOS_FORMAT,
    phantom::FORMAT,
    kvasir_vqa_x1::FORMAT,
    gemex::FORMAT,
    medframeqa::FORMAT,
    coco::FORMAT,
    nih_bbox::FORMAT,
    vindr::FORMAT,
    kvasir_seg::FORMAT,
];

fn known_formats() -> String {
    FORMATS
        .iter()
        .map(|f| f.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether a format generates its samples (its spec names a set, not a path).
pub fn is_generated(format: &str) -> bool {
    format == phantom::FORMAT.name
}

/// Looks up a format by name.
pub fn format(name: &str) -> Option<&'static DatasetFormat> {
    FORMATS.iter().find(|f| f.name == name)
}

/// Splits `FORMAT:PATH` and finds the format.
pub fn parse_spec(spec: &str) -> Result<(&'static DatasetFormat, &str), DataError> {
    let Some((name, path)) = spec.split_once(':') else {
        return Err(DataError::NoFormat {
            spec: spec.to_string(),
            known: known_formats(),
        });
    };
    let f = format(name).ok_or_else(|| DataError::UnknownFormat {
        name: name.to_string(),
        spec: spec.to_string(),
        known: known_formats(),
    })?;
    Ok((f, path))
}

/// Loads a dataset from its spec.
pub fn load(spec: &str, opts: &LoadOptions) -> Result<Dataset, DataError> {
    let (format, path) = parse_spec(spec)?;
    (format.load)(path, opts)
}

/// Counts for `medvqa inspect`: by kind, modality and number of images.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Counts {
    pub samples: usize,
    pub failures: usize,
    pub images: usize,
    pub by_kind: BTreeMap<String, usize>,
    pub by_modality: BTreeMap<String, usize>,
    pub by_n_images: BTreeMap<usize, usize>,
    pub boxes: usize,
    /// How many samples carry each meta key (the keys `--filter` and `--by` can use).
    pub meta_keys: BTreeMap<String, usize>,
}

impl Counts {
    pub fn of(ds: &Dataset) -> Counts {
        let mut c = Counts {
            samples: ds.samples.len(),
            failures: ds.failures.len(),
            ..Counts::default()
        };
        let mut images = BTreeSet::new();
        for s in &ds.samples {
            *c.by_kind.entry(s.kind().to_string()).or_default() += 1;
            *c.by_modality.entry(s.modality()).or_default() += 1;
            *c.by_n_images.entry(s.images.len()).or_default() += 1;
            c.boxes += s.boxes.len();
            for k in s.meta.keys() {
                *c.meta_keys.entry(k.clone()).or_default() += 1;
            }
            images.extend(s.images.iter().map(|i| i.key.as_str()));
        }
        c.images = images.len();
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_need_a_known_format() {
        assert!(matches!(
            parse_spec("data.jsonl"),
            Err(DataError::NoFormat { .. })
        ));
        assert!(matches!(
            parse_spec("nope:x"),
            Err(DataError::UnknownFormat { .. })
        ));
        let (f, p) = parse_spec("jsonl:a:b.jsonl").unwrap();
        assert_eq!((f.name, p), ("jsonl", "a:b.jsonl"));
    }

    #[test]
    fn format_names_are_unique() {
        let names: BTreeSet<_> = FORMATS.iter().map(|f| f.name).collect();
        assert_eq!(names.len(), FORMATS.len());
    }
}
