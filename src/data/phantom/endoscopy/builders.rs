//! The endoscopy set's question builders: five questions per case, one of each kind, from what was drawn.

use super::templates::*;
use super::*;

pub(super) fn build(seed: u64, index: usize) -> Built {
    let d = draw(seed, index);
    let mut rng = d.rng_state.clone();
    let questions = vec![
        open_question(&mut rng, &d),
        closed_question(&mut rng, &d),
        single_question(&mut rng, &d),
        multi_question(&mut rng, &d),
        grounding_question(&mut rng, &d),
    ];
    Built::new(d.case, questions, "endoscopy", "colon")
}

pub(super) fn pick<'a, R: Rng>(rng: &mut R, options: &[&'a str]) -> &'a str {
    options[rng.random_range(0..options.len())]
}

/// The index of the largest polyp by area.
pub(super) fn largest(d: &Drawn) -> Option<usize> {
    (0..d.polyps.len()).max_by_key(|&i| (d.polyps[i].area, usize::MAX - i))
}

pub(super) fn open_question<R: Rng>(rng: &mut R, d: &Drawn) -> Question {
    let f = &d.case.findings;
    let mut options = vec!["count"];
    if !d.polyps.is_empty() {
        options.push("polyp-colour");
    }
    if d.instrument.is_some() {
        options.push("instrument-type");
    }
    match pick(rng, &options) {
        "polyp-colour" => {
            let text = POLYP_COLOUR.phrase(rng, &[]);
            POLYP_COLOUR
                .question(
                    text,
                    Task::Open {
                        answer: d.colour.name().into(),
                    },
                )
                .boxes(boxes_of(f, "polyp"))
                .about("polyp")
        }
        "instrument-type" => {
            let kind = d.instrument.map(InstrumentKind::name).unwrap_or_default();
            let text = INSTRUMENT_TYPE.phrase(rng, &[]);
            INSTRUMENT_TYPE
                .question(
                    text,
                    Task::Open {
                        answer: kind.into(),
                    },
                )
                .boxes(boxes_of(f, "instrument"))
                .about("instrument")
        }
        _ => {
            let text = COUNT.phrase(rng, &[]);
            COUNT
                .question(
                    text,
                    Task::Open {
                        answer: d.polyps.len().to_string(),
                    },
                )
                .boxes(boxes_of(f, "polyp"))
                .about("polyp")
        }
    }
}

