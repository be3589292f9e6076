use super::*;
use proptest::prelude::*;

fn gt(image: usize, b: [f64; 4]) -> GtBox {
    GtBox {
        image,
        bbox: BBox::new(b[0], b[1], b[2], b[3]).unwrap(),
        label: None,
    }
}

fn one(s: &str) -> RawBoxes {
    find_boxes(s).unwrap_or_else(|| panic!("no boxes in {s:?}"))
}

fn coords(r: &RawBoxes) -> Vec<[f64; 4]> {
    r.boxes.iter().map(|b| b.coords.unwrap()).collect()
}

#[test]
fn gemex_location_tag_reads_lists_of_boxes() {
    let r = one("No. <location> [[43, 35, 212, 156], [8, 19, 168, 142]]");
    assert_eq!(r.syntax, BoxSyntax::LocationTag);
    assert_eq!(
        coords(&r),
        [[43.0, 35.0, 212.0, 156.0], [8.0, 19.0, 168.0, 142.0]]
    );
    assert_eq!(
        strip_spans("No. <location> [[1, 2, 3, 4]]", &r.spans[..0]),
        "No. <location> [[1, 2, 3, 4]]"
    );
    let s = "No. <location> [[43, 35, 212, 156]]";
    assert_eq!(strip_spans(s, &one(s).spans).trim(), "No.");
}

#[test]
fn gemex_training_form_with_answer_and_reason() {
    let s = "<answer> B <reason> The left lung is clear. <location> [[121, 9, 179, 192]]";
    let r = one(s);
    assert_eq!(coords(&r), [[121.0, 9.0, 179.0, 192.0]]);
}

