use super::*;
use crate::perturb::testimg;
use rand::SeedableRng;

fn bbox(x1: f64, y1: f64, x2: f64, y2: f64) -> BBox {
    BBox::new(x1, y1, x2, y2).unwrap()
}

#[test]
fn flips_map_boxes_exactly_and_twice_is_the_identity() {
    let img = testimg::rgb(40, 30, 0);
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let once = flip_h(&img, 1, &mut rng).unwrap();
    let b = bbox(0.1, 0.2, 0.3, 0.5);
    assert_eq!(once.map.apply(&b).unwrap().to_array(), [0.7, 0.2, 0.9, 0.5]);
    assert_eq!(flip_h(&once.pixels, 1, &mut rng).unwrap().pixels, img);
    let v = flip_v(&img, 1, &mut rng).unwrap();
    assert_eq!(v.map.apply(&b).unwrap().to_array(), [0.1, 0.5, 0.3, 0.8]);
    assert_eq!(flip_v(&v.pixels, 1, &mut rng).unwrap().pixels, img);
}

#[test]
fn a_rotated_box_is_the_hull_of_its_corners() {
    // A centred square turned 45° grows to √2 its side, still centred.
    let m = BoxMap::Affine {
        to_output: Affine::rotate_about(std::f64::consts::FRAC_PI_4, 50.0, 50.0),
        src: (100, 100),
        dst: (100, 100),
    };
    let out = m.apply(&bbox(0.4, 0.4, 0.6, 0.6)).unwrap();
    let half = 0.1 * 2f64.sqrt();
    for (got, want) in out
        .to_array()
        .iter()
        .zip([0.5 - half, 0.5 - half, 0.5 + half, 0.5 + half])
    {
        assert!((got - want).abs() < 1e-6, "{out:?}");
    }
}

// Regression: the hull of the rotated corners, clipped afterwards, over-reached where
// the image border cut the rotated box (7.3 px too wide, IoU 0.93, measured on a
// rectangle cut by the top edge). The mapped box must be the extent of the box's
// points that stay inside the image, which a dense grid of them approximates.
#[test]
fn a_rotated_box_cut_by_the_border_is_the_extent_of_what_stays_inside() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut tighter = 0;
    for _ in 0..200 {
        let angle = rng.random_range(-0.8..0.8f64);
        let (x1, y1) = (rng.random_range(0.0..0.8), rng.random_range(0.0..0.8));
        let b = bbox(
            x1,
            y1,
            x1 + rng.random_range(0.05..0.2),
            y1 + rng.random_range(0.05..0.2),
        );
        let to_output = Affine::rotate_about(angle, 50.0, 40.0);
        let m = BoxMap::Affine {
            to_output,
            src: (100, 80),
            dst: (100, 80),
        };
        let got = m.apply(&b);
        let n = 300;
        let (mut e1, mut f1, mut e2, mut f2) = (f64::MAX, f64::MAX, f64::MIN, f64::MIN);
        for i in 0..=n {
            for j in 0..=n {
                let x = b.x1 + (b.x2 - b.x1) * i as f64 / n as f64;
                let y = b.y1 + (b.y2 - b.y1) * j as f64 / n as f64;
                let (u, v) = to_output.map(x * 100.0, y * 80.0);
                let (u, v) = (u / 100.0, v / 80.0);
                if (0.0..=1.0).contains(&u) && (0.0..=1.0).contains(&v) {
                    (e1, f1, e2, f2) = (e1.min(u), f1.min(v), e2.max(u), f2.max(v));
                }
            }
        }
        let Some(got) = got else {
            assert!(e1 > e2 || e2 - e1 < 2e-3 || f2 - f1 < 2e-3, "{b:?} dropped");
            continue;
        };
        for (g, w) in got.to_array().iter().zip([e1, f1, e2, f2]) {
            assert!(
                (g - w).abs() < 2e-3,
                "{b:?} at {angle}: {got:?} vs {:?}",
                [e1, f1, e2, f2]
            );
        }
        // Count the cases where the old rule (hull, then clip) was wider.
        let corners = [(b.x1, b.y1), (b.x2, b.y1), (b.x1, b.y2), (b.x2, b.y2)];
        let hull_w = corners
            .iter()
            .map(|&(x, y)| (to_output.map(x * 100.0, y * 80.0).0 / 100.0).clamp(0.0, 1.0))
            .fold((f64::MAX, f64::MIN), |(a, b), u| (a.min(u), b.max(u)));
        if hull_w.1 - hull_w.0 > got.x2 - got.x1 + 1e-3 {
            tighter += 1;
        }
    }
    assert!(tighter > 0, "no case exercised the border cut");
}

