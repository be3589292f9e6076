//! Registry-driven invariants: every entry, gray and RGB.

use std::collections::BTreeSet;

use super::*;

// About ImageNet-C's scale, which the parameter tables are written for.
const W: u32 = 224;
const H: u32 = 192;

fn ctx(seed: u64) -> SeedContext {
    SeedContext::new(seed, "test-set")
}

fn image_entries() -> impl Iterator<Item = &'static Perturbation> {
    REGISTRY.iter().filter(|p| p.is_image_level())
}

/// The fixed images an entry is measured on: the formats of the modalities it suits.
fn suited_images(p: &Perturbation) -> Vec<Pixels> {
    let gray_ok = p.suits(Modality::Cxr);
    let rgb_ok = p.suits(Modality::Endoscopy) || p.suits(Modality::Video);
    testimg::set(W, H)
        .into_iter()
        .filter(|i| if i.is_gray() { gray_ok } else { rgb_ok })
        .collect()
}

fn run(p: &'static Perturbation, img: &Pixels, sev: u8, seed: u64, key: &str) -> Perturbed {
    perturb_image(&ctx(seed), key, img, &Application::new(p, sev).unwrap()).unwrap()
}

#[test]
fn names_are_unique_and_tables_cover_every_level() {
    let names: BTreeSet<_> = REGISTRY.iter().map(|p| p.name).collect();
    assert_eq!(names.len(), REGISTRY.len());
    for p in REGISTRY {
        assert!(p.levels == 1 || p.levels == MAX_SEVERITY, "{}", p.name);
        assert!(!p.modalities.is_empty(), "{}", p.name);
        assert!(!p.summary.is_empty() && !p.parameter.is_empty());
        for s in p.severities() {
            assert!(!(p.table)(s).is_empty(), "{} s{s}", p.name);
        }
        assert!(
            presets::TRACKS.iter().all(|t| t.name != p.name),
            "{} is both a perturbation and a track",
            p.name
        );
    }
}

#[test]
fn the_seed_follows_the_design_formula() {
    // SHA-256("medvqa/v1|7|phantom|cxr/0001|gaussian-noise|3"), first 8 bytes LE.
    let text = "medvqa/v1|7|phantom|cxr/0001|gaussian-noise|3";
    let d = Sha256::digest(text.as_bytes());
    let want = u64::from_le_bytes(d[..8].try_into().unwrap());
    assert_eq!(
        derive_seed(7, "phantom", "cxr/0001", "gaussian-noise", 3),
        want
    );
    assert_ne!(
        derive_seed(7, "phantom", "cxr/0001", "gaussian-noise", 3),
        derive_seed(7, "phantom", "cxr/0001", "gaussian-noise", 4)
    );
}

#[test]
fn every_image_perturbation_is_deterministic_and_keeps_the_size() {
    for p in image_entries() {
        for img in testimg::set(W, H) {
            for s in p.severities() {
                let a = run(p, &img, s, 1, "k/1.png");
                let b = run(p, &img, s, 1, "k/1.png");
                assert!(a == b, "{} s{s} is not deterministic", p.name);
                assert_eq!(a.pixels.dimensions(), img.dimensions(), "{} s{s}", p.name);
                assert_eq!(a.pixels.channels(), img.channels(), "{} s{s}", p.name);
                assert_eq!(
                    a.map == BoxMap::Identity,
                    !p.geometric,
                    "{} s{s}: geometric flag and box map disagree",
                    p.name
                );
            }
        }
    }
}

#[test]
fn severity_zero_is_the_identity() {
    for p in image_entries() {
        for img in testimg::set(W, H) {
            let out = run(p, &img, 0, 9, "k");
            assert!(out.pixels == img, "{}", p.name);
            assert_eq!(out.map, BoxMap::Identity);
        }
    }
    for p in REGISTRY.iter().filter(|p| p.is_frames()) {
        let app = Application::new(p, 0).unwrap();
        assert_eq!(perturb_frames(&ctx(1), "s", 4, &app).unwrap(), [0, 1, 2, 3]);
    }
}

#[test]
fn severities_and_seeds_change_the_bytes() {
    for p in image_entries() {
        for img in suited_images(p) {
            let clean = img.as_raw().to_vec();
            let outs: Vec<Vec<u8>> = p
                .severities()
                .map(|s| run(p, &img, s, 3, "a/b.png").pixels.as_raw().to_vec())
                .collect();
            for (i, o) in outs.iter().enumerate() {
                assert!(o != &clean, "{} s{} equals the clean image", p.name, i + 1);
                for (j, o2) in outs.iter().enumerate().skip(i + 1) {
                    assert!(
                        o != o2,
                        "{}: s{} and s{} give the same bytes",
                        p.name,
                        i + 1,
                        j + 1
                    );
                }
            }
            // Some draws are coin flips (a rotation's direction), so a seeded
            // perturbation must differ for some, not every, other seed or key.
            let s = p.levels;
            let same = run(p, &img, s, 3, "a/b.png").pixels;
            let seeds_differ = (4..12).any(|seed| run(p, &img, s, seed, "a/b.png").pixels != same);
            let keys_differ =
                (0..8).any(|k| run(p, &img, s, 3, &format!("a/{k}.png")).pixels != same);
            if p.seeded {
                assert!(seeds_differ, "{}: the seed does not matter", p.name);
                assert!(keys_differ, "{}: the image key does not matter", p.name);
            } else {
                assert!(!seeds_differ, "{} claims to be unseeded", p.name);
                assert!(!keys_differ, "{} claims to be unseeded", p.name);
            }
        }
    }
}