#[test]
fn json_lists_single_nested_and_in_objects() {
    assert_eq!(
        coords(&one("box: [0.1, 0.2, 0.5, 0.6].")),
        [[0.1, 0.2, 0.5, 0.6]]
    );
    let r = one("[[1,2,3,4],[5, 6, 7, 8]]");
    assert_eq!(r.syntax, BoxSyntax::Json);
    assert_eq!(coords(&r).len(), 2);
    assert_eq!(r.spans, vec![Range { start: 0, end: 24 }]);
    let r = one(r#"[{"image": 1, "box": [1, 2, 3, 4]}, {"bbox_2d": [5, 6, 7, 8], "label": "x"}]"#);
    assert_eq!(r.boxes[0].image, Some(1));
    assert_eq!(r.boxes[1].image, None);
    // Lists that are not four numbers are not boxes.
    assert!(find_boxes("sizes [1, 2, 3] and [a, b, c, d]").is_none());
}

#[test]
fn qwen_box_tokens_use_the_thousand_grid() {
    let r = one(
        "<|object_ref_start|>nodule<|object_ref_end|><|box_start|>(100,200),(500, 600)<|box_end|>",
    );
    assert_eq!(r.syntax, BoxSyntax::QwenBox);
    assert_eq!(coords(&r), [[100.0, 200.0, 500.0, 600.0]]);
    assert_eq!(r.syntax.declared_frame(), Some(BoxFrame::Grid(1000)));
}

#[test]
fn florence_locs_are_bin_centres() {
    let r = one("polyp<loc_100><loc_200><loc_499><loc_999>");
    assert_eq!(r.syntax, BoxSyntax::FlorenceLoc);
    let p = normalize_boxes(&r, BoxFrame::Normalized, 0, 1, &|_| None).unwrap();
    let b = p[0].bbox.unwrap().to_array();
    assert_eq!(b, [0.1005, 0.2005, 0.4995, 0.9995]);
}

#[test]
fn paligemma_locs_are_y_first_on_1024_bins() {
    let r =
        one("<loc0256><loc0512><loc0768><loc1023> polyp ; <loc0000><loc0000><loc0512><loc0512> x");
    assert_eq!(r.syntax, BoxSyntax::PaligemmaLoc);
    let p = normalize_boxes(&r, BoxFrame::Normalized, 0, 1, &|_| None).unwrap();
    assert_eq!(
        p[0].bbox.unwrap().to_array(),
        [0.5, 0.25, 1023.0 / 1024.0, 0.75]
    );
    assert_eq!(p[1].bbox.unwrap().to_array(), [0.0, 0.0, 0.5, 0.5]);
}

#[test]
fn unusable_boxes_still_count() {
    // Inverted corners, bins out of range, a run of three locs.
    let r = one("[5, 5, 1, 1]");
    let p = normalize_boxes(&r, BoxFrame::Normalized, 0, 1, &|_| None).unwrap();
    assert_eq!(
        p,
        [PredBox {
            image: 0,
            bbox: None
        }]
    );
    let r = one("<loc_1><loc_2><loc_3>");
    assert_eq!(
        r.boxes,
        [RawBox {
            image: None,
            coords: None
        }]
    );
    let r = one("<loc1024><loc0000><loc0010><loc0010>");
    assert_eq!(r.boxes[0].coords, None);
    let r = one("<location> none");
    assert_eq!(r.boxes.len(), 1);
    // An image index past the sample's images.
    let r = one(r#"{"image": 3, "box": [0, 0, 1, 1]}"#);
    let p = normalize_boxes(&r, BoxFrame::Normalized, 0, 2, &|_| None).unwrap();
    assert_eq!(p[0].bbox, None);
}

#[test]
fn the_caller_frame_applies_to_generic_syntaxes_only() {
    let r = one("[0, 112, 224, 224]");
    let f: BoxFrame = "pixels:224x224".parse().unwrap();
    let p = normalize_boxes(&r, f, 0, 1, &|_| None).unwrap();
    assert_eq!(p[0].bbox.unwrap().to_array(), [0.0, 0.5, 1.0, 1.0]);
    // Pixels of the image as given needs its size; without it, an error (not a guess).
    assert!(normalize_boxes(&r, BoxFrame::Pixels, 0, 1, &|_| None).is_err());
    let p = normalize_boxes(&r, BoxFrame::Pixels, 0, 1, &|_| Some((448, 224))).unwrap();
    assert_eq!(p[0].bbox.unwrap().to_array(), [0.0, 0.5, 0.5, 1.0]);
}

#[test]
fn grounding_iou_divides_by_the_larger_count() {
    let g = [gt(0, [0.0, 0.0, 0.5, 0.5])];
    let exact = PredBox {
        image: 0,
        bbox: Some(g[0].bbox),
    };
    let r = ground(&[exact], &g);
    assert_eq!((r.iou, r.gt_hits_at_05), (1.0, 1));
    // A second, useless prediction halves the question's IoU.
    let r = ground(
        &[
            exact,
            PredBox {
                image: 0,
                bbox: None,
            },
        ],
        &g,
    );
    assert_eq!(r.iou, 0.5);
    // The same box on another image does not overlap.
    let r = ground(
        &[PredBox {
            image: 1,
            bbox: Some(g[0].bbox),
        }],
        &g,
    );
    assert_eq!(r.iou, 0.0);
    assert_eq!(ground(&[], &g).iou, 0.0);
}

#[test]
fn assignment_prefers_the_total_over_a_greedy_pick() {
    // Greedy would take (0,0)=0.9 and then (1,1)=0.1; the optimum is 0.8 + 0.8.
    let w = vec![vec![0.9, 0.8], vec![0.8, 0.1]];
    assert_eq!(assign(&w), [(0, 1), (1, 0)]);
    let tall = vec![vec![0.1], vec![0.7], vec![0.3]];
    assert_eq!(assign(&tall), [(1, 0)]);
}

fn brute(w: &[Vec<f64>]) -> f64 {
    fn go(w: &[Vec<f64>], i: usize, used: &mut Vec<bool>) -> f64 {
        if i == w.len() {
            return 0.0;
        }
        let mut best = go(w, i + 1, used);
        for j in 0..used.len() {
            if !used[j] {
                used[j] = true;
                best = best.max(w[i][j] + go(w, i + 1, used));
                used[j] = false;
            }
        }
        best
    }
    let m = w.first().map_or(0, Vec::len);
    go(w, 0, &mut vec![false; m])
}

fn bbox() -> impl Strategy<Value = BBox> {
    (0.0..1.0f64, 0.0..1.0f64, 0.0..1.0f64, 0.0..1.0f64)
        .prop_map(|(a, b, c, d)| BBox::new(a.min(c), b.min(d), a.max(c), b.max(d)).unwrap())
}

proptest! {
    #[test]
    fn iou_is_symmetric_and_bounded(a in bbox(), b in bbox()) {
        let (x, y) = (a.iou(&b), b.iou(&a));
        prop_assert!((x - y).abs() < 1e-12);
        prop_assert!((0.0..=1.0).contains(&x));
    }

    #[test]
    fn iou_of_a_box_with_itself_is_one(a in bbox()) {
        prop_assume!(a.area() > 0.0);
        prop_assert!((a.iou(&a) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn disjoint_boxes_have_zero_iou(a in bbox(), gap in 0.0..0.5f64) {
        let w = a.width() * 0.5;
        let right = BBox::new((a.x2 + gap).min(1.0), a.y1, (a.x2 + gap + w).min(1.0), a.y2).unwrap();
        prop_assert_eq!(a.iou(&right), 0.0);
    }

    #[test]
    fn iou_is_invariant_to_a_shared_scaling(a in bbox(), b in bbox(), s in 0.05..1.0f64) {
        let sc = |x: BBox| BBox::new(x.x1 * s, x.y1 * s, x.x2 * s, x.y2 * s).unwrap();
        let (u, v) = (a.iou(&b), sc(a).iou(&sc(b)));
        prop_assert!((u - v).abs() < 1e-9, "{} vs {}", u, v);
    }

    #[test]
    fn assignment_is_optimal_and_one_to_one(
        w in (1usize..5, 1usize..5).prop_flat_map(|(r, c)| {
            proptest::collection::vec(proptest::collection::vec(0.0..1.0f64, c), r)
        })
    ) {
        let pairs = assign(&w);
        prop_assert_eq!(pairs.len(), w.len().min(w[0].len()));
        let rows: std::collections::BTreeSet<_> = pairs.iter().map(|p| p.0).collect();
        let cols: std::collections::BTreeSet<_> = pairs.iter().map(|p| p.1).collect();
        prop_assert_eq!(rows.len(), pairs.len());
        prop_assert_eq!(cols.len(), pairs.len());
        let total: f64 = pairs.iter().map(|&(i, j)| w[i][j]).sum();
        prop_assert!((total - brute(&w)).abs() < 1e-9);
    }

    #[test]
    fn grounding_is_symmetric_in_one_to_one_cases(a in bbox(), b in bbox()) {
        let ga = ground(&[PredBox { image: 0, bbox: Some(a) }], &[gt(0, b.to_array())]);
        let gb = ground(&[PredBox { image: 0, bbox: Some(b) }], &[gt(0, a.to_array())]);
        prop_assert!((ga.iou - gb.iou).abs() < 1e-12);
        prop_assert!((0.0..=1.0).contains(&ga.iou));
    }
}
