//! Tracks: named lists of (perturbation, severities) that configs and the command line
//! use in place of perturbation names, and the Kvasir-VQA-x1 "transformed" recipe.
//!
//! - `kvasir-weak` reproduces Kvasir-VQA-x1's weak-augmentation track: 10 independent
//!   draws (`kvasir-transform.v1` … `.v10`, each seeded by its own label) of random
//!   resized crop (area 0.9–1.0, aspect ratio ±5%), rotation ±10°, translation up to 10%
//!   and brightness and contrast factors in 0.8–1.2, applied in random order as
//!   torchvision's ColorJitter does. medvqa composes the three geometric steps into one
//!   affine map and resamples once, bilinearly (the original resamples three times,
//!   bicubically); the output keeps the input's size and boxes are mapped.
//! - `modality-default` picks, per sample, the default track of its modality
//!   (`meta.modality`): `cxr-default`, `endoscopy-default` or `generic-default`, plus
//!   `video-default`'s frame perturbations when the sample has several images.
//!
//! A track item without its own severities takes those given on the command line
//! (`--severity`, default `all`), limited to each perturbation's levels.

use rand::RngExt;
use rand_chacha::ChaCha8Rng;

use super::geometric::{Affine, apply_affine};
use super::raster::{self, luma};
use super::{
    ANY, Application, Apply, ApplyError, Family, Modality, PerturbError, Perturbation, Perturbed,
    Severities, find,
};
use crate::pixels::Pixels;

pub const KVASIR_TRANSFORM: Perturbation = Perturbation {
    name: "kvasir-transform",
    family: Family::Geometric,
    summary: "one draw of Kvasir-VQA-x1's weak recipe: resized crop, rotation, shift, brightness/contrast (one level); boxes mapped",
    modalities: ANY,
    levels: 1,
    seeded: true,
    geometric: true,
    parameter: "ranges",
    table: |_| {
        "crop area 0.9-1.0, ratio ±5%, rotation ±10°, shift ≤0.1, brightness/contrast 0.8-1.2"
            .to_string()
    },
    apply: Apply::Image(kvasir_transform),
};

/// Draws in the order torchvision's `RandomResizedCrop`, `RandomRotation`, `RandomAffine`
/// and `ColorJitter` draw them.
fn kvasir_transform(p: &Pixels, _s: u8, rng: &mut ChaCha8Rng) -> Result<Perturbed, ApplyError> {
    let (w, h) = (p.width() as f64, p.height() as f64);
    let aspect = w / h;
    let (lo, hi) = ((aspect * 0.95).ln(), (aspect * 1.05).ln());
    let mut crop = (0.0, 0.0, w, h);
    for _ in 0..10 {
        let area = w * h * rng.random_range(0.9..1.0);
        let ratio = rng.random_range(lo..hi).exp();
        let cw = (area * ratio).sqrt().round();
        let ch = (area / ratio).sqrt().round();
        if cw > 0.0 && ch > 0.0 && cw <= w && ch <= h {
            let top = rng.random_range(0..=(h - ch) as u64) as f64;
            let left = rng.random_range(0..=(w - cw) as u64) as f64;
            crop = (left, top, cw, ch);
            break;
        }
    }
    let (left, top, cw, ch) = crop;
    let angle = rng.random_range(-10.0f64..10.0).to_radians();
    let tx = (rng.random_range(-0.1f64..0.1) * w).round();
    let ty = (rng.random_range(-0.1f64..0.1) * h).round();
    let m = Affine::translate(-left, -top)
        .then(&Affine::scale(w / cw, h / ch))
        .then(&Affine::rotate_about(-angle, w / 2.0, h / 2.0))
        .then(&Affine::translate(tx, ty));
    let mut out = apply_affine(p, m);
    let b = rng.random_range(0.8f32..1.2);
    let c = rng.random_range(0.8f32..1.2);
    let brightness_first = rng.random::<bool>();
    let bright = |img: &Pixels| raster::lut(img, &raster::table_of(|v| v * b));
    let contrast = |img: &Pixels| {
        let m = gray_mean(img);
        raster::lut(img, &raster::table_of(|v| (v - m) * c + m))
    };
    out.pixels = if brightness_first {
        contrast(&bright(&out.pixels))
    } else {
        bright(&contrast(&out.pixels))
    };
    Ok(out)
}

