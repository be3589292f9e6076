use super::*;

#[test]
fn every_case_has_a_finding_and_polyps_keep_their_class() {
    for i in 0..8 {
        let d = draw(2, i);
        assert!(!d.case.findings.is_empty(), "case {i}");
        let pf = with_label(&d.case.findings, "polyp");
        assert_eq!(pf.len(), d.polyps.len());
        for (f, p) in pf.iter().zip(&d.polyps) {
            assert_eq!(Size::of_width(f.bbox.width()), p.size);
        }
    }
}
