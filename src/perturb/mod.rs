//! Deterministic perturbations for robustness tracks: a registry, the seed contract and the
//! functions the pipeline calls.
//!
//! ```text
//! $ medvqa perturbations            # every name, its modalities and its parameter per severity
//! $ medvqa perturb --dataset phantom:cxr --perturbation gaussian-noise,cxr-grid \
//!       --severity all --seed 7 --out perturbed
//! ```
//!
//! Contract (docs/design.md §3):
//! - A perturbed image is a pure function of the decoded image, the perturbation, its
//!   severity and a seed derived from identity, never from order, threads or time:
//!   `SHA-256("medvqa/v1|{run_seed}|{dataset}|{image_key}|{label}|{severity}")`, first
//!   8 bytes little-endian, seeds a `ChaCha8Rng` ([`derive_seed`]). `label` is the
//!   perturbation's name, or `name.vN` for variant N of a track that draws one
//!   perturbation several times (`kvasir-weak` draws `kvasir-transform.v1` … `.v10`).
//! - Sample-level perturbations (frame drop, shuffle, duplicate) use the sample id in place
//!   of the image key.
//! - Severity 0 is the identity, for every perturbation. Severities 1–5 follow the
//!   ImageNet-C convention: a fixed parameter table per perturbation, printed by
//!   `medvqa perturbations`. A perturbation without a strength ladder (a flip, the
//!   Kvasir-VQA-x1 recipe) has one level, severity 1.
//! - Every perturbation keeps the image's width, height and channel count. Geometric ones
//!   resample into the same frame and return a [`BoxMap`] that moves ground-truth boxes.
//! - Parameters that describe sizes (blur radii, blob sizes, shifts) are relative to the
//!   image, so a perturbation looks the same at any resolution.
//!
//! Adding a perturbation is one function in its family's file plus one entry in
//! [`REGISTRY`]; the tests at the bottom of this file run over every entry.

pub mod apply;
pub mod blur;
pub mod control;
pub mod cxr;
pub mod endoscopy;
pub mod frames;
pub mod geometric;
pub mod jpeg;
pub mod noise;
pub mod options;
pub mod presets;
pub mod raster;
pub mod sheet;
pub mod tone;

use std::fmt;
use std::str::FromStr;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

use crate::geometry::BBox;
use crate::pixels::Pixels;
pub use apply::{AsSeen, SeenBoxes, View, apply_to_sample, view};
pub use control::Swaps;
pub use geometric::{Affine, BoxMap};

/// The highest severity any perturbation has.
pub const MAX_SEVERITY: u8 = 5;

/// The imaging modalities perturbations are tagged with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Modality {
    /// Chest radiographs (grayscale).
    Cxr,
    /// Endoscopy / colonoscopy frames (colour).
    Endoscopy,
    /// Questions over several frames of a video.
    Video,
}

impl Modality {
    pub const ALL: [Modality; 3] = [Modality::Cxr, Modality::Endoscopy, Modality::Video];

    pub fn as_str(self) -> &'static str {
        match self {
            Modality::Cxr => "cxr",
            Modality::Endoscopy => "endoscopy",
            Modality::Video => "video",
        }
    }

    /// The modality a sample's `meta.modality` names, matched on common spellings
    /// (`cxr`, `chest x-ray`, `X-Ray`, `colonoscopy`, `endoscopy`, `video`, …). `None` when
    /// it names none of them, which is not an error: such samples get generic tracks.
    pub fn from_meta(value: &str) -> Option<Modality> {
        let v = value.to_ascii_lowercase();
        let has = |words: &[&str]| words.iter().any(|w| v.contains(w));
        if has(&["video", "frames"]) {
            Some(Modality::Video)
        } else if has(&[
            "endoscop",
            "colonoscop",
            "gastroscop",
            "capsule",
            "kvasir",
            "gi ",
        ]) {
            Some(Modality::Endoscopy)
        } else if has(&["cxr", "x-ray", "xray", "radiograph", "chest"]) {
            Some(Modality::Cxr)
        } else {
            None
        }
    }

    /// The modality of a sample, from its `meta.modality` ([`Modality::from_meta`]).
    pub fn of(sample: &crate::sample::Sample) -> Option<Modality> {
        sample
            .meta
            .get("modality")
            .and_then(|m| Modality::from_meta(&m.to_string()))
    }
}

