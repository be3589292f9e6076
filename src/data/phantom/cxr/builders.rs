//! The cxr set's question builders: five questions per case, one of each kind, from what was drawn.

use super::templates::*;
use super::*;

pub(super) const CTR_BINS: [&str; 3] =
    ["less than 0.50", "between 0.50 and 0.60", "more than 0.60"];

pub(super) fn ctr_bin(ctr: f64) -> usize {
    if ctr < 0.5 {
        0
    } else if ctr <= 0.6 {
        1
    } else {
        2
    }
}

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
    Built::new(d.case, questions, "cxr", "chest")
}

pub(super) fn nodules_on(d: &Drawn, side: Side) -> usize {
    d.nodules.iter().filter(|q| q.side == side).count()
}

pub(super) fn open_question<R: Rng>(rng: &mut R, d: &Drawn) -> Question {
    let mut options: Vec<&str> = vec!["count"];
    if d.nodules.len() == 1 {
        options.push("nodule-side");
    }
    if d.effusion.is_some() {
        options.push("effusion-side");
    }
    if d.pneumothorax.is_some() {
        options.push("pneumothorax-side");
    }
    let pick = options[rng.random_range(0..options.len())];
    let f = &d.case.findings;
    match pick {
        "nodule-side" => {
            let side = d.nodules[0].side.name();
            let text = NODULE_SIDE.phrase(rng, &[]);
            NODULE_SIDE
                .question(
                    text,
                    Task::Open {
                        answer: side.into(),
                    },
                )
                .boxes(boxes_of(f, "nodule"))
                .about("nodule")
        }
        "effusion-side" => {
            let side = d.effusion.map(Side::name).unwrap_or_default();
            let text = EFFUSION_SIDE.phrase(rng, &[]);
            EFFUSION_SIDE
                .question(
                    text,
                    Task::Open {
                        answer: side.into(),
                    },
                )
                .boxes(boxes_of(f, "effusion"))
                .about("effusion")
        }
        "pneumothorax-side" => {
            let side = d.pneumothorax.map(Side::name).unwrap_or_default();
            let text = PNEUMOTHORAX_SIDE.phrase(rng, &[]);
            PNEUMOTHORAX_SIDE
                .question(
                    text,
                    Task::Open {
                        answer: side.into(),
                    },
                )
                .boxes(boxes_of(f, "pneumothorax"))
                .about("pneumothorax")
        }
        _ => {
            let text = COUNT.phrase(rng, &[]);
            COUNT
                .question(
                    text,
                    Task::Open {
                        answer: d.nodules.len().to_string(),
                    },
                )
                .boxes(boxes_of(f, "nodule"))
                .about("nodule")
        }
    }
}

pub(super) fn closed_question<R: Rng>(rng: &mut R, d: &Drawn) -> Question {
    let f = &d.case.findings;
    let nodule_side = if rng.random_bool(0.5) {
        Side::Right
    } else {
        Side::Left
    };
    let candidates = [
        (0, d.effusion.is_some()),
        (1, d.pneumothorax.is_some()),
        (2, with_label(f, "cardiomegaly").len() == 1),
        (3, nodules_on(d, nodule_side) > 0),
        (4, f.iter().all(|x| x.label == "heart")),
    ];
    match questions::balanced(rng, &candidates).unwrap_or(0) {
        0 => {
            let yes = d.effusion.is_some();
            let text = HAS_EFFUSION.phrase(rng, &[]);
            HAS_EFFUSION
                .question(text, Task::Closed { answer: yes })
                .boxes(boxes_of(f, "effusion"))
                .about("effusion")
        }
        1 => {
            let yes = d.pneumothorax.is_some();
            let text = HAS_PNEUMOTHORAX.phrase(rng, &[]);
            HAS_PNEUMOTHORAX
                .question(text, Task::Closed { answer: yes })
                .boxes(boxes_of(f, "pneumothorax"))
                .about("pneumothorax")
        }
        2 => {
            let yes = with_label(f, "cardiomegaly").len() == 1;
            let text = HAS_CARDIOMEGALY.phrase(rng, &[]);
            HAS_CARDIOMEGALY
                .question(text, Task::Closed { answer: yes })
                .boxes(boxes_of(f, "heart"))
                .about("cardiomegaly")
        }
        3 => {
            let side = nodule_side;
            let yes = nodules_on(d, side) > 0;
            let text = HAS_NODULE_SIDE.phrase(rng, &[("side", side.name())]);
            let boxes = f
                .iter()
                .filter(|x| x.label == "nodule")
                .zip(&d.nodules)
                .filter(|(_, q)| q.side == side)
                .map(|(x, _)| gt(x))
                .collect();
            HAS_NODULE_SIDE
                .question(text, Task::Closed { answer: yes })
                .boxes(boxes)
                .about("nodule")
                .meta("side", side.name().into())
        }
        _ => {
            let normal = f.iter().all(|x| x.label == "heart");
            let text = IS_NORMAL.phrase(rng, &[]);
            IS_NORMAL.question(text, Task::Closed { answer: normal })
        }
    }
}