pub(super) fn closed_question<R: Rng>(rng: &mut R, d: &Drawn) -> Question {
    let f = &d.case.findings;
    let kinds = [
        ("has-polyp", !d.polyps.is_empty()),
        ("has-instrument", d.instrument.is_some()),
        ("has-green-box", d.green_box),
        ("has-text", d.text.is_some()),
        ("multiple-polyps", d.polyps.len() > 1),
    ];
    let (template, label, yes, wordings): (&'static str, &str, bool, [&str; 3]) =
        match questions::balanced(rng, &kinds).unwrap_or("has-polyp") {
            "has-instrument" => (
                "has-instrument",
                "instrument",
                d.instrument.is_some(),
                [
                    "Is there an instrument in the image?",
                    "Can you see an endoscopic tool such as forceps, a snare or a catheter?",
                    "Is an instrument visible in this frame?",
                ],
            ),
            "has-green-box" => (
                "has-green-box",
                "green_box",
                d.green_box,
                [
                    "Is there a green box in the image?",
                    "Does the image contain the green position-map box?",
                    "Is a green-framed box overlaid on this frame?",
                ],
            ),
            "has-text" => (
                "has-text",
                "text",
                d.text.is_some(),
                [
                    "Is there burned-in text in the image?",
                    "Does the frame carry text overlaid by the processor?",
                    "Is any text visible on this image?",
                ],
            ),
            "multiple-polyps" => (
                "multiple-polyps",
                "polyp",
                d.polyps.len() > 1,
                [
                    "Is there more than one polyp?",
                    "Are several polyps visible?",
                    "Does the image show two or more polyps?",
                ],
            ),
            _ => (
                "has-polyp",
                "polyp",
                !d.polyps.is_empty(),
                [
                    "Is there a polyp in the image?",
                    "Does this colonoscopy image show a polyp?",
                    "Can you see any polyp?",
                ],
            ),
        };
    let text = phrase(rng, &wordings, &[]);
    Question::new(template, text, Task::Closed { answer: yes })
        .boxes(boxes_of(f, label))
        .about(label)
}

pub(super) fn single_question<R: Rng>(rng: &mut R, d: &Drawn) -> Question {
    let f = &d.case.findings;
    let mut options = vec!["count-choice"];
    if !d.polyps.is_empty() {
        options.extend(["polyp-size", "polyp-colour-choice"]);
    }
    if d.polyps.len() == 1 {
        options.push("polyp-position");
    }
    if d.instrument.is_some() {
        options.push("instrument-choice");
    }
    if d.text.is_some() {
        options.push("text-corner");
    }
    match pick(rng, &options) {
        "polyp-size" => {
            let Some(i) = largest(d) else {
                return count_choice(rng, d);
            };
            let opts: Vec<String> = Size::ALL.iter().map(|s| s.option().to_string()).collect();
            let correct = Size::ALL
                .iter()
                .position(|&s| s == d.polyps[i].size)
                .unwrap_or(0);
            let one = d.polyps.len() == 1;
            let text = POLYP_SIZE.phrase(
                rng,
                &[("which", if one { "polyp" } else { "largest polyp" })],
            );
            let pf = with_label(f, "polyp");
            POLYP_SIZE
                .question(text, single_ordered(opts, correct))
                .boxes(pf.get(i).map(|x| vec![gt(x)]).unwrap_or_default())
                .about("polyp")
        }
        "polyp-colour-choice" => {
            let others: Vec<String> = PolypColour::ALL
                .iter()
                .map(|c| c.name().to_string())
                .chain(["black".to_string()])
                .collect();
            let text = POLYP_COLOUR_CHOICE.phrase(rng, &[]);
            POLYP_COLOUR_CHOICE
                .question(text, single(rng, d.colour.name(), &others))
                .boxes(boxes_of(f, "polyp"))
                .about("polyp")
        }
        "polyp-position" => {
            let correct = d.polyps[0].quadrant;
            let others: Vec<String> = QUADRANTS.iter().map(|q| q.to_string()).collect();
            let text = POLYP_POSITION.phrase(rng, &[]);
            POLYP_POSITION
                .question(text, single(rng, correct, &others))
                .boxes(boxes_of(f, "polyp"))
                .about("polyp")
        }
        "instrument-choice" => {
            let kind = d.instrument.map(InstrumentKind::name).unwrap_or_default();
            let others: Vec<String> = InstrumentKind::ALL
                .iter()
                .map(|k| k.name().to_string())
                .chain(["clip".to_string()])
                .collect();
            let text = INSTRUMENT_CHOICE.phrase(rng, &[]);
            INSTRUMENT_CHOICE
                .question(text, single(rng, kind, &others))
                .boxes(boxes_of(f, "instrument"))
                .about("instrument")
        }
        "text-corner" => {
            let corner = d.text.map(Corner::name).unwrap_or_default();
            let others: Vec<String> = Corner::ALL.iter().map(|c| c.name().to_string()).collect();
            let text = TEXT_CORNER.phrase(rng, &[]);
            TEXT_CORNER
                .question(text, single(rng, corner, &others))
                .boxes(boxes_of(f, "text"))
                .about("text")
        }
        _ => count_choice(rng, d),
    }
}

pub(super) fn count_choice<R: Rng>(rng: &mut R, d: &Drawn) -> Question {
    let opts: Vec<String> = (0..=4).map(|k| k.to_string()).collect();
    let text = COUNT_CHOICE.phrase(rng, &[]);
    COUNT_CHOICE
        .question(text, single_ordered(opts, d.polyps.len()))
        .boxes(boxes_of(&d.case.findings, "polyp"))
        .about("polyp")
}

/// Things the multi-choice question may offer; the last three are never drawn.
pub(super) const OBJECTS: [(&str, &str); 7] = [
    ("polyp", "polyp"),
    ("instrument", "instrument"),
    ("green_box", "green position-map box"),
    ("text", "burned-in text"),
    ("", "active bleeding"),
    ("", "ulcer"),
    ("", "diverticulum"),
];

pub(super) fn multi_question<R: Rng>(rng: &mut R, d: &Drawn) -> Question {
    let f = &d.case.findings;
    if d.polyps.len() >= 2 && rng.random_bool(0.5) {
        let opts = QUADRANTS
            .iter()
            .map(|q| (q.to_string(), d.polyps.iter().any(|p| p.quadrant == *q)))
            .collect();
        let text = POLYP_QUADRANTS.phrase(rng, &[]);
        return POLYP_QUADRANTS
            .question(text, multi(rng, opts, None))
            .boxes(boxes_of(f, "polyp"))
            .about("polyp");
    }
    let mut never: Vec<&(&str, &str)> = OBJECTS[4..].iter().collect();
    never.shuffle(rng);
    let n_never = rng.random_range(1..=2);
    let opts: Vec<(String, bool)> = OBJECTS[..4]
        .iter()
        .chain(never.into_iter().take(n_never))
        .map(|(label, text)| {
            (
                text.to_string(),
                !label.is_empty() && f.iter().any(|x| x.label == *label),
            )
        })
        .collect();
    let text = VISIBLE.phrase(rng, &[]);
    VISIBLE
        .question(text, multi(rng, opts, None))
        .boxes(f.iter().map(gt).collect())
}

pub(super) fn grounding_question<R: Rng>(rng: &mut R, d: &Drawn) -> Question {
    let f = &d.case.findings;
    let mut options = Vec::new();
    if !d.polyps.is_empty() {
        options.extend(["locate-polyps", "locate-polyps", "locate-polyps"]);
    }
    if d.polyps.len() >= 2 {
        options.push("locate-largest-polyp");
    }
    if d.instrument.is_some() {
        options.extend(["locate-instrument", "locate-instrument"]);
    }
    if d.green_box {
        options.push("locate-green-box");
    }
    if d.text.is_some() {
        options.push("locate-text");
    }
    // The questions ask only where: the answer is the boxes (labelled in `boxes`), with no
    // text to score. A label as text answer would mark every box-only reply unparsed.
    let box_only = || Task::Grounding { answer: None };
    let (template, label, wordings): (&'static str, &str, [&str; 3]) = match pick(rng, &options) {
        "locate-largest-polyp" => {
            let text = LOCATE_LARGEST_POLYP.phrase(rng, &[]);
            let pf = with_label(f, "polyp");
            let boxes = largest(d)
                .and_then(|i| pf.get(i))
                .map(|x| vec![gt(x)])
                .unwrap_or_default();
            return LOCATE_LARGEST_POLYP
                .question(text, box_only())
                .boxes(boxes)
                .about("polyp");
        }
        "locate-instrument" => (
            "locate-instrument",
            "instrument",
            [
                "Locate the instrument. Answer with a bounding box.",
                "Draw a bounding box around the endoscopic tool.",
                "Where is the instrument? Answer with a bounding box.",
            ],
        ),
        "locate-green-box" => (
            "locate-green-box",
            "green_box",
            [
                "Locate the green position-map box. Answer with a bounding box.",
                "Draw a bounding box around the green overlay box.",
                "Where is the green box? Answer with a bounding box.",
            ],
        ),
        "locate-text" => (
            "locate-text",
            "text",
            [
                "Locate the burned-in text. Answer with a bounding box.",
                "Draw a bounding box around the processor text overlay.",
                "Where is the text on this image? Answer with a bounding box.",
            ],
        ),
        _ => (
            "locate-polyps",
            "polyp",
            [
                "Locate every polyp. Answer with a bounding box for each.",
                "Draw a bounding box around each polyp.",
                "Where are the polyps? Give one bounding box per polyp.",
            ],
        ),
    };
    let text = phrase(rng, &wordings, &[]);
    Question::new(template, text, box_only())
        .boxes(boxes_of(f, label))
        .about(label)
}
