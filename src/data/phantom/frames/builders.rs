//! The frames set's question builders: five questions per case, one of each kind, from what was drawn.

use super::templates::*;
use super::*;

/// The polyp's direction of travel from its first to its last visible frame.
pub(super) fn travel(t: &Track) -> Option<&'static str> {
    let (a, b) = (t.first()?, t.last()?);
    let (p, q) = (t.centroid(a)?, t.centroid(b)?);
    Some(direction(q.0 - p.0, q.1 - p.1))
}

pub(super) fn frame_name(k: usize) -> String {
    format!("frame {}", k + 1)
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
    let mut built = Built::new(d.case, questions, "endoscopy", "colon");
    built
        .meta
        .insert("n_frames".into(), MetaValue::Int(d.n_frames as i64));
    built.meta.insert("event".into(), d.event.name().into());
    built
}

/// The label the clip's event is about.
pub(super) fn subject(d: &Drawn) -> &'static str {
    if d.event == Event::Instrument {
        "instrument"
    } else {
        "polyp"
    }
}

pub(super) fn open_question<R: Rng>(rng: &mut R, d: &Drawn) -> Question {
    let f = &d.case.findings;
    let label = subject(d);
    let t = Track::of(f, label, d.n_frames);
    let specific = rng.random_bool(0.7);
    let vars = [("x", label)];
    let (template, answer, wordings): (&'static str, String, [&str; 3]) = match d.event {
        Event::Appears | Event::Instrument if specific => (
            "first-frame",
            (t.first().unwrap_or(0) + 1).to_string(),
            [
                "In which frame does the {x} first appear? Answer with the frame number.",
                "What is the first frame in which the {x} is visible? Answer with a number.",
                "The frames are numbered from 1. In which frame does the {x} come into view?",
            ],
        ),
        Event::Disappears if specific => (
            "last-frame",
            (t.last().unwrap_or(0) + 1).to_string(),
            [
                "In which frame is the {x} last visible? Answer with the frame number.",
                "What is the last frame that still shows the {x}? Answer with a number.",
                "The frames are numbered from 1. Up to which frame can the {x} be seen?",
            ],
        ),
        Event::Grows if specific => (
            "largest-frame",
            (t.largest().unwrap_or(0) + 1).to_string(),
            [
                "In which frame does the {x} look largest? Answer with the frame number.",
                "Which frame shows the {x} at its biggest? Answer with a number.",
                "The frames are numbered from 1. In which frame is the {x} largest?",
            ],
        ),
        Event::Moves if specific => (
            "direction",
            travel(&t).unwrap_or("left").to_string(),
            [
                "In which direction does the {x} move across the frames? Answer left, right, up or down.",
                "From the first frame to the last, which way does the {x} shift in the image: left, right, up or down?",
                "Across the sequence, does the {x} move left, right, up or down?",
            ],
        ),
        _ => (
            "frames-count",
            t.count().to_string(),
            [
                "In how many frames is the {x} visible? Answer with a number.",
                "Count the frames that show the {x}. Answer with a number.",
                "How many of these frames contain the {x}? Answer with a number.",
            ],
        ),
    };
    let text = phrase(rng, &wordings, &vars);
    let q = Question::new(template, text, Task::Open { answer })
        .boxes(t.boxes())
        .about(label);
    // How the answer follows the frames, so a frame perturbation's answer is remapped.
    let rule = match template {
        "first-frame" => Some("first"),
        "last-frame" => Some("last"),
        "frames-count" => Some("count"),
        _ => None,
    };
    match rule {
        Some(rule) => q.meta("frame_answer", frame_answer(rule, &t, d.n_frames)),
        None => q,
    }
}

/// The `frame_answer` meta: `<rule>:<visibility per frame>` (docs/datasets.md).
fn frame_answer(rule: &str, t: &Track, n: usize) -> MetaValue {
    let facts: String = (0..n).map(|k| if t.seen(k) { '1' } else { '0' }).collect();
    MetaValue::Str(format!("{rule}:{facts}"))
}

