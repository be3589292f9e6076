use super::*;
use crate::perturb::testimg;
use rand::SeedableRng;

#[test]
fn normal_quantiles_match_known_values() {
    assert!((inverse_normal_cdf(0.975) - 1.959_964).abs() < 1e-5);
    assert!(inverse_normal_cdf(0.5).abs() < 1e-12);
    assert!((inverse_normal_cdf(0.001) + 3.090_232).abs() < 1e-5);
    assert!((inverse_normal_cdf(0.999_9) - 3.719_016).abs() < 1e-5);
    let q = normal_quantiles();
    assert!(q.windows(2).all(|w| w[0] < w[1]));
    let mean: f32 = q.iter().sum::<f32>() / q.len() as f32;
    let var: f32 = q.iter().map(|v| v * v).sum::<f32>() / q.len() as f32;
    assert!(
        mean.abs() < 1e-4 && (var - 1.0).abs() < 0.02,
        "{mean} {var}"
    );
}

#[test]
fn scale_add_is_within_a_step_of_the_float_table() {
    let img = testimg::rgb(64, 48, 0);
    for (k, c) in [(0.4f32, 60.3f32), (0.05, 120.9), (0.999, 0.0), (0.0, 255.0)] {
        let want = lut(&img, &table_of(|v| v * k + c));
        let got = scale_add(&img, k, c);
        let worst = want
            .as_raw()
            .iter()
            .zip(got.as_raw())
            .map(|(a, b)| a.abs_diff(*b))
            .max()
            .unwrap();
        assert!(worst <= 1, "k {k} c {c}: off by {worst}");
    }
    // Outside the fixed-point range it is the table exactly.
    assert_eq!(
        scale_add(&img, 1.2, -10.0),
        lut(&img, &table_of(|v| v * 1.2 - 10.0))
    );
}

#[test]
fn transposing_twice_is_the_identity() {
    for img in [testimg::rgb(45, 70, 0), testimg::gray(70, 33, 1)] {
        let (w, h, ch) = (img.width() as usize, img.height() as usize, img.channels());
        let mut t = vec![0u8; img.as_raw().len()];
        let mut back = t.clone();
        transpose(img.as_raw(), &mut t, w, h, ch);
        assert_eq!(
            &t[(5 * h + 7) * ch..(5 * h + 8) * ch],
            &img.as_raw()[(7 * w + 5) * ch..(7 * w + 6) * ch]
        );
        transpose(&t, &mut back, h, w, ch);
        assert_eq!(back, img.as_raw());
    }
}

#[test]
fn the_gaussian_blur_is_close_to_the_box_cascade_it_reorders() {
    // Columns first, then rows on a transposed copy: the same filters as three
    // row-and-column box passes, rounded in another order.
    for img in [testimg::rgb(96, 80, 0), testimg::gray(81, 97, 1)] {
        let (w, h, ch) = (img.width() as usize, img.height() as usize, img.channels());
        let sigma = 4.3;
        let mut reference = img.as_raw().to_vec();
        for r in gaussian_box_radii(sigma) {
            box_blur(&mut reference, w, h, ch, r, r);
        }
        let got = gaussian_blur(&img, sigma);
        let worst = reference
            .iter()
            .zip(got.as_raw())
            .map(|(a, b)| a.abs_diff(*b))
            .max()
            .unwrap();
        assert!(worst <= 2, "off by {worst}");
    }
    let flat = with_data(&testimg::gray(30, 20, 0), vec![91u8; 600]);
    assert_eq!(gaussian_blur(&flat, 3.0), flat);
}

#[test]
fn box_blur_keeps_flat_images_flat() {
    let mut d = vec![77u8; 20 * 10 * 3];
    box_blur(&mut d, 20, 10, 3, 4, 2);
    assert!(d.iter().all(|&v| v == 77));
}

#[test]
fn box_radii_match_the_gaussian_variance() {
    for sigma in [1.0f32, 2.3, 4.7, 9.1, 13.7] {
        let var: f32 = gaussian_box_radii(sigma)
            .iter()
            .map(|&r| {
                let n = (2 * r + 1) as f32;
                (n * n - 1.0) / 12.0
            })
            .sum();
        assert!((var.sqrt() - sigma).abs() < 0.6, "{sigma}: {}", var.sqrt());
    }
}

#[test]
fn tap_blur_with_one_centre_tap_is_the_identity_and_shifts_exactly() {
    let img = testimg::rgb(17, 9, 0);
    let id = tap_blur(&img, &integer_taps(&[(0.0, 0.0, 1.0)]));
    assert_eq!(id, img);
    let shifted = tap_blur(&img, &integer_taps(&[(2.0, 1.0, 1.0)]));
    let (a, b) = (img.to_rgb(), shifted.to_rgb());
    assert_eq!(b.get_pixel(3, 3), a.get_pixel(5, 4));
    assert_eq!(b.get_pixel(16, 8), a.get_pixel(16, 8), "edges replicate");
}

#[test]
fn disk_blur_keeps_flat_images_flat_and_its_mean() {
    let flat = with_data(&testimg::gray(30, 20, 0), vec![123u8; 600]);
    assert_eq!(disk_blur(&flat, 5.5), flat);
    let img = testimg::gray(64, 64, 0);
    let b = disk_blur(&img, 4.0);
    let mean = |p: &Pixels| p.as_raw().iter().map(|&v| v as f64).sum::<f64>() / 4096.0;
    assert!((mean(&b) - mean(&img)).abs() < 2.0);
}

#[test]
fn noise_tables_read_their_quantiles() {
    let t = build_noise_table(|v, q| if q < QUANTILES / 2 { v as u8 } else { 255 });
    let img = testimg::gray(64, 64, 0);
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let out = noise_by_table(&img, &t, &mut rng);
    let white = out.as_raw().iter().filter(|&&v| v == 255).count();
    assert!((1800..2300).contains(&white), "{white} of 4096");
}
