//! `medvqa perturb`'s export: perturbed copies of a dataset, usable on their own by any
//! tool, and its contact sheets.
//!
//! ```text
//! $ medvqa perturb --dataset phantom:cxr --perturbation gaussian-noise,rotate \
//!       --severity 0,1,3 --seed 7 --out perturbed
//! wrote 1400 samples (1000 images) to perturbed/manifest.jsonl; 0 failed
//! ```
//!
//! Layout of `DIR`:
//! - `manifest.jsonl`: a medvqa manifest (normalised boxes, `name` = the source dataset's
//!   name); one sample per (source sample, perturbation, severity), id
//!   `<source id>@<label>/s<severity>`, sorted by id; `meta` gains `perturbation`,
//!   `severity`, `source_id`, and `boxes_dropped` when a geometric perturbation moved a
//!   box out of the image.
//! - `<label>/s<severity>/<image key>.png`: each image once per perturbation and severity,
//!   however many questions share it; `clean/s0/` when severity 0 is asked for. Frame
//!   perturbations copy the clean frames there and reorder them in the manifest;
//!   `swapped-image` copies each donor image there; `no-image` writes no image (its
//!   samples have none); `option-rotate` copies the clean images, and its samples carry the
//!   rotated options with the reference remapped.
//! - `failures.jsonl`: one line per sample that could not be produced, sorted.
//!
//! Work is grouped by image (decoded once) and spread over threads; the output is sorted
//! before writing, so the bytes depend on neither the thread count nor the input order.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rayon::prelude::*;

use super::RunError;
use super::folded::PerturbedMeta;
use crate::data::decode::{ImageError, ImageStore};
use crate::data::{Dataset, manifest};
use crate::failure::{Failure, Stage};
use crate::perturb::{
    self, Application, Apply, BoxMap, PerturbError, SeedContext, Severities, Swaps, control,
    perturb_image, presets, sheet,
};
use crate::pixels::{Pixels, PixelsWriteError};
use crate::progress::Progress;
use crate::sample::{ImageRef, ImageSource, MetaValue, Sample};
use crate::score::Condition;
use crate::score::ORDER_DEPENDENT;

/// What the export is asked.
#[derive(Debug, Clone)]
pub struct ExportRequest {
    /// Perturbation and track names.
    pub perturbations: Vec<String>,
    pub severities: Severities,
    /// Apply named perturbations to samples of other modalities too.
    pub any_modality: bool,
    pub seed: u64,
    /// The folder to write.
    pub out: PathBuf,
    /// The pixel budget for any one decoded image.
    pub max_pixels: u64,
    /// How DICOM grey values become 8-bit.
    pub dicom_window: crate::data::dicom::Window,
    pub quiet: bool,
}

/// What the export wrote.
#[derive(Debug)]
pub struct ExportSummary {
    pub manifest: PathBuf,
    pub samples: usize,
    pub images: usize,
    /// Sorted; also in `failures.jsonl`.
    pub failures: Vec<Failure>,
}

/// A contact sheet: one sample across severities.
#[derive(Debug, Clone)]
pub struct SheetRequest {
    pub perturbations: Vec<String>,
    pub severities: Severities,
    pub seed: u64,
    pub path: PathBuf,
    /// The sample to draw; default: the first (by id) with boxes, else the first.
    pub sample: Option<String>,
    /// Thumbnail height in pixels.
    pub thumb: u32,
    /// The pixel budget for any one decoded image.
    pub max_pixels: u64,
    /// How DICOM grey values become 8-bit.
    pub dicom_window: crate::data::dicom::Window,
}

/// Refuses names that are neither a perturbation nor a track, before anything is read.
pub fn check_names(names: &[String]) -> Result<(), RunError> {
    match names
        .iter()
        .find(|n| perturb::find(n).is_none() && presets::track(n).is_none())
    {
        Some(n) => Err(PerturbError::unknown(n).into()),
        None => Ok(()),
    }
}

/// Decoded pixels kept at once; each image is visited once, so this only bounds memory.
const CACHE_BYTES: usize = 256 << 20;

/// What one output sample is made of.
#[derive(Debug, Clone, Copy)]
enum Variant {
    Clean,
    Apply(Application),
}

impl Variant {
    fn condition(&self) -> Condition {
        match self {
            Variant::Clean => Condition::clean(),
            Variant::Apply(app) => Condition::new(app.label(), app.severity),
        }
    }

    /// `<label>/s<severity>`: where its images go, and the suffix of its samples' ids.
    fn dir(&self) -> String {
        let c = self.condition();
        format!("{}/s{}", PerturbedMeta::label(&c), c.severity)
    }
}