pub(super) fn closed_question<R: Rng>(rng: &mut R, d: &Drawn) -> Question {
    let f = &d.case.findings;
    let label = subject(d);
    let t = Track::of(f, label, d.n_frames);
    let polyp = Track::of(f, "polyp", d.n_frames);
    let n = d.n_frames;
    let ratio = (polyp.seen(0) && polyp.seen(n - 1))
        .then(|| polyp.area(n - 1) as f64 / polyp.area(0).max(1) as f64)
        .filter(|r| *r > 1.5 || *r < 1.15);
    let choice = rng.random_range(0..3);
    if choice == 0 && ratio.is_some() {
        let yes = ratio.is_some_and(|r| r > 1.5);
        let text = LARGER_AT_END.phrase(rng, &[]);
        let mut boxes = polyp.boxes_in(0);
        boxes.extend(polyp.boxes_in(n - 1));
        return LARGER_AT_END
            .question(text, Task::Closed { answer: yes })
            .boxes(boxes)
            .about("polyp");
    }
    if choice == 1 {
        let text = IN_EVERY_FRAME.phrase(rng, &[("x", label)]);
        return IN_EVERY_FRAME
            .question(
                text,
                Task::Closed {
                    answer: t.count() == n,
                },
            )
            .boxes(t.boxes())
            .about(label)
            .meta("frame_answer", frame_answer("every", &t, n));
    }
    let by_frame: Vec<(usize, bool)> = (0..n).map(|k| (k, t.seen(k))).collect();
    let k = questions::balanced(rng, &by_frame).unwrap_or(0);
    let fr = (k + 1).to_string();
    let text = VISIBLE_IN_FRAME.phrase(rng, &[("x", label), ("k", &fr)]);
    VISIBLE_IN_FRAME
        .question(text, Task::Closed { answer: t.seen(k) })
        .boxes(t.boxes_in(k))
        .about(label)
        .meta("frame", MetaValue::Int(k as i64 + 1))
        .meta("frame_answer", frame_answer(&format!("at{}", k + 1), &t, n))
}

