use super::*;

#[test]
fn events_show_in_the_per_frame_findings() {
    for i in 0..10 {
        let d = draw(4, i);
        assert_eq!(d.case.images.len(), d.n_frames);
        let t = Track::of(&d.case.findings, subject(&d), d.n_frames);
        let n = d.n_frames;
        match d.event {
            Event::Appears => assert!(!t.seen(0) && t.seen(n - 1), "case {i}"),
            Event::Disappears => assert!(t.seen(0) && !t.seen(n - 1), "case {i}"),
            Event::Instrument => assert!(!t.seen(0) && t.seen(n - 1), "case {i}"),
            Event::Grows => {
                assert_eq!(t.count(), n);
                assert!(t.area(n - 1) as f64 > 1.5 * t.area(0) as f64, "case {i}");
            }
            Event::Moves => assert_eq!(t.count(), n, "case {i}"),
        }
    }
}
