//! `medvqa perturb`: write perturbed copies of a dataset, usable on their own by any tool.
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
//!   perturbations copy the clean frames there and reorder them in the manifest.
//! - `failures.jsonl`: one line per sample that could not be produced, sorted.
//!
//! Work is grouped by image (decoded once) and spread over threads; the output is sorted
//! before writing, so the bytes depend on neither the thread count nor the input order.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use rayon::prelude::*;

use super::{Outcome, load_dataset, out};
use crate::cli::PerturbArgs;
use crate::data::decode::{ImageError, ImageStore};
use crate::data::{Dataset, manifest};
use crate::failure::{Failure, Stage};
use crate::perturb::{
    self, Application, BoxMap, Modality, PerturbError, SeedContext, find, perturb_image, presets,
    sheet,
};
use crate::pixels::Pixels;
use crate::progress::Progress;
use crate::sample::{ImageRef, ImageSource, MetaValue, Sample};

/// Decoded pixels kept at once; each image is visited once, so this only bounds memory.
const CACHE_BYTES: usize = 256 << 20;

/// The label and severity of the clean copy.
const CLEAN: (&str, u8) = ("clean", 0);

pub fn run(a: &PerturbArgs, quiet: bool) -> anyhow::Result<Outcome> {
    for name in &a.perturbation {
        if find(name).is_none() && presets::track(name).is_none() {
            bail!(PerturbError::unknown(name));
        }
    }
    let (ds, _) = load_dataset(&a.data)?;
    let ctx = SeedContext::new(a.seed, ds.name.clone());
    let store = ImageStore::new(a.data.max_pixels, CACHE_BYTES);
    let mut failed = ds.failures.len();
    if let Some(dir) = &a.out {
        failed = write_run(a, &ds, &ctx, &store, dir, quiet)?;
    }
    if let Some(path) = &a.sheet {
        write_sheet(a, &ds, &ctx, &store, path)?;
    }
    Ok(Outcome::from_failures(failed))
}

/// What one output sample is made of.
#[derive(Debug, Clone, Copy)]
enum Variant {
    Clean,
    Apply(Application),
}

impl Variant {
    fn label(&self) -> String {
        match self {
            Variant::Clean => CLEAN.0.to_string(),
            Variant::Apply(app) => app.label(),
        }
    }

    fn severity(&self) -> u8 {
        match self {
            Variant::Clean => CLEAN.1,
            Variant::Apply(app) => app.severity,
        }
    }

    /// Whether the images are written unchanged (clean, or a frame reordering).
    fn copies_clean(&self) -> bool {
        match self {
            Variant::Clean => true,
            Variant::Apply(app) => !app.perturbation.is_image_level(),
        }
    }

    fn dir(&self) -> String {
        format!("{}/s{}", self.label(), self.severity())
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

fn write_run(
    a: &PerturbArgs,
    ds: &Dataset,
    ctx: &SeedContext,
    store: &ImageStore,
    dir: &Path,
    quiet: bool,
) -> anyhow::Result<usize> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let root = dir
        .canonicalize()
        .with_context(|| format!("resolving {}", dir.display()))?;

    // Plan: the variants of every sample, and the work per distinct image.
    let mut plan: Vec<(&Sample, Vec<Variant>)> = Vec::with_capacity(ds.samples.len());
    let mut jobs: BTreeMap<&str, ImageJob> = BTreeMap::new();
    let mut rel_of: BTreeMap<String, &str> = BTreeMap::new();
    for s in &ds.samples {
        let modality = Modality::of(s);
        let apps = presets::expand(
            &a.perturbation,
            &a.severity,
            modality,
            s.images.len(),
            a.any_modality,
        )?;
        let mut variants: Vec<Variant> = apps.into_iter().map(Variant::Apply).collect();
        if a.severity.includes_clean() {
            variants.insert(0, Variant::Clean);
        }
        for img in &s.images {
            let rel = rel_path(&img.key);
            if let Some(other) = rel_of.insert(rel.clone(), &img.key)
                && other != img.key
            {
                bail!(
                    "image keys {other:?} and {:?} would both be written as {rel}",
                    img.key
                );
            }
            let job = jobs.entry(&img.key).or_insert_with(|| ImageJob {
                image: img,
                apply: BTreeMap::new(),
                clean: BTreeSet::new(),
            });
            for v in &variants {
                match v {
                    Variant::Apply(app) if !v.copies_clean() => {
                        job.apply.insert(v.dir(), *app);
                    }
                    _ => {
                        job.clean.insert(v.dir());
                    }
                }
            }
        }
        plan.push((s, variants));
    }

    // Perturb and write each image once, in parallel.
    let progress = Progress::new(jobs.len() as u64, "perturb", quiet);
    let done: Vec<(&str, Result<ImageResult, ImageError>)> = jobs
        .par_iter()
        .map(|(key, job)| {
            let r = process(ctx, store, &root, key, job);
            progress.inc(1);
            r.map(|res| (*key, res))
        })
        .collect::<anyhow::Result<_>>()?;
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
            match assemble(ctx, &root, s, v, &results) {
                Ok(sample) => samples.push(sample),
                Err(f) => failures.push(f),
            }
        }
    }
    samples.sort_by(|x, y| x.id.cmp(&y.id));
    failures.sort_by(|x, y| (&x.id, &x.location, &x.reason).cmp(&(&y.id, &y.location, &y.reason)));

    let path = dir.join("manifest.jsonl");
    manifest::write(&path, &ds.name, &samples, "")
        .with_context(|| format!("writing {}", path.display()))?;
    write_failures(&dir.join("failures.jsonl"), &failures)?;
    let images: usize = jobs.values().map(|j| j.apply.len() + j.clean.len()).sum();
    out(&format!(
        "wrote {} samples ({} images) to {}; {} failed\n",
        samples.len(),
        images,
        path.display(),
        failures.len()
    ))?;
    for f in failures.iter().take(20) {
        eprintln!("  {f}");
    }
    if failures.len() > 20 {
        eprintln!("  … and {} more in failures.jsonl", failures.len() - 20);
    }
    Ok(failures.len())
}