/// The mean of the grayscale image, as torchvision's contrast adjustment uses.
fn gray_mean(p: &Pixels) -> f32 {
    match p {
        Pixels::Gray(_) => super::tone::mean(p),
        Pixels::Rgb(_) => {
            let mut sums = [0u64; 3];
            for px in p.as_raw().chunks_exact(3) {
                for c in 0..3 {
                    sums[c] += px[c] as u64;
                }
            }
            let n = (p.as_raw().len() / 3).max(1) as f64;
            luma(sums.map(|s| (s as f64 / n) as f32))
        }
    }
}

/// One entry of a track.
#[derive(Debug, Clone, Copy)]
pub struct TrackItem {
    pub perturbation: &'static str,
    /// Fixed severities, or `None` for those asked for on the command line.
    pub severities: Option<&'static [u8]>,
    /// Independent draws per severity: 0 for one draw under the plain name, N for
    /// `name.v1` … `name.vN`.
    pub variants: u16,
}

const fn item(perturbation: &'static str) -> TrackItem {
    TrackItem {
        perturbation,
        severities: None,
        variants: 0,
    }
}

/// What a track holds.
#[derive(Debug, Clone, Copy)]
pub enum TrackKind {
    Fixed(&'static [TrackItem]),
    /// The default track of each sample's modality (see the module docs).
    ByModality,
}

#[derive(Debug, Clone, Copy)]
pub struct Track {
    pub name: &'static str,
    pub summary: &'static str,
    pub kind: TrackKind,
}

/// Every track, in listing order.
pub static TRACKS: &[Track] = &[
    Track {
        name: "kvasir-weak",
        summary: "Kvasir-VQA-x1 'transformed' track: 10 draws of kvasir-transform per image",
        kind: TrackKind::Fixed(&[TrackItem {
            perturbation: "kvasir-transform",
            severities: Some(&[1]),
            variants: 10,
        }]),
    },
    Track {
        name: "modality-default",
        summary: "per sample: the default track of its meta.modality (+ frame perturbations for multi-image samples)",
        kind: TrackKind::ByModality,
    },
    Track {
        name: "cxr-default",
        summary: "chest X-ray: generic noise, blur, JPEG, tone, geometry and all CXR artefacts",
        kind: TrackKind::Fixed(&[
            item("gaussian-noise"),
            item("poisson-noise"),
            item("gaussian-blur"),
            item("jpeg"),
            item("contrast"),
            item("gamma"),
            item("cxr-grid"),
            item("cxr-underexposure"),
            item("cxr-overexposure"),
            item("cxr-patient-rotation"),
            item("cxr-burned-in-text"),
            item("rotate"),
            item("shift"),
            item("zoom"),
        ]),
    },
    Track {
        name: "endoscopy-default",
        summary: "endoscopy: generic noise, blur, JPEG, tone, geometry and all endoscopy artefacts",
        kind: TrackKind::Fixed(&[
            item("gaussian-noise"),
            item("gaussian-blur"),
            item("motion-blur"),
            item("jpeg"),
            item("brightness"),
            item("contrast"),
            item("endo-specular"),
            item("endo-bubbles"),
            item("endo-colour-cast"),
            item("endo-vignette"),
            item("endo-motion-smear"),
            item("endo-blood"),
            item("endo-bile"),
            item("endo-green-box"),
            item("rotate"),
            item("zoom"),
            item("flip-h"),
            item("flip-v"),
        ]),
    },
    Track {
        name: "video-default",
        summary: "multi-frame questions: frame drop, shuffle and duplicate, plus noise, JPEG and motion blur",
        kind: TrackKind::Fixed(&[
            item("frame-drop"),
            item("frame-shuffle"),
            item("frame-duplicate"),
            item("gaussian-noise"),
            item("jpeg"),
            item("motion-blur"),
        ]),
    },
    Track {
        name: "controls",
        summary: "image reliance: blank-image, swapped-image and no-image (boxes not scored)",
        kind: TrackKind::Fixed(&[
            TrackItem {
                perturbation: "blank-image",
                severities: Some(&[1]),
                variants: 0,
            },
            TrackItem {
                perturbation: "swapped-image",
                severities: Some(&[1]),
                variants: 0,
            },
            TrackItem {
                perturbation: "no-image",
                severities: Some(&[1]),
                variants: 0,
            },
        ]),
    },
    Track {
        name: "option-order",
        summary: "circular evaluation: option-rotate at every rotation a choice question has",
        kind: TrackKind::Fixed(&[TrackItem {
            perturbation: "option-rotate",
            severities: Some(&[1, 2, 3, 4, 5]),
            variants: 0,
        }]),
    },
    Track {
        name: "generic-default",
        summary: "any modality: noise, blur, JPEG, tone and geometry",
        kind: TrackKind::Fixed(&[
            item("gaussian-noise"),
            item("gaussian-blur"),
            item("jpeg"),
            item("brightness"),
            item("contrast"),
            item("rotate"),
            item("zoom"),
        ]),
    },
];

pub fn track(name: &str) -> Option<&'static Track> {
    TRACKS.iter().find(|t| t.name == name)
}