/// The work for one distinct image.
struct ImageJob<'a> {
    image: &'a ImageRef,
    /// Image-level applications, by output folder.
    apply: BTreeMap<String, Application>,
    /// Folders that get the clean image.
    clean: BTreeSet<String>,
}

/// What became of one image.
struct ImageResult {
    /// Box maps by output folder; a perturbation error instead where it failed.
    maps: BTreeMap<String, Result<BoxMap, String>>,
}

/// Writes the perturbed copies of `ds` into `req.out`: images, `manifest.jsonl` and
/// `failures.jsonl`. Io errors stop it; a sample that cannot be made is a failure.
pub fn export(ds: &Dataset, req: &ExportRequest) -> Result<ExportSummary, RunError> {
    let dir = &req.out;
    let ctx = &SeedContext::new(req.seed, ds.name.clone());
    let store = &ImageStore::new(req.max_pixels, CACHE_BYTES).with_dicom_window(req.dicom_window);
    std::fs::create_dir_all(dir).map_err(RunError::io("cannot create", dir))?;
    let root = dir
        .canonicalize()
        .map_err(RunError::io("cannot resolve", dir))?;

    // Plan: the variants of every sample, and the work per distinct image.
    let swaps = &swaps_for(ctx, ds, &req.perturbations);
    let mut plan: Vec<(&Sample, Vec<Variant>)> = Vec::with_capacity(ds.samples.len());
    let mut jobs: BTreeMap<&str, ImageJob> = BTreeMap::new();
    let mut rel_of: BTreeMap<String, &str> = BTreeMap::new();
    for s in &ds.samples {
        let apps = presets::expand_for(&req.perturbations, &req.severities, s, req.any_modality)?;
        let mut variants: Vec<Variant> = apps.into_iter().map(Variant::Apply).collect();
        if req.severities.includes_clean() {
            variants.insert(0, Variant::Clean);
        }
        for img in &s.images {
            let rel = rel_path(&img.key);
            if let Some(other) = rel_of.insert(rel.clone(), &img.key)
                && other != img.key
            {
                return Err(RunError::Usage(format!(
                    "image keys {other:?} and {:?} would both be written as {rel}",
                    img.key
                )));
            }
        }
        for v in &variants {
            match v {
                Variant::Apply(app) if app.perturbation.is_image_level() => {
                    for img in &s.images {
                        job(&mut jobs, img).apply.insert(v.dir(), *app);
                    }
                }
                // Another sample's images, as decoded; a missing donor fails the sample
                // when it is assembled.
                Variant::Apply(app) if matches!(app.perturbation.apply, Apply::Swap) => {
                    for donor in s.images.iter().filter_map(|i| swaps.donor(&i.key).ok()) {
                        job(&mut jobs, donor).clean.insert(v.dir());
                    }
                }
                // No image: nothing to write.
                Variant::Apply(app) if matches!(app.perturbation.apply, Apply::NoImage) => {}
                // Clean, reordered frames, reordered options: the images as decoded.
                _ => {
                    for img in &s.images {
                        job(&mut jobs, img).clean.insert(v.dir());
                    }
                }
            }
        }
        plan.push((s, variants));
    }

    // Perturb and write each image once, in parallel.
    let progress = Progress::new(jobs.len() as u64, "perturb", req.quiet);
    let done: Vec<(&str, Result<ImageResult, ImageError>)> = jobs
        .par_iter()
        .map(|(key, job)| {
            let r = process(ctx, store, &root, key, job);
            progress.inc(1);
            r.map(|res| (*key, res))
        })
        .collect::<Result<_, RunError>>()?;
    progress.finish();
    let results: BTreeMap<&str, Result<ImageResult, ImageError>> = done.into_iter().collect();

    // Assemble the output samples.
    let mut samples = Vec::new();
    let mut failures: Vec<Failure> = ds.failures.clone();
    for (s, variants) in &plan {
        if let Some(err) = s
            .images
            .iter()
            .find_map(|i| results.get(i.key.as_str()).and_then(|r| r.as_ref().err()))
        {
            failures.push(Failure::new(Stage::Decode, err).with_id(s.id.clone()));
            continue;
        }
        for v in variants {
            match assemble(ctx, &root, s, v, &results, swaps) {
                Ok(sample) => samples.push(sample),
                Err(f) => failures.push(f),
            }
        }
    }
    samples.sort_by(|x, y| x.id.cmp(&y.id));
    super::outputs::sort_failures(&mut failures);

    let path = dir.join("manifest.jsonl");
    manifest::write(&path, &ds.name, &samples, "")?;
    write_failures(&dir.join("failures.jsonl"), &failures)?;
    Ok(ExportSummary {
        manifest: path,
        samples: samples.len(),
        images: jobs.values().map(|j| j.apply.len() + j.clean.len()).sum(),
        failures,
    })
}