#[test]
fn boxes_that_leave_are_dropped_and_partial_ones_clipped() {
    let m = BoxMap::Affine {
        to_output: Affine::translate(30.0, 0.0),
        src: (100, 100),
        dst: (100, 100),
    };
    assert_eq!(m.apply(&bbox(0.75, 0.1, 0.9, 0.2)), None);
    assert_eq!(
        m.apply(&bbox(0.6, 0.1, 0.8, 0.2)).unwrap().to_array(),
        [0.9, 0.1, 1.0, 0.2]
    );
}

#[test]
fn integer_shift_copies_pixels_and_fills_black() {
    let img = testimg::gray(20, 10, 0);
    let out = apply_affine(&img, Affine::translate(3.0, 2.0)).pixels;
    let (a, b) = (img.to_rgb(), out.to_rgb());
    assert_eq!(b.get_pixel(10, 5), a.get_pixel(7, 3));
    assert_eq!(b.get_pixel(1, 1).0, [0, 0, 0]);
}

#[test]
fn the_separable_warp_gives_the_general_warps_bytes() {
    // Zooms in and out, flips, partly and wholly outside the source, tiny sources.
    let maps = [
        Affine::translate(-13.3, -7.8).then(&Affine::scale(1.0 / 0.7, 1.0 / 0.7)),
        Affine::scale(0.45, 0.8).then(&Affine::translate(3.2, 9.7)),
        Affine([-1.0, 0.0, 40.0, 0.0, 1.0, 0.0]),
        Affine([1.3, 0.0, -2.5, 0.0, -0.9, 35.1]),
        Affine::translate(0.5, -0.25),
        Affine::translate(500.0, 0.0).then(&Affine::scale(1.01, 1.0)),
    ];
    for img in [
        testimg::rgb(40, 30, 0),
        testimg::gray(37, 29, 1),
        testimg::rgb(2, 2, 0),
    ] {
        for m in &maps {
            let inv = m.inverse().unwrap();
            for dst in [img.dimensions(), (23, 41)] {
                let (sep, general) = match img.channels() {
                    1 => (
                        warp_separable::<1>(&img, &inv, dst),
                        warp_n::<1>(&img, &inv, dst),
                    ),
                    _ => (
                        warp_separable::<3>(&img, &inv, dst),
                        warp_n::<3>(&img, &inv, dst),
                    ),
                };
                assert!(sep == general, "{m:?} to {dst:?} on {:?}", img.dimensions());
            }
        }
    }
}

#[test]
fn affine_inverse_and_composition_agree() {
    let m = Affine::rotate_about(0.3, 10.0, 20.0).then(&Affine::scale(1.5, 0.8));
    let inv = m.inverse().unwrap();
    let (x, y) = m.map(3.0, 4.0);
    let (bx, by) = inv.map(x, y);
    assert!((bx - 3.0).abs() < 1e-9 && (by - 4.0).abs() < 1e-9);
    assert!(Affine::scale(0.0, 1.0).inverse().is_none());
}

