use super::*;

#[test]
fn shortest_edge_keeps_the_ratio_with_int_truncation() {
    // int(40 * 80 / 48) = 66
    assert_eq!(shortest_edge_size(80, 48, 40), (66, 40));
    assert_eq!(shortest_edge_size(40, 72, 32), (32, 57));
    assert_eq!(shortest_edge_size(32, 32, 32), (32, 32));
}

#[test]
fn center_crop_offsets_and_padding_follow_transformers() {
    let img = RgbImage::from_fn(5, 4, |x, y| image::Rgb([x as u8, y as u8, 9]));
    let c = center_crop(&img, 2, 2);
    // top = (4-2)//2 = 1, left = (5-2)//2 = 1
    assert_eq!(c.get_pixel(0, 0).0, [1, 1, 9]);
    // a crop larger than the image pads with zeros, the image centred
    let c = center_crop(&img, 7, 4);
    assert_eq!(c.dimensions(), (7, 4));
    assert_eq!(c.get_pixel(0, 0).0, [0, 0, 0]);
    assert_eq!(c.get_pixel(1, 0).0, [0, 0, 9]);
}

#[test]
fn siglip_canonicalisation_matches_the_python_tokenizer() {
    assert_eq!(
        canonicalize("  An X-ray, of the LUNG!  ", true),
        "an xray of the lung"
    );
    assert_eq!(canonicalize("a\tb\n\nc", false), "a b c");
    assert_eq!(canonicalize("Ünïcode café.", true), "ünïcode café");
}

#[test]
fn captions_fill_the_templates_and_refuse_open_questions() {
    let z = ZeroShotOptions::default();
    let c = captions(QuestionKind::Closed, " Is there a polyp? ", &[], &z).unwrap();
    assert_eq!(
        c,
        vec![
            "Question: Is there a polyp? Answer: yes",
            "Question: Is there a polyp? Answer: no"
        ]
    );
    let opts = vec!["lung".to_string(), " colon ".to_string()];
    let c = captions(QuestionKind::SingleChoice, "q", &opts, &z).unwrap();
    assert_eq!(
        c,
        vec!["This is a photo of lung.", "This is a photo of colon."]
    );
    let e = captions(QuestionKind::Open, "q", &[], &z)
        .unwrap_err()
        .to_string();
    assert!(e.contains("open") && e.contains("dual encoder"), "{e}");
    assert!(captions(QuestionKind::Grounding, "q", &[], &z).is_err());
}

#[test]
fn decisions_follow_the_documented_rules() {
    assert_eq!(
        decide(QuestionKind::Closed, &[0.1, 0.3], Link::Softmax, None),
        "no"
    );
    assert_eq!(
        decide(
            QuestionKind::SingleChoice,
            &[0.1, 0.3, 0.2],
            Link::Softmax,
            None
        ),
        "B"
    );
    // softmax shares of [2, 0, 1.9, -3]: only A and C reach 1/4
    assert_eq!(
        decide(
            QuestionKind::MultiChoice,
            &[2.0, 0.0, 1.9, -3.0],
            Link::Softmax,
            None
        ),
        "A, C"
    );
    // sigmoid: none reaches 0.5, so the best alone
    assert_eq!(
        decide(
            QuestionKind::MultiChoice,
            &[-2.0, -1.0, -3.0],
            Link::Sigmoid,
            None
        ),
        "B"
    );
    assert_eq!(
        decide(
            QuestionKind::MultiChoice,
            &[2.0, -1.0, 0.5],
            Link::Sigmoid,
            None
        ),
        "A, C"
    );
    assert_eq!(
        decide(
            QuestionKind::MultiChoice,
            &[2.0, -1.0, 0.5],
            Link::Sigmoid,
            Some(0.9)
        ),
        "A"
    );
}