fn fixed(name: &str) -> &'static [TrackItem] {
    match track(name).map(|t| t.kind) {
        Some(TrackKind::Fixed(items)) => items,
        _ => &[],
    }
}

/// The track items for one sample under `modality-default`.
pub fn modality_items(modality: Option<Modality>, n_images: usize) -> Vec<TrackItem> {
    let mut items: Vec<TrackItem> = match modality {
        Some(Modality::Cxr) => fixed("cxr-default").to_vec(),
        Some(Modality::Endoscopy) => fixed("endoscopy-default").to_vec(),
        Some(Modality::Video) => fixed("video-default").to_vec(),
        None => fixed("generic-default").to_vec(),
    };
    if n_images > 1 && modality != Some(Modality::Video) {
        items.extend(
            fixed("video-default")
                .iter()
                .filter(|i| find(i.perturbation).is_some_and(|p| p.is_frames())),
        );
    }
    items
}

/// The perturbations named explicitly (not through a track) in `names` that do not suit
/// `modality`: `cxr-grid` on a colonoscopy frame. [`expand`] skips them unless asked to
/// apply every named perturbation to every modality. A sample without a modality suits
/// everything; frame perturbations suit every modality (they need two or more images).
pub fn unsuited(names: &[String], modality: Option<Modality>) -> Vec<&'static str> {
    let Some(m) = modality else {
        return Vec::new();
    };
    names
        .iter()
        .filter(|n| track(n).is_none())
        .filter_map(|n| find(n))
        // Frame perturbations go by the number of images, not the modality: a colonoscopy
        // clip is `endoscopy` and takes `frame-shuffle`.
        .filter(|p| p.family != Family::Frames && !p.modalities.contains(&m))
        .map(|p| p.name)
        .collect()
}

/// Whether `names` bring in the perturbation `name`, on its own or through a track.
pub fn mentions(names: &[String], name: &str) -> bool {
    names.iter().any(|n| {
        n == name
            || track(n).is_some_and(|t| match t.kind {
                TrackKind::Fixed(items) => items.iter().any(|i| i.perturbation == name),
                // What the modality track gives any modality, multi-image samples included.
                TrackKind::ByModality => Modality::ALL
                    .iter()
                    .map(|m| Some(*m))
                    .chain([None])
                    .any(|m| modality_items(m, 2).iter().any(|i| i.perturbation == name)),
            })
    })
}

/// [`expand`] for one sample, keeping only what applies to it
/// ([`super::Perturbation::applies_to`]: option rotations need a choice question with more
/// options than the rotation).
pub fn expand_for(
    names: &[String],
    severities: &Severities,
    sample: &crate::sample::Sample,
    any_modality: bool,
) -> Result<Vec<Application>, PerturbError> {
    let mut apps = expand(
        names,
        severities,
        Modality::of(sample),
        sample.images.len(),
        any_modality,
    )?;
    apps.retain(|a| {
        a.perturbation
            .applies_to(a.severity, sample.images.len(), &sample.task)
    });
    Ok(apps)
}