/// Draws an elliptical finding, runs every geometric perturbation over it, and checks
/// that the moved mask lies inside the mapped box (1 px of resampling slack).
pub(crate) fn assert_mask_inside_mapped_box(
    img: &Pixels,
    mask: &image::GrayImage,
    bbox: &BBox,
    key: &str,
) -> usize {
    use crate::perturb::{Application, REGISTRY, SeedContext, perturb_image};
    let (w, h) = mask.dimensions();
    let mut checked = 0;
    for p in REGISTRY.iter().filter(|p| p.geometric) {
        for s in p.severities() {
            for seed in 0..4 {
                let app = Application::new(p, s).unwrap();
                let ctx = SeedContext::new(seed, "masks");
                let out = perturb_image(&ctx, key, img, &app).unwrap();
                let moved = out.map.warp(&Pixels::Gray(mask.clone()));
                let on: Vec<(u32, u32)> = match &moved {
                    Pixels::Gray(g) => g
                        .enumerate_pixels()
                        .filter(|(_, _, v)| v.0[0] >= 128)
                        .map(|(x, y, _)| (x, y))
                        .collect(),
                    Pixels::Rgb(_) => unreachable!(),
                };
                match out.map.apply(bbox) {
                    None => assert!(
                        on.is_empty(),
                        "{} s{s}: box dropped, mask still there",
                        p.name
                    ),
                    Some(b) => {
                        let [x1, y1, x2, y2] = b.to_pixels(w, h);
                        for (x, y) in on {
                            let (cx, cy) = (x as f64 + 0.5, y as f64 + 0.5);
                            assert!(
                                cx >= x1 - 1.0
                                    && cx <= x2 + 1.0
                                    && cy >= y1 - 1.0
                                    && cy <= y2 + 1.0,
                                "{} s{s} seed {seed}: mask pixel ({x},{y}) outside {b:?}",
                                p.name
                            );
                        }
                        checked += 1;
                    }
                }
            }
        }
    }
    checked
}

#[test]
fn a_drawn_finding_stays_inside_its_mapped_box() {
    use crate::draw::{Canvas, Ellipse};
    let (w, h) = (120u32, 90u32);
    let mut c = Canvas::new(w, h, &[0.0]);
    c.fill_ellipse(
        Ellipse::new(84.0, 30.0, 14.0, 9.0).rotated(0.5),
        &[255.0],
        1.0,
        0.7,
    );
    let mask = match c.to_pixels() {
        Pixels::Gray(g) => g,
        Pixels::Rgb(_) => unreachable!(),
    };
    // The tight box around the mask, as the phantom generator reports it.
    let on: Vec<(u32, u32)> = mask
        .enumerate_pixels()
        .filter(|(_, _, v)| v.0[0] >= 128)
        .map(|(x, y, _)| (x, y))
        .collect();
    let x1 = on.iter().map(|p| p.0).min().unwrap() as f64;
    let x2 = on.iter().map(|p| p.0).max().unwrap() as f64 + 1.0;
    let y1 = on.iter().map(|p| p.1).min().unwrap() as f64;
    let y2 = on.iter().map(|p| p.1).max().unwrap() as f64 + 1.0;
    let bbox = BBox::new(x1 / w as f64, y1 / h as f64, x2 / w as f64, y2 / h as f64).unwrap();
    let img = testimg::rgb(w, h, 0);
    assert!(assert_mask_inside_mapped_box(&img, &mask, &bbox, "drawn/1") > 50);
}

#[test]
fn phantom_findings_stay_inside_their_mapped_boxes() {
    use crate::data::phantom::{self, PhantomSet};
    let mut checked = 0;
    for set in PhantomSet::ALL {
        let case = phantom::case(set, 3, 1);
        assert!(!case.findings.is_empty(), "{} draws no finding", set.name());
        // The largest and the smallest finding of the case.
        let mut findings: Vec<_> = case.findings.iter().collect();
        findings.sort_by_key(|f| f.mask.as_raw().iter().filter(|&&v| v > 0).count());
        for f in [findings[0], findings[findings.len() - 1]] {
            let img = &case.images[f.image];
            let key = format!("{}/{}", case.key, f.image);
            checked += assert_mask_inside_mapped_box(img, &f.mask, &f.bbox, &key);
        }
    }
    assert!(checked > 300, "{checked}");
}

#[test]
fn zoom_keeps_the_size_and_enlarges_boxes() {
    let img = testimg::rgb(64, 48, 1);
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let out = zoom(&img, 5, &mut rng).unwrap();
    assert_eq!(out.pixels.dimensions(), (64, 48));
    let b = bbox(0.45, 0.45, 0.55, 0.55);
    let m = out.map.apply(&b).unwrap();
    assert!((m.width() - 0.2).abs() < 1e-6, "{m:?}");
}