impl fmt::Display for Modality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Modalities a generic perturbation suits: all of them.
pub const ANY: &[Modality] = &Modality::ALL;

/// The family a perturbation belongs to: one file each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    Noise,
    Blur,
    Compression,
    Tone,
    Cxr,
    Endoscopy,
    Geometric,
    Frames,
    Control,
    Options,
}

impl Family {
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Noise => "noise",
            Family::Blur => "blur",
            Family::Compression => "compression",
            Family::Tone => "tone",
            Family::Cxr => "cxr",
            Family::Endoscopy => "endoscopy",
            Family::Geometric => "geometric",
            Family::Frames => "frames",
            Family::Control => "control",
            Family::Options => "options",
        }
    }
}

/// An image-level perturbation at severity 1..=levels (never 0: the caller handles the
/// identity). It draws every random number from `rng`.
pub type ImageFn = fn(&Pixels, u8, &mut ChaCha8Rng) -> Result<Perturbed, ApplyError>;

/// A sample-level perturbation: given the number of frames and a severity 1..=levels, the
/// indices into the original frames, in the order the model sees them.
pub type FramesFn = fn(usize, u8, &mut ChaCha8Rng) -> Vec<usize>;

/// A sample-level change of the question: the task as the model is asked it (options
/// reordered, the reference remapped to match) at a severity 1..=levels, or `None` where
/// it does not apply (an open question; a rotation as long as the option list).
pub type OptionsFn = fn(&crate::sample::Task, u8) -> Option<crate::sample::Task>;

/// How a perturbation is applied.
#[derive(Clone, Copy)]
pub enum Apply {
    /// To each image on its own, seeded by the image key.
    Image(ImageFn),
    /// To the frame list of a multi-image sample, seeded by the sample id.
    Frames(FramesFn),
    /// Every image replaced by the image of another sample of the same modality
    /// ([`Swaps`]): the images are seen as decoded, only whose they are changes.
    Swap,
    /// No image at all: the question alone.
    NoImage,
    /// To the question's options ([`OptionsFn`]); the images are seen as decoded.
    Options(OptionsFn),
}

/// One registry entry.
pub struct Perturbation {
    /// The name used on the command line, in seeds and in reports.
    pub name: &'static str,
    pub family: Family,
    /// One line for `medvqa perturbations`.
    pub summary: &'static str,
    /// The modalities it suits (`modality-default` tracks draw from these).
    pub modalities: &'static [Modality],
    /// Severities 1..=levels exist: 5, or 1 for perturbations without a strength ladder.
    pub levels: u8,
    /// Whether the output depends on the seed. Unseeded ones (blur, JPEG, tone curves,
    /// flips) are a function of the image and severity only, as in ImageNet-C.
    pub seeded: bool,
    /// Whether it moves content, so boxes need mapping.
    pub geometric: bool,
    /// What the parameter table holds, e.g. `sigma (fraction of full scale)`.
    pub parameter: &'static str,
    /// The parameter at severity 1..=levels, as printed.
    pub table: fn(u8) -> String,
    pub apply: Apply,
}

impl fmt::Debug for Perturbation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Perturbation")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl PartialEq for Perturbation {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}
impl Eq for Perturbation {}

impl Perturbation {
    /// Whether it works on single images (as opposed to frame lists, donors or options).
    pub fn is_image_level(&self) -> bool {
        matches!(self.apply, Apply::Image(_))
    }

    /// What it works on, for errors.
    fn works_on(&self) -> &'static str {
        match self.apply {
            Apply::Image(_) => "single images (use perturb_image)",
            Apply::Frames(_) => "frame lists (use perturb_frames)",
            Apply::Swap | Apply::NoImage => "whole samples (use apply_to_sample)",
            Apply::Options(_) => "a question's options (use apply_to_sample)",
        }
    }

    /// Whether it reorders a multi-image sample's frames.
    pub fn is_frames(&self) -> bool {
        matches!(self.apply, Apply::Frames(_))
    }

    /// Whether it degrades what the model sees (as opposed to a control, which takes the
    /// image away, or an option reordering, which changes nothing a reader would call
    /// worse): only these count in robustness summaries.
    pub fn is_degradation(&self) -> bool {
        !matches!(self.family, Family::Control | Family::Options)
    }

    /// Whether it applies at `severity` to a sample with `n_images` images and `task`:
    /// frame perturbations need two or more frames, option rotations a choice question
    /// with more options than the rotation.
    pub fn applies_to(&self, severity: u8, n_images: usize, task: &crate::sample::Task) -> bool {
        match self.apply {
            Apply::Frames(_) => n_images >= 2,
            Apply::Options(f) => severity == 0 || f(task, severity).is_some(),
            Apply::Image(_) | Apply::Swap | Apply::NoImage => true,
        }
    }

    /// The severities it has: 1..=levels.
    pub fn severities(&self) -> std::ops::RangeInclusive<u8> {
        1..=self.levels
    }

    pub fn suits(&self, m: Modality) -> bool {
        self.modalities.contains(&m)
    }
}