pub(super) fn single_question<R: Rng>(rng: &mut R, d: &Drawn) -> Question {
    let f = &d.case.findings;
    let mut options: Vec<&str> = vec!["ctr-range", "count-choice"];
    if d.nodules.len() == 1 {
        options.push("nodule-zone");
    }
    if d.effusion.is_some() || d.pneumothorax.is_some() {
        options.push("pleural-side");
    }
    match options[rng.random_range(0..options.len())] {
        "nodule-zone" => {
            let q = &d.nodules[0];
            let correct = format!("{} {} zone", q.side.name(), q.zone.name());
            let mut others: Vec<String> = Vec::new();
            for s in SIDES {
                for z in ZONES {
                    let o = format!("{} {} zone", s.name(), z.name());
                    if o != correct {
                        others.push(o);
                    }
                }
            }
            use rand::seq::SliceRandom;
            others.shuffle(rng);
            others.truncate(3);
            let text = NODULE_ZONE.phrase(rng, &[]);
            NODULE_ZONE
                .question(text, single(rng, &correct, &others))
                .boxes(boxes_of(f, "nodule"))
                .about("nodule")
        }
        "pleural-side" => {
            let (label, side, what) = match (d.effusion, d.pneumothorax) {
                (Some(s), _) if d.pneumothorax.is_none() || rng.random_bool(0.5) => {
                    ("effusion", s, "pleural effusion")
                }
                (_, Some(s)) => ("pneumothorax", s, "pneumothorax"),
                (Some(s), None) => ("effusion", s, "pleural effusion"),
                (None, None) => ("effusion", Side::Right, "pleural effusion"),
            };
            let opts = vec![
                "right".to_string(),
                "left".to_string(),
                "both sides".to_string(),
                "neither side".to_string(),
            ];
            let correct = if side == Side::Right { 0 } else { 1 };
            let text = PLEURAL_SIDE.phrase(rng, &[("what", what)]);
            PLEURAL_SIDE
                .question(text, single_ordered(opts, correct))
                .boxes(boxes_of(f, label))
                .about(label)
        }
        "count-choice" => {
            let opts: Vec<String> = (0..=4).map(|k| k.to_string()).collect();
            let text = COUNT_CHOICE.phrase(rng, &[]);
            COUNT_CHOICE
                .question(text, single_ordered(opts, d.nodules.len()))
                .boxes(boxes_of(f, "nodule"))
                .about("nodule")
        }
        _ => {
            let opts: Vec<String> = CTR_BINS.iter().map(|s| s.to_string()).collect();
            let text = CTR_RANGE.phrase(rng, &[]);
            CTR_RANGE
                .question(text, single_ordered(opts, ctr_bin(d.ctr)))
                .boxes(boxes_of(f, "heart"))
                .about("cardiomegaly")
                .meta("ctr", MetaValue::Float((d.ctr * 1000.0).round() / 1000.0))
        }
    }
}