/// Expands perturbation and track names into the applications one sample gets, in a
/// stable order without repeats. Severity 0 (clean) is not included: the caller writes the
/// clean image once, whatever the perturbations. Frame perturbations apply only to samples
/// with two or more images. A perturbation named explicitly that does not suit the
/// sample's modality ([`unsuited`]) is skipped, as the tracks skip it, unless
/// `any_modality` is set.
pub fn expand(
    names: &[String],
    severities: &Severities,
    modality: Option<Modality>,
    n_images: usize,
    any_modality: bool,
) -> Result<Vec<Application>, PerturbError> {
    let skip = if any_modality {
        Vec::new()
    } else {
        unsuited(names, modality)
    };
    // (item, whether a track brought it in)
    let mut items: Vec<(TrackItem, bool)> = Vec::new();
    for name in names {
        if let Some(t) = track(name) {
            match t.kind {
                TrackKind::Fixed(list) => items.extend(list.iter().map(|i| (*i, true))),
                TrackKind::ByModality => items.extend(
                    modality_items(modality, n_images)
                        .into_iter()
                        .map(|i| (i, true)),
                ),
            }
        } else if find(name).is_some_and(|p| skip.contains(&p.name)) {
            continue;
        } else {
            let item = TrackItem {
                perturbation: find(name)
                    .map(|p| p.name)
                    .ok_or_else(|| PerturbError::unknown(name))?,
                severities: None,
                variants: 0,
            };
            items.push((item, false));
        }
    }
    let mut out: Vec<Application> = Vec::new();
    for (it, from_track) in items {
        let Some(p) = find(it.perturbation) else {
            return Err(PerturbError::unknown(it.perturbation));
        };
        if p.is_frames() && n_images < 2 {
            continue;
        }
        let sevs: Vec<u8> = match (it.severities, severities.for_perturbation(p)) {
            (Some(s), _) => s.to_vec(),
            (None, Ok(s)) => s,
            // A track member with fewer levels than asked for (flip-h has one) takes the
            // asked severities it has, here none; a perturbation named alone is an error.
            (None, Err(PerturbError::Severity { .. })) if from_track => Vec::new(),
            (None, Err(e)) => return Err(e),
        };
        for s in sevs.into_iter().filter(|&s| s > 0) {
            let base = Application::new(p, s)?;
            let apps: Vec<Application> = if it.variants == 0 {
                vec![base]
            } else {
                (1..=it.variants).map(|v| base.variant(v)).collect()
            };
            for a in apps {
                if !out.contains(&a) {
                    out.push(a);
                }
            }
        }
    }
    out.sort_by_key(Application::sort_key);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::perturb::testimg;
    use rand::SeedableRng;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    // Regression: `perturbations = ["cxr-grid"]` drew X-ray grid lines on colonoscopy
    // frames, although `medvqa perturbations` lists it for cxr only.
    #[test]
    fn an_explicit_perturbation_skips_samples_of_other_modalities() {
        let grid = names(&["cxr-grid", "gaussian-noise"]);
        let endo = expand(&grid, &Severities::All, Some(Modality::Endoscopy), 1, false).unwrap();
        assert!(endo.iter().all(|a| a.perturbation.name != "cxr-grid"));
        assert!(endo.iter().any(|a| a.perturbation.name == "gaussian-noise"));
        assert_eq!(unsuited(&grid, Some(Modality::Endoscopy)), vec!["cxr-grid"]);
        let cxr = expand(&grid, &Severities::All, Some(Modality::Cxr), 1, false).unwrap();
        assert!(cxr.iter().any(|a| a.perturbation.name == "cxr-grid"));
        let forced = expand(&grid, &Severities::All, Some(Modality::Endoscopy), 1, true).unwrap();
        assert!(forced.iter().any(|a| a.perturbation.name == "cxr-grid"));
        assert!(unsuited(&grid, None).is_empty());
        // Frame perturbations go by image count: an endoscopy clip takes them.
        let shuffle = names(&["frame-shuffle"]);
        assert!(unsuited(&shuffle, Some(Modality::Endoscopy)).is_empty());
        let clip = expand(
            &shuffle,
            &Severities::All,
            Some(Modality::Endoscopy),
            3,
            false,
        )
        .unwrap();
        assert_eq!(clip.len(), 5);
    }

    // Regression: `--perturbation modality-default --severity 0,2` stopped the whole run,
    // because the track's flip-h has one level.
    #[test]
    fn a_track_member_with_fewer_levels_takes_the_ones_it_has() {
        let two: Severities = "0,2".parse().unwrap();
        let track = names(&["modality-default"]);
        let apps = expand(&track, &two, Some(Modality::Endoscopy), 1, false).unwrap();
        assert!(apps.iter().all(|a| a.severity == 2));
        assert!(apps.iter().all(|a| a.perturbation.name != "flip-h"));
        assert!(!apps.is_empty());
        // Named alone, a severity it lacks is still an error.
        let err = expand(&names(&["flip-h"]), &two, None, 1, false).unwrap_err();
        assert!(
            err.to_string().contains("flip-h has severities 0..=1"),
            "{err}"
        );
    }

    #[test]
    fn an_unknown_name_gets_the_closest_one() {
        let err = expand(&names(&["gausian-noise"]), &Severities::All, None, 1, false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("did you mean gaussian-noise?"), "{err}");
        assert_eq!(
            crate::perturb::canonical_name(" Gaussian_Noise "),
            "gaussian-noise"
        );
    }

    #[test]
    fn every_track_names_registered_perturbations() {
        for t in TRACKS {
            if let TrackKind::Fixed(items) = t.kind {
                for i in items {
                    assert!(
                        find(i.perturbation).is_some(),
                        "{}: {}",
                        t.name,
                        i.perturbation
                    );
                }
            }
        }
    }

    #[test]
    fn kvasir_weak_is_ten_labelled_draws() {
        let apps = expand(&names(&["kvasir-weak"]), &Severities::All, None, 1, false).unwrap();
        assert_eq!(apps.len(), 10);
        let labels: Vec<String> = apps.iter().map(Application::label).collect();
        assert_eq!(labels[0], "kvasir-transform.v1");
        assert!(labels.contains(&"kvasir-transform.v10".to_string()));
        assert!(apps.iter().all(|a| a.severity == 1));
    }

    #[test]
    fn modality_default_follows_the_modality_and_frame_count() {
        let cxr = expand(
            &names(&["modality-default"]),
            &Severities::All,
            Some(Modality::Cxr),
            1,
            false,
        )
        .unwrap();
        assert!(cxr.iter().any(|a| a.perturbation.name == "cxr-grid"));
        assert!(
            !cxr.iter()
                .any(|a| a.perturbation.family == Family::Endoscopy)
        );
        assert!(!cxr.iter().any(|a| !a.perturbation.is_image_level()));
        let video = expand(
            &names(&["modality-default"]),
            &Severities::All,
            Some(Modality::Endoscopy),
            4,
            false,
        )
        .unwrap();
        assert!(video.iter().any(|a| a.perturbation.name == "frame-shuffle"));
        assert!(video.iter().any(|a| a.perturbation.name == "endo-bubbles"));
    }

    #[test]
    fn explicit_severities_beyond_a_perturbations_levels_are_refused() {
        let three: Severities = "3".parse().unwrap();
        assert!(expand(&names(&["flip-h"]), &three, None, 1, false).is_err());
        let mixed: Severities = "1,3".parse().unwrap();
        let apps = expand(&names(&["flip-h", "rotate"]), &mixed, None, 1, false).unwrap();
        assert_eq!(apps.len(), 1 + 2, "flip-h at 1, rotate at 1 and 3");
        let all = expand(
            &names(&["flip-h", "rotate"]),
            &Severities::All,
            None,
            1,
            false,
        )
        .unwrap();
        assert_eq!(all.len(), 1 + 5);
        assert!(expand(&names(&["no-such"]), &Severities::All, None, 1, false).is_err());
    }

    #[test]
    fn kvasir_transform_is_mild() {
        let img = testimg::rgb(96, 80, 0);
        for seed in 0..5 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let out = kvasir_transform(&img, 1, &mut rng).unwrap();
            let b = crate::geometry::BBox::new(0.4, 0.4, 0.6, 0.6).unwrap();
            let m = out.map.apply(&b).unwrap();
            assert!((m.x1 - 0.4).abs() < 0.2 && m.width() < 0.3, "{m:?}");
        }
    }
}