/// An image with its perturbation applied, plus how ground-truth boxes move.
#[derive(Debug, Clone, PartialEq)]
pub struct Perturbed {
    pub pixels: Pixels,
    pub map: BoxMap,
}

impl Perturbed {
    /// A photometric result: content stays where it was.
    pub fn photometric(pixels: Pixels) -> Perturbed {
        Perturbed {
            pixels,
            map: BoxMap::Identity,
        }
    }
}

/// Why a perturbation function could not produce an image.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("JPEG round trip failed")]
    Jpeg(#[source] jpeg::JpegError),
    #[error("image is {width}x{height}; perturbations need at least 1x1")]
    Empty { width: u32, height: u32 },
}

/// Why a perturbation could not be applied to one image or sample.
#[derive(Debug, thiserror::Error)]
pub enum PerturbError {
    #[error(
        "unknown perturbation or track {name:?}{hint}; see `medvqa perturbations` (known: {known})"
    )]
    Unknown {
        name: String,
        /// `; did you mean …?` or empty.
        hint: String,
        known: String,
    },
    #[error("{name} has severities 0..={levels}; {severity} was asked for")]
    Severity {
        name: &'static str,
        severity: u8,
        levels: u8,
    },
    #[error("{name} applies to {expected}, not to {got}")]
    WrongLevel {
        name: &'static str,
        expected: &'static str,
        got: &'static str,
    },
    #[error(
        "swapped-image: no image of another sample with modality {modality} to swap in for {key}"
    )]
    NoDonor { key: String, modality: String },
    #[error("image {key}: {reason}")]
    Image { key: String, reason: String },
    #[error("{name} does not apply to this question ({why})")]
    NotApplicable { name: &'static str, why: String },
    #[error("{label} severity {severity} failed on image {key}")]
    Failed {
        key: String,
        label: String,
        severity: u8,
        #[source]
        source: ApplyError,
    },
}

/// Every perturbation medvqa has, in listing order. Names are unique (tested).
pub static REGISTRY: &[Perturbation] = &[
    // Generic: noise
    noise::GAUSSIAN,
    noise::POISSON,
    noise::SPECKLE,
    noise::SALT_PEPPER,
    // Generic: blur and resolution
    blur::GAUSSIAN,
    blur::DEFOCUS,
    blur::MOTION,
    blur::PIXELATE,
    jpeg::JPEG,
    // Generic: tone
    tone::BRIGHTNESS,
    tone::CONTRAST,
    tone::GAMMA,
    // Chest X-ray
    cxr::GRID,
    cxr::UNDEREXPOSURE,
    cxr::OVEREXPOSURE,
    cxr::PATIENT_ROTATION,
    cxr::BURNED_IN_TEXT,
    // Endoscopy
    endoscopy::SPECULAR,
    endoscopy::BUBBLES,
    endoscopy::COLOUR_CAST,
    endoscopy::VIGNETTE,
    endoscopy::MOTION_SMEAR,
    endoscopy::BLOOD_TINT,
    endoscopy::BILE_TINT,
    endoscopy::GREEN_BOX,
    // Geometric: boxes move with the content
    geometric::ROTATE,
    geometric::SHIFT,
    geometric::ZOOM,
    geometric::FLIP_H,
    geometric::FLIP_V,
    presets::KVASIR_TRANSFORM,
    // Sample level: frame lists
    frames::DROP,
    frames::SHUFFLE,
    frames::DUPLICATE,
    // Controls: the image taken away
    control::BLANK,
    control::SWAPPED,
    control::NO_IMAGE,
    // Sample level: the options reordered, the reference remapped
    options::ROTATE,
];