pub(super) fn single_question<R: Rng>(rng: &mut R, d: &Drawn) -> Question {
    let f = &d.case.findings;
    let label = subject(d);
    let t = Track::of(f, label, d.n_frames);
    let n = d.n_frames;
    let frames: Vec<String> = (0..n).map(frame_name).collect();
    if rng.random_bool(0.5) {
        // Which frame (or which way): options in their natural order.
        let (template, correct, opts, wordings): (&'static str, usize, Vec<String>, [&str; 3]) =
            match d.event {
                Event::Appears | Event::Instrument => (
                    "first-frame-choice",
                    t.first().unwrap_or(0),
                    frames,
                    [
                        "In which frame does the {x} first appear?",
                        "Which is the first frame showing the {x}?",
                        "When does the {x} come into view?",
                    ],
                ),
                Event::Disappears => (
                    "last-frame-choice",
                    t.last().unwrap_or(0),
                    frames,
                    [
                        "Which is the last frame in which the {x} is visible?",
                        "In which frame is the {x} seen for the last time?",
                        "Up to which frame does the {x} stay in view?",
                    ],
                ),
                Event::Grows => (
                    "largest-frame-choice",
                    t.largest().unwrap_or(0),
                    frames,
                    [
                        "In which frame does the {x} look largest?",
                        "Which frame shows the {x} at its biggest?",
                        "Where in the sequence is the {x} largest?",
                    ],
                ),
                Event::Moves => {
                    let dir = travel(&t).unwrap_or("left");
                    (
                        "direction-choice",
                        DIRECTIONS.iter().position(|x| *x == dir).unwrap_or(0),
                        DIRECTIONS.iter().map(|s| s.to_string()).collect(),
                        [
                            "In which direction does the {x} move across the frames?",
                            "Which way does the {x} shift in the image over the sequence?",
                            "From first to last frame, the {x} moves toward the:",
                        ],
                    )
                }
            };
        let text = phrase(rng, &wordings, &[("x", label)]);
        return Question::new(template, text, single_ordered(opts, correct))
            .boxes(t.boxes())
            .about(label);
    }
    let (opts, correct, wordings): ([String; 4], usize, [&str; 3]) = if d.event == Event::Instrument
    {
        (
            [
                "It comes into view and advances".into(),
                "It is withdrawn and leaves the view".into(),
                "It stays in the same place in every frame".into(),
                "It is not visible in any frame".into(),
            ],
            0,
            [
                "How does the instrument change across the frames?",
                "What happens to the instrument during the sequence?",
                "Which statement describes the instrument over the frames?",
            ],
        )
    } else {
        let dir = travel(&t).unwrap_or("left");
        let decoy = DIRECTIONS[rng.random_range(0..4)];
        let shift = if d.event == Event::Moves { dir } else { decoy };
        (
            [
                "It is absent at first and then comes into view".into(),
                "It is visible at first and then leaves the view".into(),
                "It stays in view and looks steadily larger".into(),
                format!("It stays in view and shifts toward the {shift} of the image"),
            ],
            match d.event {
                Event::Appears => 0,
                Event::Disappears => 1,
                Event::Grows => 2,
                _ => 3,
            },
            [
                "How does the polyp change across the frames?",
                "What happens to the polyp during the sequence?",
                "Which statement describes the polyp over the frames?",
            ],
        )
    };
    let text = phrase(rng, &wordings, &[]);
    Question::new("change", text, single_ordered(opts.to_vec(), correct))
        .boxes(t.boxes())
        .about(label)
}

pub(super) fn multi_question<R: Rng>(rng: &mut R, d: &Drawn) -> Question {
    let f = &d.case.findings;
    let n = d.n_frames;
    let label = subject(d);
    if n >= 4 && rng.random_bool(0.6) {
        let t = Track::of(f, label, n);
        let opts = (0..n).map(|k| (frame_name(k), t.seen(k))).collect();
        let text = FRAMES_VISIBLE.phrase(rng, &[("x", label)]);
        return FRAMES_VISIBLE
            .question(text, multi_ordered(opts))
            .boxes(t.boxes())
            .about(label);
    }
    let k = rng.random_range(0..n);
    let mut never = vec!["green position-map box", "active bleeding", "ulcer"];
    never.shuffle(rng);
    let in_frame = |l: &str| f.iter().any(|x| x.label == l && x.image == k);
    let mut opts = vec![
        ("polyp".to_string(), in_frame("polyp")),
        ("instrument".to_string(), in_frame("instrument")),
        ("timestamp text".to_string(), in_frame("text")),
    ];
    for x in never.into_iter().take(rng.random_range(1..=2)) {
        opts.push((x.to_string(), false));
    }
    let fr = (k + 1).to_string();
    let text = OBJECTS_IN_FRAME.phrase(rng, &[("k", &fr)]);
    let boxes = f.iter().filter(|x| x.image == k).map(gt).collect();
    OBJECTS_IN_FRAME
        .question(text, multi(rng, opts, None))
        .boxes(boxes)
        .meta("frame", MetaValue::Int(k as i64 + 1))
}

pub(super) fn grounding_question<R: Rng>(rng: &mut R, d: &Drawn) -> Question {
    let f = &d.case.findings;
    let label = if d.event == Event::Instrument && rng.random_bool(0.6) {
        "instrument"
    } else {
        "polyp"
    };
    let mut t = Track::of(f, label, d.n_frames);
    let mut label = label;
    if t.count() == 0 {
        // Never happens by construction (the subject is always seen somewhere); the
        // timestamp text is on every frame, so the question stays answerable.
        label = "text";
        t = Track::of(f, label, d.n_frames);
    }
    let seen: Vec<usize> = (0..d.n_frames).filter(|&k| t.seen(k)).collect();
    let k = seen
        .get(rng.random_range(0..seen.len().max(1)))
        .copied()
        .unwrap_or(0);
    let fr = (k + 1).to_string();
    let text = LOCATE_IN_FRAME.phrase(rng, &[("x", label), ("k", &fr)]);
    LOCATE_IN_FRAME
        .question(
            text,
            // Box-only question: no text answer (see cxr.rs).
            Task::Grounding { answer: None },
        )
        .boxes(t.boxes_in(k))
        .about(label)
        .meta("frame", MetaValue::Int(k as i64 + 1))
}