/// The work for `img`, made on first use.
fn job<'a, 'm>(
    jobs: &'m mut BTreeMap<&'a str, ImageJob<'a>>,
    img: &'a ImageRef,
) -> &'m mut ImageJob<'a> {
    jobs.entry(img.key.as_str()).or_insert_with(|| ImageJob {
        image: img,
        apply: BTreeMap::new(),
        clean: BTreeSet::new(),
    })
}

/// Decodes one image and writes every folder's version of it. Io errors stop the run;
/// decode errors fail the image; perturbation errors fail that folder only.
fn process(
    ctx: &SeedContext,
    store: &ImageStore,
    root: &Path,
    key: &str,
    job: &ImageJob,
) -> Result<Result<ImageResult, ImageError>, RunError> {
    let pixels = match store.get(job.image) {
        Ok(p) => p,
        Err(e) => return Ok(Err(e)),
    };
    let rel = rel_path(key);
    let mut maps = BTreeMap::new();
    for (folder, app) in &job.apply {
        match perturb_image(ctx, key, &pixels, app) {
            Ok(p) => {
                save(&p.pixels, &root.join(folder).join(&rel))?;
                maps.insert(folder.clone(), Ok(p.map));
            }
            Err(e) => {
                maps.insert(folder.clone(), Err(crate::failure::error_chain(&e)));
            }
        }
    }
    if !job.clean.is_empty() {
        let bytes = pixels
            .encode_png()
            .map_err(|source| PixelsWriteError::Encode {
                path: root.join(&rel),
                source,
            })?;
        for folder in &job.clean {
            let dest = root.join(folder).join(&rel);
            write_bytes(&dest, &bytes)?;
            maps.insert(folder.clone(), Ok(BoxMap::Identity));
        }
    }
    Ok(Ok(ImageResult { maps }))
}

fn save(p: &Pixels, dest: &Path) -> Result<(), RunError> {
    let bytes = p.encode_png().map_err(|source| PixelsWriteError::Encode {
        path: dest.to_path_buf(),
        source,
    })?;
    write_bytes(dest, &bytes)
}

fn write_bytes(dest: &Path, bytes: &[u8]) -> Result<(), RunError> {
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent).map_err(RunError::io("cannot create", parent))?;
    }
    std::fs::write(dest, bytes).map_err(RunError::io("cannot write", dest))
}

/// One output sample, or the failure that stops it.
fn assemble(
    ctx: &SeedContext,
    root: &Path,
    s: &Sample,
    v: &Variant,
    results: &BTreeMap<&str, Result<ImageResult, ImageError>>,
    swaps: &Swaps,
) -> Result<Sample, Failure> {
    let folder = v.dir();
    let id = format!("{}@{}", s.id, folder);
    let image_ref = |key: &str| {
        let rel = format!("{folder}/{}", rel_path(key));
        ImageRef {
            source: ImageSource::File(root.join(&rel)),
            key: rel,
        }
    };
    let app = match v {
        Variant::Clean => None,
        Variant::Apply(app) => Some(app),
    };
    let view = perturb::view(ctx, s, app, swaps)
        .map_err(|e| Failure::new(Stage::Perturb, &e).with_id(id.clone()))?;
    let mut maps = Vec::with_capacity(s.images.len());
    if view.pixel_change().is_some() {
        for img in &s.images {
            let m = results
                .get(img.key.as_str())
                .and_then(|r| r.as_ref().ok())
                .and_then(|r| r.maps.get(&folder));
            let reason = match m {
                Some(Ok(map)) => {
                    maps.push(*map);
                    continue;
                }
                Some(Err(reason)) => reason.clone(),
                None => format!("image {} was not produced", img.key),
            };
            return Err(Failure {
                stage: Stage::Perturb,
                id: Some(id),
                location: None,
                reason,
            });
        }
    }
    let seen_images = view.images(s);
    if let Some((key, e)) = seen_images.iter().find_map(|img| {
        results
            .get(img.key.as_str())
            .and_then(|r| r.as_ref().err())
            .map(|e| (&img.key, e))
    }) {
        // A donor that could not be decoded (the sample's own images were checked before).
        return Err(Failure {
            stage: Stage::Decode,
            id: Some(id),
            location: None,
            reason: format!("image {key}: {}", crate::failure::error_chain(e)),
        });
    }
    let seen = view.boxes(s, &maps);
    let images = seen_images.iter().map(|img| image_ref(&img.key)).collect();
    let (boxes, dropped) = (seen.boxes, seen.dropped);
    let mut meta = s.meta.clone();
    if view.order_dependent() {
        // Read back by `score` through the folded copy: reported apart.
        meta.insert(ORDER_DEPENDENT.into(), MetaValue::Str("true".into()));
    }
    PerturbedMeta {
        source_id: s.id.clone(),
        condition: v.condition(),
        boxes_dropped: dropped,
    }
    .write(&mut meta);
    Ok(Sample {
        id,
        images,
        question: s.question.clone(),
        task: view.task().unwrap_or(&s.task).clone(),
        boxes,
        meta,
    })
}