/// Looks a perturbation up by name.
pub fn find(name: &str) -> Option<&'static Perturbation> {
    REGISTRY.iter().find(|p| p.name == name)
}

pub(crate) fn known_names() -> String {
    names().collect::<Vec<_>>().join(", ")
}

/// Every perturbation and track name.
fn names() -> impl Iterator<Item = &'static str> {
    REGISTRY
        .iter()
        .map(|p| p.name)
        .chain(presets::TRACKS.iter().map(|t| t.name))
}

/// A perturbation or track name as users write it, made canonical: spaces around it
/// dropped, any case, `_` for `-` (`Gaussian_Noise` is `gaussian-noise`).
pub fn canonical_name(name: &str) -> String {
    name.trim().to_lowercase().replace('_', "-")
}

/// Names as users write them, made canonical, without empty entries (`a, b,` is a, b).
pub fn canonical_names(names: &[String]) -> Vec<String> {
    names
        .iter()
        .map(|n| canonical_name(n))
        .filter(|n| !n.is_empty())
        .collect()
}

impl PerturbError {
    /// `name` is neither a perturbation nor a track; the error suggests the closest.
    pub fn unknown(name: &str) -> PerturbError {
        PerturbError::Unknown {
            name: name.to_string(),
            hint: crate::suggest::hint(&canonical_name(name), names()),
            known: known_names(),
        }
    }
}

/// One perturbation at one severity, optionally one numbered variant of it: the unit a
/// robustness track is made of, and the unit predictions are keyed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Application {
    pub perturbation: &'static Perturbation,
    /// 0 (clean) ..= `perturbation.levels`.
    pub severity: u8,
    /// 0 for the perturbation itself; N ≥ 1 for the N-th independent draw in a track that
    /// asks for several (its label, and so its seed, becomes `name.vN`).
    pub variant: u16,
}

impl Application {
    /// `p` at `severity`, checked against its levels.
    pub fn new(p: &'static Perturbation, severity: u8) -> Result<Application, PerturbError> {
        if severity > p.levels {
            return Err(PerturbError::Severity {
                name: p.name,
                severity,
                levels: p.levels,
            });
        }
        Ok(Application {
            perturbation: p,
            severity,
            variant: 0,
        })
    }

    /// The N-th independent draw of the same perturbation and severity.
    pub fn variant(self, n: u16) -> Application {
        Application { variant: n, ..self }
    }

    /// The identity used in seeds, sample ids and reports: `gaussian-noise`,
    /// `kvasir-transform.v3`.
    pub fn label(&self) -> String {
        if self.variant == 0 {
            self.perturbation.name.to_string()
        } else {
            format!("{}.v{}", self.perturbation.name, self.variant)
        }
    }

    /// Orders applications by name, variant and severity, for stable output order.
    pub fn sort_key(&self) -> (&'static str, u16, u8) {
        (self.perturbation.name, self.variant, self.severity)
    }
}

/// What a run's seeds derive from besides the image or sample identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedContext {
    /// `--seed`.
    pub run_seed: u64,
    /// The dataset's name (`Dataset::name` in the data layer).
    pub dataset: String,
}

impl SeedContext {
    pub fn new(run_seed: u64, dataset: impl Into<String>) -> SeedContext {
        SeedContext {
            run_seed,
            dataset: dataset.into(),
        }
    }

    /// The generator for `identity` (an image key, or a sample id for sample-level
    /// perturbations) under `label` at `severity`.
    pub fn rng(&self, identity: &str, label: &str, severity: u8) -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(derive_seed(
            self.run_seed,
            &self.dataset,
            identity,
            label,
            severity,
        ))
    }
}