/// Decodes one image and writes every folder's version of it. Io errors stop the run;
/// decode errors fail the image; perturbation errors fail that folder only.
fn process(
    ctx: &SeedContext,
    store: &ImageStore,
    root: &Path,
    key: &str,
    job: &ImageJob,
) -> anyhow::Result<Result<ImageResult, ImageError>> {
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
            .with_context(|| format!("encoding {key}"))?;
        for folder in &job.clean {
            let dest = root.join(folder).join(&rel);
            write_bytes(&dest, &bytes)?;
            maps.insert(folder.clone(), Ok(BoxMap::Identity));
        }
    }
    Ok(Ok(ImageResult { maps }))
}

fn save(p: &Pixels, dest: &Path) -> anyhow::Result<()> {
    let bytes = p
        .encode_png()
        .with_context(|| format!("encoding {}", dest.display()))?;
    write_bytes(dest, &bytes)
}

fn write_bytes(dest: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(dest, bytes).with_context(|| format!("writing {}", dest.display()))
}

/// One output sample, or the failure that stops it.
fn assemble(
    ctx: &SeedContext,
    root: &Path,
    s: &Sample,
    v: &Variant,
    results: &BTreeMap<&str, Result<ImageResult, ImageError>>,
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
    let view = perturb::view(ctx, s, app)
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
    let seen = view.boxes(s, &maps);
    let images = view
        .sources()
        .into_iter()
        .map(|i| image_ref(&s.images[i].key))
        .collect();
    let (boxes, dropped) = (seen.boxes, seen.dropped as i64);
    let mut meta = s.meta.clone();
    meta.insert("perturbation".into(), MetaValue::Str(v.label()));
    meta.insert("severity".into(), MetaValue::Int(v.severity() as i64));
    meta.insert("source_id".into(), MetaValue::Str(s.id.clone()));
    if dropped > 0 {
        meta.insert("boxes_dropped".into(), MetaValue::Int(dropped));
    }
    Ok(Sample {
        id,
        images,
        question: s.question.clone(),
        task: s.task.clone(),
        boxes,
        meta,
    })
}

/// Where an image key is written inside a folder: the key made safe as a relative path,
/// with `.png` appended unless it already ends so.
fn rel_path(key: &str) -> String {
    let safe = key
        .split(['/', '\\'])
        .filter(|c| !c.is_empty() && *c != "." && *c != "..")
        .collect::<Vec<_>>()
        .join("/");
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

fn write_failures(path: &Path, failures: &[Failure]) -> anyhow::Result<()> {
    let mut f = std::io::BufWriter::new(
        std::fs::File::create(path).with_context(|| format!("writing {}", path.display()))?,
    );
    for fail in failures {
        writeln!(f, "{}", serde_json::to_string(fail)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    f.flush()
        .with_context(|| format!("writing {}", path.display()))
}

fn write_sheet(
    a: &PerturbArgs,
    ds: &Dataset,
    ctx: &SeedContext,
    store: &ImageStore,
    path: &Path,
) -> anyhow::Result<()> {
    let sample = match &a.sheet_sample {
        Some(id) => ds
            .samples
            .iter()
            .find(|s| &s.id == id)
            .with_context(|| format!("--sheet-sample {id:?} is not in the dataset"))?,
        None => {
            let mut sorted: Vec<&Sample> = ds.samples.iter().collect();
            sorted.sort_by(|x, y| x.id.cmp(&y.id));
            sorted
                .iter()
                .find(|s| !s.boxes.is_empty())
                .or(sorted.first())
                .copied()
                .context("the dataset has no samples to draw")?
        }
    };
    let images: Vec<Arc<Pixels>> = sample
        .images
        .iter()
        .map(|i| store.get(i))
        .collect::<Result<_, _>>()
        .with_context(|| format!("decoding the images of {}", sample.id))?;
    let rows = sheet::rows(ctx, sample, &images, &a.perturbation, &a.severity)?;
    let title = format!(
        "{}  {}  {}  seed {}",
        ds.name,
        sample.id,
        sample.modality(),
        a.seed
    );
    let png = sheet::render(&title, &rows, a.sheet_thumb);
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    png.save_png(path)?;
    eprintln!(
        "wrote contact sheet of {} ({} rows) to {}",
        sample.id,
        rows.len(),
        path.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_keys_become_safe_png_paths() {
        assert_eq!(rel_path("cxr/0001"), "cxr/0001.png");
        assert_eq!(rel_path("images/a.jpg"), "images/a.jpg.png");
        assert_eq!(rel_path("x/B.PNG"), "x/B.PNG");
        assert_eq!(rel_path("../../etc/passwd"), "etc/passwd.png");
    }
}