/// The donors of `swapped-image`, computed only when `names` can bring it in.
pub(super) fn swaps_for(ctx: &SeedContext, ds: &Dataset, names: &[String]) -> Swaps {
    if presets::mentions(names, control::SWAPPED.name) {
        Swaps::new(ctx, &ds.samples)
    } else {
        Swaps::default()
    }
}

/// Where an image key is written inside a folder: the key made safe as a relative path
/// (the manifest writer's rule), with `.png` appended unless it already ends so.
fn rel_path(key: &str) -> String {
    let safe = crate::data::manifest::safe_key(key);
    let safe = if safe.is_empty() {
        "image".to_string()
    } else {
        safe
    };
    if safe.to_ascii_lowercase().ends_with(".png") {
        safe
    } else {
        format!("{safe}.png")
    }
}

fn write_failures(path: &Path, failures: &[Failure]) -> Result<(), RunError> {
    let mut text = String::new();
    for fail in failures {
        // A failure is strings and an enum: serialising it cannot fail.
        text.push_str(&serde_json::to_string(fail).unwrap_or_default());
        text.push('\n');
    }
    let mut f = std::fs::File::create(path).map_err(RunError::io("cannot write", path))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.flush())
        .map_err(RunError::io("cannot write", path))
}

/// Draws the contact sheet; returns the sample drawn and the number of rows.
pub fn write_sheet(ds: &Dataset, req: &SheetRequest) -> Result<(String, usize), RunError> {
    let ctx = &SeedContext::new(req.seed, ds.name.clone());
    let store = ImageStore::new(req.max_pixels, CACHE_BYTES).with_dicom_window(req.dicom_window);
    let path = &req.path;
    let sample = match &req.sample {
        Some(id) => ds.samples.iter().find(|s| &s.id == id).ok_or_else(|| {
            RunError::Usage(format!("--sheet-sample {id:?} is not in the dataset"))
        })?,
        None => {
            let mut sorted: Vec<&Sample> = ds.samples.iter().collect();
            sorted.sort_by(|x, y| x.id.cmp(&y.id));
            sorted
                .iter()
                .find(|s| !s.boxes.is_empty())
                .or(sorted.first())
                .copied()
                .ok_or_else(|| RunError::Usage("the dataset has no samples to draw".into()))?
        }
    };
    let images: Vec<Arc<Pixels>> = sample
        .images
        .iter()
        .map(|i| store.get(i))
        .collect::<Result<_, _>>()
        .map_err(|e| {
            RunError::Usage(format!(
                "cannot decode the images of {}: {}",
                sample.id,
                crate::failure::error_chain(&e)
            ))
        })?;
    let swaps = swaps_for(ctx, ds, &req.perturbations);
    let donor = |img: &ImageRef| {
        store.get(img).map_err(|e| PerturbError::Image {
            key: img.key.clone(),
            reason: crate::failure::error_chain(&e),
        })
    };
    let rows = sheet::rows(
        ctx,
        sample,
        &images,
        &req.perturbations,
        &req.severities,
        &swaps,
        &donor,
    )?;
    let title = format!(
        "{}  {}  {}  seed {}",
        ds.name,
        sample.id,
        sample.modality(),
        req.seed
    );
    let png = sheet::render(&title, &rows, req.thumb);
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(RunError::io("cannot create", parent))?;
    }
    png.save_png(path)?;
    Ok((sample.id.clone(), rows.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_keys_become_safe_png_paths() {
        assert_eq!(rel_path("cxr/0001"), "cxr/0001.png");
        assert_eq!(rel_path("clips/a.mkv#12"), "clips/a.mkv_f12.png");
        assert_eq!(rel_path("images/a.jpg"), "images/a.jpg.png");
        assert_eq!(rel_path("x/B.PNG"), "x/B.PNG");
        assert_eq!(rel_path("../../etc/passwd"), "etc/passwd.png");
    }
}
