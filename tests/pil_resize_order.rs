#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `image_ops::resize` runs Pillow 13's passes in Pillow's order: byte-equal to Pillow on sizes
//! where it resamples vertically first, for every convolution filter
//! (`tests/fixtures/families/pil_resize_order.py`).

mod families_golden;

use families_golden as g;
use medvqa::infer::image_ops::{Filter, resize};

#[test]
fn resize_matches_pillow_when_it_resamples_vertically_first() {
    let dir = g::golden_dir("pil_resize_order");
    let cases: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("cases.json")).unwrap()).unwrap();
    let mut vertical_first = 0;
    for case in cases["cases"].as_array().unwrap() {
        let src = case["source"].as_str().unwrap();
        let name = src.trim_start_matches("images/").trim_end_matches(".png");
        let img = g::image(name).to_rgb();
        let filter = Filter::from_pil(case["resample"].as_i64().unwrap()).unwrap();
        let (w, h) = (
            case["width"].as_u64().unwrap() as u32,
            case["height"].as_u64().unwrap() as u32,
        );
        let got = resize(&img, w, h, filter);
        let want = image::open(dir.join(case["file"].as_str().unwrap()))
            .unwrap()
            .to_rgb8();
        assert_eq!(got.dimensions(), want.dimensions());
        let diff = got
            .as_raw()
            .iter()
            .zip(want.as_raw())
            .filter(|(a, b)| a != b)
            .count();
        assert_eq!(diff, 0, "{}: {diff} bytes differ from Pillow", case["file"]);
        vertical_first += case["vertical_first"].as_bool().unwrap() as usize;
    }
    assert!(
        vertical_first >= 20,
        "the goldens must exercise the vertical-first order"
    );
}