/// The seed of docs/design.md §3: `SHA-256("medvqa/v1|{run_seed}|{dataset}|{identity}|{label}|{severity}")`,
/// first 8 bytes read little-endian.
pub fn derive_seed(run_seed: u64, dataset: &str, identity: &str, label: &str, severity: u8) -> u64 {
    let text = format!("medvqa/v1|{run_seed}|{dataset}|{identity}|{label}|{severity}");
    let digest = Sha256::digest(text.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(first)
}

/// Applies an image-level perturbation to one image. Severity 0 returns the image as it
/// is, with [`BoxMap::Identity`].
pub fn perturb_image(
    ctx: &SeedContext,
    image_key: &str,
    pixels: &Pixels,
    app: &Application,
) -> Result<Perturbed, PerturbError> {
    let p = app.perturbation;
    let Apply::Image(f) = p.apply else {
        return Err(PerturbError::WrongLevel {
            name: p.name,
            expected: p.works_on(),
            got: "an image",
        });
    };
    check_severity(app)?;
    if app.severity == 0 {
        return Ok(Perturbed::photometric(pixels.clone()));
    }
    let label = app.label();
    let fail = |source| PerturbError::Failed {
        key: image_key.to_string(),
        label: label.clone(),
        severity: app.severity,
        source,
    };
    if pixels.width() == 0 || pixels.height() == 0 {
        return Err(fail(ApplyError::Empty {
            width: pixels.width(),
            height: pixels.height(),
        }));
    }
    let mut rng = ctx.rng(image_key, &label, app.severity);
    f(pixels, app.severity, &mut rng).map_err(fail)
}

/// Applies a sample-level perturbation to a sample's `n_frames` frames: the indices of the
/// original frames in the order the model sees them. Severity 0 returns `0..n_frames`.
pub fn perturb_frames(
    ctx: &SeedContext,
    sample_id: &str,
    n_frames: usize,
    app: &Application,
) -> Result<Vec<usize>, PerturbError> {
    let p = app.perturbation;
    let Apply::Frames(f) = p.apply else {
        return Err(PerturbError::WrongLevel {
            name: p.name,
            expected: p.works_on(),
            got: "a frame list",
        });
    };
    check_severity(app)?;
    if app.severity == 0 || n_frames == 0 {
        return Ok((0..n_frames).collect());
    }
    let mut rng = ctx.rng(sample_id, &app.label(), app.severity);
    Ok(f(n_frames, app.severity, &mut rng))
}

fn check_severity(app: &Application) -> Result<(), PerturbError> {
    if app.severity > app.perturbation.levels {
        return Err(PerturbError::Severity {
            name: app.perturbation.name,
            severity: app.severity,
            levels: app.perturbation.levels,
        });
    }
    Ok(())
}

/// Maps a sample's ground-truth boxes through a frame reordering: a box on original frame
/// `i` appears on every output position showing frame `i`, and disappears with it.
pub fn map_frame_boxes(
    boxes: &[crate::sample::GtBox],
    order: &[usize],
) -> Vec<crate::sample::GtBox> {
    let mut out = Vec::new();
    for (pos, &src) in order.iter().enumerate() {
        for b in boxes.iter().filter(|b| b.image == src) {
            out.push(crate::sample::GtBox {
                image: pos,
                ..b.clone()
            });
        }
    }
    out
}

/// Severities from the command line: `all` (1..=levels of each perturbation), or explicit
/// ones, as ranges (`0..5`) or lists (`0,1,3`). Severity 0 means "also write the clean
/// image".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Severities {
    All,
    List(Vec<u8>),
}

impl Severities {
    /// The severities above 0 to apply `p` at. `all` gives each perturbation its own
    /// levels. An explicit list applies the severities `p` has (so `1,3` gives a one-level
    /// flip severity 1 only); a list that names none of them, besides 0, is an error
    /// rather than a silent skip.
    pub fn for_perturbation(&self, p: &'static Perturbation) -> Result<Vec<u8>, PerturbError> {
        match self {
            Severities::All => Ok(p.severities().collect()),
            Severities::List(list) => {
                let asked: Vec<u8> = list.iter().copied().filter(|&s| s > 0).collect();
                let have: Vec<u8> = asked.iter().copied().filter(|&s| s <= p.levels).collect();
                match asked.iter().find(|&&s| s > p.levels) {
                    Some(&severity) if have.is_empty() => Err(PerturbError::Severity {
                        name: p.name,
                        severity,
                        levels: p.levels,
                    }),
                    _ => Ok(have),
                }
            }
        }
    }

    /// Whether the clean image (severity 0) is asked for.
    pub fn includes_clean(&self) -> bool {
        matches!(self, Severities::List(l) if l.contains(&0))
    }
}