#[test]
fn strength_grows_with_severity() {
    for p in image_entries().filter(|p| p.levels > 1) {
        let images = suited_images(p);
        let mut last = 0.0;
        for s in p.severities() {
            let mad: f64 = images
                .iter()
                .enumerate()
                .map(|(i, img)| mean_abs_diff(img, &run(p, img, s, 11, &format!("img{i}")).pixels))
                .sum::<f64>()
                / images.len() as f64;
            assert!(
                mad >= last,
                "{}: mean abs diff falls from {last:.3} to {mad:.3} at s{s}",
                p.name
            );
            last = mad;
        }
    }
}

#[test]
fn frame_perturbations_return_valid_changed_orders() {
    for p in REGISTRY.iter().filter(|p| p.is_frames()) {
        for n in 1..=5usize {
            for s in p.severities() {
                let app = Application::new(p, s).unwrap();
                let a = perturb_frames(&ctx(1), "q/1", n, &app).unwrap();
                assert_eq!(a, perturb_frames(&ctx(1), "q/1", n, &app).unwrap());
                assert!(
                    !a.is_empty() && a.iter().all(|&i| i < n),
                    "{} {a:?}",
                    p.name
                );
                if n >= 2 {
                    assert_ne!(a, (0..n).collect::<Vec<_>>(), "{} s{s} n{n}", p.name);
                }
            }
        }
    }
}

#[test]
fn wrong_level_and_severity_are_errors_not_panics() {
    let img = testimg::gray(8, 8, 0);
    let flip = find("flip-h").unwrap();
    assert!(matches!(
        Application::new(flip, 2),
        Err(PerturbError::Severity { levels: 1, .. })
    ));
    let drop = Application::new(find("frame-drop").unwrap(), 1).unwrap();
    assert!(perturb_image(&ctx(0), "k", &img, &drop).is_err());
    let noise = Application::new(find("gaussian-noise").unwrap(), 1).unwrap();
    assert!(perturb_frames(&ctx(0), "k", 3, &noise).is_err());
}

#[test]
fn tiny_images_do_not_panic() {
    for p in image_entries() {
        for img in [testimg::gray(1, 1, 0), testimg::rgb(3, 2, 0)] {
            for s in p.severities() {
                let out = run(p, &img, s, 1, "tiny");
                assert_eq!(out.pixels.dimensions(), img.dimensions(), "{}", p.name);
            }
        }
    }
}

#[test]
fn severities_parse_all_ranges_and_lists() {
    let list = |s: &str| match s.parse::<Severities>().unwrap() {
        Severities::List(l) => l,
        Severities::All => vec![],
    };
    assert_eq!("all".parse::<Severities>().unwrap(), Severities::All);
    assert_eq!(list("0,1,3"), [0, 1, 3]);
    assert_eq!(list("3,1..2"), [1, 2, 3]);
    assert_eq!(list("0..5"), [0, 1, 2, 3, 4, 5]);
    assert!("0,2".parse::<Severities>().unwrap().includes_clean());
    for bad in ["", "6", "x", "3..1", "1,,2"] {
        assert!(bad.parse::<Severities>().is_err(), "{bad}");
    }
}

#[test]
fn modality_names_are_matched_not_guessed() {
    assert_eq!(Modality::from_meta("CXR"), Some(Modality::Cxr));
    assert_eq!(Modality::from_meta("Chest X-Ray"), Some(Modality::Cxr));
    assert_eq!(
        Modality::from_meta("colonoscopy"),
        Some(Modality::Endoscopy)
    );
    assert_eq!(Modality::from_meta("video"), Some(Modality::Video));
    assert_eq!(Modality::from_meta("dermoscopy photo"), None);
}

#[test]
fn frame_boxes_follow_their_frames() {
    use crate::sample::GtBox;
    let b = |image| GtBox {
        image,
        bbox: BBox::new(0.1, 0.1, 0.2, 0.2).unwrap(),
        label: None,
    };
    let mapped = map_frame_boxes(&[b(0), b(2)], &[2, 2, 1]);
    assert_eq!(
        mapped.iter().map(|g| g.image).collect::<Vec<_>>(),
        [0, 1],
        "frame 2's box shows twice, frame 0's is dropped"
    );
}
