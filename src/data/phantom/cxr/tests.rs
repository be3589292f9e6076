use super::super::common::mask_area;
use super::*;

#[test]
fn nodules_lie_inside_their_lung_and_zone() {
    for i in 0..6 {
        let d = draw(11, i);
        let nod = with_label(&d.case.findings, "nodule");
        assert_eq!(nod.len(), d.nodules.len());
        for (f, q) in nod.iter().zip(&d.nodules) {
            let lung = &d.lungs[q.side.index()];
            for (x, y, p) in f.mask.enumerate_pixels() {
                if p.0[0] > 0 {
                    assert_eq!(lung.get_pixel(x, y).0[0], 255, "case {i}");
                }
            }
            let lb = mask_bbox(lung).unwrap();
            let rel = ((f.bbox.y1 + f.bbox.y2) / 2.0 - lb.y1) / (lb.y2 - lb.y1);
            let zone = ZONES[((rel * 3.0).floor() as usize).min(2)];
            assert_eq!(zone, q.zone, "case {i}");
        }
    }
}

#[test]
fn cardiomegaly_matches_the_measured_ratio() {
    for i in 0..8 {
        let d = draw(3, i);
        let enlarged = d.case.findings.iter().any(|f| f.label == "cardiomegaly");
        assert_eq!(enlarged, d.ctr > 0.5, "case {i}: ctr {}", d.ctr);
        assert!(
            (d.ctr - 0.5).abs() > 0.02 && (d.ctr - 0.6).abs() > 0.02,
            "{}",
            d.ctr
        );
    }
}

#[test]
fn pleural_findings_have_substantial_masks() {
    let mut seen = 0;
    for i in 0..16 {
        let d = draw(5, i);
        for f in &d.case.findings {
            if f.label == "effusion" || f.label == "pneumothorax" {
                assert!(mask_area(&f.mask) > 400, "{} in case {i}", f.label);
                seen += 1;
            }
        }
    }
    assert!(seen > 0);
}