impl std::fmt::Display for Severities {
    /// `all`, or the list (`0,1,3`): what [`FromStr`] reads back.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Severities::All => f.write_str("all"),
            Severities::List(v) => {
                let parts: Vec<String> = v.iter().map(u8::to_string).collect();
                f.write_str(&parts.join(","))
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("severity {0:?} is not `all`, a number 0-5, a range like 1..3 or a list like 0,1,3")]
pub struct BadSeverity(pub String);

impl FromStr for Severities {
    type Err = BadSeverity;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadSeverity(s.to_string());
        let one = |t: &str| -> Result<u8, BadSeverity> {
            let v: u8 = t.trim().parse().map_err(|_| bad())?;
            if v > MAX_SEVERITY { Err(bad()) } else { Ok(v) }
        };
        if s.trim() == "all" {
            return Ok(Severities::All);
        }
        let mut out = Vec::new();
        for part in s.split(',') {
            if let Some((a, b)) = part.split_once("..") {
                let (a, b) = (one(a)?, one(b.trim_start_matches('='))?);
                if a > b {
                    return Err(bad());
                }
                out.extend(a..=b);
            } else {
                out.push(one(part)?);
            }
        }
        out.sort_unstable();
        out.dedup();
        if out.is_empty() {
            return Err(bad());
        }
        Ok(Severities::List(out))
    }
}

/// Mean absolute difference between two images of the same size, per sample, in 0–255.
/// The strength measure the monotonicity tests and the contact sheet use.
pub fn mean_abs_diff(a: &Pixels, b: &Pixels) -> f64 {
    let (ra, rb) = (a.as_raw(), b.as_raw());
    if ra.len() != rb.len() || ra.is_empty() {
        return f64::NAN;
    }
    let sum: u64 = ra.iter().zip(rb).map(|(&x, &y)| x.abs_diff(y) as u64).sum();
    sum as f64 / ra.len() as f64
}

/// A box through a perturbation's map: `None` when it leaves the image entirely.
pub fn map_box(map: &BoxMap, b: &BBox) -> Option<BBox> {
    map.apply(b)
}

#[cfg(test)]
pub(crate) mod testimg {
    //! A fixed set of test images: smooth random texture (fractal noise from a fixed seed)
    //! under a bright blob and a dark band, gray and RGB.

    use image::{GrayImage, Luma, Rgb, RgbImage};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use crate::pixels::Pixels;

    fn field(w: u32, h: u32, variant: u32, channel: u32) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(1000 + variant as u64 * 10 + channel as u64);
        let cell = (w.min(h) as f32 / 6.0).max(2.0);
        crate::draw::fractal_noise(w, h, cell, 5, &mut rng)
    }

    fn value(n: f32, x: u32, y: u32, w: u32, h: u32, variant: u32) -> f32 {
        let (fx, fy) = (x as f32 / w as f32, y as f32 / h as f32);
        let (cx, cy) = (0.35 + 0.1 * variant as f32, 0.5);
        let r = ((fx - cx).powi(2) + (fy - cy).powi(2)).sqrt();
        let blob = if r < 0.15 { 60.0 } else { 0.0 };
        let band = if (0.7..0.78).contains(&fy) {
            -40.0
        } else {
            0.0
        };
        (30.0 + 170.0 * n + blob + band).clamp(0.0, 255.0)
    }

    pub fn gray(w: u32, h: u32, variant: u32) -> Pixels {
        let n = field(w, h, variant, 0);
        Pixels::Gray(GrayImage::from_fn(w, h, |x, y| {
            let v = value(n[(y * w + x) as usize], x, y, w, h, variant);
            Luma([v.round() as u8])
        }))
    }

    pub fn rgb(w: u32, h: u32, variant: u32) -> Pixels {
        let (r, g) = (field(w, h, variant, 0), field(w, h, variant, 1));
        Pixels::Rgb(RgbImage::from_fn(w, h, |x, y| {
            let i = (y * w + x) as usize;
            let red = value(r[i], x, y, w, h, variant);
            let green = value(g[i], x, y, w, h, variant) * 0.6 + 20.0;
            Rgb([
                red.round() as u8,
                green.round() as u8,
                (green * 0.7).round() as u8,
            ])
        }))
    }

    /// The fixed set: two gray, two RGB.
    pub fn set(w: u32, h: u32) -> Vec<Pixels> {
        vec![gray(w, h, 0), gray(w, h, 1), rgb(w, h, 0), rgb(w, h, 2)]
    }
}

#[cfg(test)]
mod tests;