pub(super) fn multi_question<R: Rng>(rng: &mut R, d: &Drawn) -> Question {
    let f = &d.case.findings;
    if d.nodules.len() >= 2 && rng.random_bool(0.5) {
        let mut opts: Vec<(String, bool)> = Vec::new();
        for s in SIDES {
            for z in ZONES {
                let yes = d.nodules.iter().any(|q| q.side == s && q.zone == z);
                opts.push((format!("{} {} zone", s.name(), z.name()), yes));
            }
        }
        let text = NODULE_ZONES.phrase(rng, &[]);
        return NODULE_ZONES
            .question(text, multi(rng, opts, None))
            .boxes(boxes_of(f, "nodule"))
            .about("nodule");
    }
    let has = |l: &str| f.iter().any(|x| x.label == l);
    let mut opts = vec![
        ("pulmonary nodule".to_string(), has("nodule")),
        ("pleural effusion".to_string(), has("effusion")),
        ("cardiomegaly".to_string(), has("cardiomegaly")),
        ("pneumothorax".to_string(), has("pneumothorax")),
    ];
    // A finding that is never drawn: an honest "no" among the options.
    if rng.random_bool(0.5) {
        let never = ["rib fracture", "pneumoperitoneum", "hilar mass"];
        opts.push((never[rng.random_range(0..never.len())].to_string(), false));
    }
    let none = !opts.iter().any(|o| o.1);
    let text = FINDINGS.phrase(rng, &[]);
    let boxes = f.iter().filter(|x| x.label != "heart").map(gt).collect();
    FINDINGS
        .question(
            text,
            multi(rng, opts, Some(("no abnormality".to_string(), none))),
        )
        .boxes(boxes)
}

pub(super) fn grounding_question<R: Rng>(rng: &mut R, d: &Drawn) -> Question {
    let f = &d.case.findings;
    let mut options: Vec<&str> = vec!["locate-heart"];
    if !d.nodules.is_empty() {
        options.extend(["locate-nodules", "locate-nodules"]);
    }
    for s in SIDES {
        if nodules_on(d, s) == 1 {
            options.push("locate-nodule-side");
        }
    }
    if d.effusion.is_some() {
        options.extend(["locate-effusion", "locate-effusion"]);
    }
    if d.pneumothorax.is_some() {
        options.extend(["locate-pneumothorax", "locate-pneumothorax"]);
    }
    // The questions ask only where: the answer is the boxes (labelled in `boxes`), with no
    // text to score. A label as text answer would mark every box-only reply unparsed.
    let box_only = || Task::Grounding { answer: None };
    match options[rng.random_range(0..options.len())] {
        "locate-nodules" => {
            let text = LOCATE_NODULES.phrase(rng, &[]);
            LOCATE_NODULES
                .question(text, box_only())
                .boxes(boxes_of(f, "nodule"))
                .about("nodule")
        }
        "locate-nodule-side" => {
            let sides: Vec<Side> = SIDES
                .into_iter()
                .filter(|&s| nodules_on(d, s) == 1)
                .collect();
            let side = sides[rng.random_range(0..sides.len())];
            let text = LOCATE_NODULE_SIDE.phrase(rng, &[("side", side.name())]);
            let boxes = f
                .iter()
                .filter(|x| x.label == "nodule")
                .zip(&d.nodules)
                .filter(|(_, q)| q.side == side)
                .map(|(x, _)| gt(x))
                .collect();
            LOCATE_NODULE_SIDE
                .question(text, box_only())
                .boxes(boxes)
                .about("nodule")
                .meta("side", side.name().into())
        }
        "locate-effusion" => {
            let text = LOCATE_EFFUSION.phrase(rng, &[]);
            LOCATE_EFFUSION
                .question(text, box_only())
                .boxes(boxes_of(f, "effusion"))
                .about("effusion")
        }
        "locate-pneumothorax" => {
            let text = LOCATE_PNEUMOTHORAX.phrase(rng, &[]);
            LOCATE_PNEUMOTHORAX
                .question(text, box_only())
                .boxes(boxes_of(f, "pneumothorax"))
                .about("pneumothorax")
        }
        _ => {
            let text = LOCATE_HEART.phrase(rng, &[]);
            LOCATE_HEART
                .question(text, box_only())
                .boxes(boxes_of(f, "heart"))
                .about("heart")
        }
    }
}
