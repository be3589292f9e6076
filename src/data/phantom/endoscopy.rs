//! `phantom:endoscopy`: synthetic colonoscopy frames, 448×384 RGB, in the style of Kvasir.
//!
//! Each frame shows textured mucosa with haustral folds around a dark lumen, specular
//! highlights and an octagonal field of view. Findings: polyps (0-3, one colour per frame,
//! each small, medium or large), an instrument entering from an edge (forceps, snare or
//! catheter), the green position-map box in the lower-left corner and burned-in processor
//! text in a corner. Every case has at least one of them.

use image::GrayImage;
use rand::seq::SliceRandom;
use rand::{Rng, RngExt};

use super::common::{case_rng, finding, mask_bbox, mask_centroid, mask_intersect, mask_subtract};
use super::questions::{
    self, Built, Question, boxes_of, gt, multi, phrase, single, single_ordered, with_label,
};
use super::scope::{
    self, GREEN_BOX, H, Instrument, InstrumentKind, Polyp, PolypColour, Scene, View, W,
};
use super::{Case, Finding, PhantomSet};
use crate::sample::{Sample, Task};

pub fn generate(seed: u64, n: usize) -> Vec<Sample> {
    questions::generate(PhantomSet::Endoscopy, seed, n, false, build)
}

pub fn case(seed: u64, index: usize) -> Case {
    draw(seed, index).case
}

/// Polyp size classes, by the width of the polyp's box as a share of the image width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Size {
    Small,
    Medium,
    Large,
}

impl Size {
    pub(crate) const ALL: [Size; 3] = [Size::Small, Size::Medium, Size::Large];

    /// Class of a box width (normalised): below 0.12, 0.12-0.22, above 0.22.
    pub(crate) fn of_width(w: f64) -> Size {
        if w < 0.12 {
            Size::Small
        } else if w <= 0.22 {
            Size::Medium
        } else {
            Size::Large
        }
    }

    pub(crate) fn option(self) -> &'static str {
        match self {
            Size::Small => "small (less than 12% of the image width)",
            Size::Medium => "medium (12% to 22% of the image width)",
            Size::Large => "large (more than 22% of the image width)",
        }
    }

    fn target<R: Rng>(self, rng: &mut R) -> f32 {
        let (a, b) = match self {
            Size::Small => (0.065, 0.095),
            Size::Medium => (0.145, 0.185),
            Size::Large => (0.25, 0.30),
        };
        rng.random_range(a..b) * W as f32
    }
}

/// The four image quadrants, named as the questions name them.
pub(crate) const QUADRANTS: [&str; 4] = ["upper left", "upper right", "lower left", "lower right"];

/// The quadrant of a point in normalised coordinates.
pub(crate) fn quadrant(x: f64, y: f64) -> &'static str {
    QUADRANTS[(x >= 0.5) as usize + 2 * (y >= 0.5) as usize]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Corner {
    TopLeft,
    TopRight,
    BottomLeft,
    BottomRight,
}

impl Corner {
    pub(crate) const ALL: [Corner; 4] = [
        Corner::TopLeft,
        Corner::TopRight,
        Corner::BottomLeft,
        Corner::BottomRight,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Corner::TopLeft => "top left",
            Corner::TopRight => "top right",
            Corner::BottomLeft => "bottom left",
            Corner::BottomRight => "bottom right",
        }
    }

    /// The corner a normalised box's centre lies toward.
    pub(crate) fn of(x: f64, y: f64) -> Corner {
        Corner::ALL[(x >= 0.5) as usize + 2 * (y >= 0.5) as usize]
    }
}

/// What one polyp finding is, beside its mask.
#[derive(Debug, Clone)]
pub(crate) struct PolypInfo {
    pub size: Size,
    pub quadrant: &'static str,
    pub area: usize,
}

pub(crate) struct Drawn {
    pub case: Case,
    /// In the order of the `polyp` findings.
    pub polyps: Vec<PolypInfo>,
    pub colour: PolypColour,
    pub instrument: Option<InstrumentKind>,
    pub green_box: bool,
    pub text: Option<Corner>,
    rng_state: rand_chacha::ChaCha8Rng,
}

/// Processor text lines: a date, an elapsed time and settings, as Kvasir frames show.
pub(crate) fn text_lines<R: Rng>(rng: &mut R) -> Vec<String> {
    let mut lines = vec![format!(
        "{:02}/{:02}/{}",
        rng.random_range(1..29),
        rng.random_range(1..13),
        rng.random_range(2008..2020)
    )];
    lines.push(format!(
        "<{:02}:{:02}:{:02}>",
        0,
        rng.random_range(0..30),
        rng.random_range(0..60)
    ));
    let extra = [
        format!("CVP:{}", rng.random_range(1..4)),
        "G:N".to_string(),
        format!("EH:A{}", rng.random_range(1..9)),
        format!("ID:{:06}", rng.random_range(0..1_000_000)),
    ];
    let k = rng.random_range(0..3);
    lines.extend(extra.into_iter().take(k));
    lines
}

/// Top-left pixel of a text block of size `(tw, th)` in `corner`.
pub(crate) fn text_origin(corner: Corner, tw: u32, th: u32) -> (i64, i64) {
    let (w, h, m) = (W as i64, H as i64, 6i64);
    match corner {
        Corner::TopLeft => (m, m),
        Corner::TopRight => (w - m - tw as i64, m),
        Corner::BottomLeft => (m, h - m - th as i64),
        Corner::BottomRight => (w - m - tw as i64, h - m - th as i64),
    }
}

/// An instrument entering from the right, bottom or left edge toward the image centre.
pub(crate) fn random_instrument<R: Rng>(
    rng: &mut R,
    kind: InstrumentKind,
    target: (f32, f32),
) -> Instrument {
    let (w, h) = (W as f32, H as f32);
    let entry = match rng.random_range(0..3) {
        0 => (w + 6.0, rng.random_range(0.55..0.85f32) * h),
        1 => (rng.random_range(0.55..0.85f32) * w, h + 6.0),
        _ => (-6.0, rng.random_range(0.18..0.42f32) * h),
    };
    let w0 = rng.random_range(26.0..36.0f32);
    Instrument {
        kind,
        entry,
        aim: (
            target.0 + rng.random_range(-40.0..40.0f32),
            target.1 + rng.random_range(-40.0..40.0f32),
        ),
        bend: rng.random_range(-0.12..0.12f32),
        extend: rng.random_range(0.32..0.48f32) * w,
        w0,
        w1: w0 * rng.random_range(0.55..0.68f32),
    }
}

struct Rect {
    x0: f32,
    y0: f32,
    x1: f32,
    y1: f32,
}

impl Rect {
    fn near(&self, x: f32, y: f32, r: f32) -> bool {
        x > self.x0 - r && x < self.x1 + r && y > self.y0 - r && y < self.y1 + r
    }
}

fn mask_near(mask: &GrayImage, x: f32, y: f32, r: f32) -> bool {
    let (x0, x1) = ((x - r).max(0.0) as u32, ((x + r).max(0.0) as u32).min(W));
    let (y0, y1) = ((y - r).max(0.0) as u32, ((y + r).max(0.0) as u32).min(H));
    for py in y0..y1 {
        for px in x0..x1 {
            if mask.get_pixel(px, py).0[0] > 0
                && (px as f32 + 0.5 - x).powi(2) + (py as f32 + 0.5 - y).powi(2) <= r * r
            {
                return true;
            }
        }
    }
    false
}

pub(crate) fn draw(seed: u64, index: usize) -> Drawn {
    let mut rng = case_rng(PhantomSet::Endoscopy, seed, index);
    let (w, h) = (W as f32, H as f32);
    let lumen = (
        w * (0.5 + rng.random_range(-0.2..0.2f32)),
        h * (0.5 + rng.random_range(-0.2..0.2f32)),
    );
    let mut scene = Scene::random(&mut rng, W, H, lumen);

    let n_polyps = *[0usize, 1, 1, 1, 1, 2, 2, 3]
        .get(rng.random_range(0..8))
        .unwrap_or(&1);
    let colour = PolypColour::ALL[rng.random_range(0..3)];
    let instrument_kind = rng
        .random_bool(0.35)
        .then(|| InstrumentKind::ALL[rng.random_range(0..3)]);
    let green_box = rng.random_bool(0.4);
    let mut text = rng.random_bool(0.8).then(|| {
        let c = [
            Corner::TopLeft,
            Corner::TopLeft,
            Corner::TopRight,
            Corner::BottomRight,
            Corner::BottomLeft,
        ];
        c[rng.random_range(0..c.len())]
    });
    if green_box && text == Some(Corner::BottomLeft) {
        text = Some(Corner::TopLeft);
    }
    if n_polyps == 0 && instrument_kind.is_none() && !green_box && text.is_none() {
        text = Some(Corner::TopLeft);
    }
    let lines = text_lines(&mut rng);
    let (tw, th) = scope::text_size(&lines);
    let text_rect = text.map(|c| {
        let (x, y) = text_origin(c, tw, th);
        Rect {
            x0: x as f32,
            y0: y as f32,
            x1: (x + tw as i64) as f32,
            y1: (y + th as i64) as f32,
        }
    });
    let box_rect = green_box.then_some(Rect {
        x0: 0.0,
        y0: h - GREEN_BOX as f32,
        x1: GREEN_BOX as f32,
        y1: h,
    });
    let instrument = instrument_kind.map(|k| random_instrument(&mut rng, k, scene.lumen));
    let instrument_mask = instrument.as_ref().map(|i| {
        let mut scratch = crate::draw::Canvas::new(W, H, &[0.0, 0.0, 0.0]);
        i.draw(&mut scratch)
    });

    // Place polyps where they are whole, clear of the lumen, overlays and each other.
    for _ in 0..n_polyps {
        let size = Size::ALL[rng.random_range(0..3)];
        let target = size.target(&mut rng);
        for _attempt in 0..200 {
            let cx = rng.random_range(0.08..0.92f32) * w;
            let cy = rng.random_range(0.08..0.92f32) * h;
            if (cx - w / 2.0).abs() < 0.07 * w || (cy - h / 2.0).abs() < 0.07 * h {
                continue; // keep the quadrant unambiguous
            }
            let mut p = Polyp::new(&mut rng, cx, cy, 10.0, colour);
            p.fit_width(target, 1.0);
            let reach = p.reach();
            if !scope::inside_fov((cx, cy), reach, 6.0)
                || scope::near_lumen(&scene, cx, cy, reach)
                || text_rect
                    .as_ref()
                    .is_some_and(|r| r.near(cx, cy, reach + 6.0))
                || box_rect
                    .as_ref()
                    .is_some_and(|r| r.near(cx, cy, reach + 6.0))
                || instrument_mask
                    .as_ref()
                    .is_some_and(|m| mask_near(m, cx, cy, reach + 8.0))
                || scene.polyps.iter().any(|q| {
                    ((q.cx - cx).powi(2) + (q.cy - cy).powi(2)).sqrt() < q.reach() + reach + 10.0
                })
            {
                continue;
            }
            scene.add_polyp(&mut rng, p);
            break;
        }
    }

    let (mut canvas, mut polyp_masks) = scene.render(&View::identity());
    let mut inst_mask = instrument.as_ref().map(|i| i.draw(&mut canvas));
    scope::apply_fov(&mut canvas);
    let fov = scope::fov_mask();
    if let Some(m) = inst_mask.as_mut() {
        mask_intersect(m, &fov);
    }
    for m in &mut polyp_masks {
        mask_intersect(m, &fov);
        if let Some(im) = &inst_mask {
            mask_subtract(m, im);
        }
    }
    let box_mask = green_box.then(|| scope::draw_green_box(&mut rng, &mut canvas));
    let text_mask = text_rect
        .as_ref()
        .map(|r| scope::draw_text(&mut canvas, r.x0 as i64, r.y0 as i64, &lines));
    for m in polyp_masks.iter_mut().chain(inst_mask.iter_mut()) {
        for cut in box_mask.iter().chain(text_mask.iter()) {
            mask_subtract(m, cut);
        }
    }

    let mut findings: Vec<Finding> = Vec::new();
    let mut polyps = Vec::new();
    for m in polyp_masks {
        let area = super::common::mask_area(&m);
        let (Some(b), Some((mx, my))) = (mask_bbox(&m), mask_centroid(&m)) else {
            continue;
        };
        polyps.push(PolypInfo {
            size: Size::of_width(b.width()),
            quadrant: quadrant(mx / W as f64, my / H as f64),
            area,
        });
        findings.extend(finding("polyp", 0, m));
    }
    let instrument = inst_mask
        .and_then(|m| finding("instrument", 0, m))
        .map(|f| {
            findings.push(f);
            instrument_kind
        });
    if let Some(m) = box_mask {
        findings.extend(finding("green_box", 0, m));
    }
    let text = text_mask.and_then(|m| finding("text", 0, m)).map(|f| {
        let c = Corner::of((f.bbox.x1 + f.bbox.x2) / 2.0, (f.bbox.y1 + f.bbox.y2) / 2.0);
        findings.push(f);
        c
    });
    Drawn {
        case: Case {
            key: format!("endoscopy/{index:04}"),
            images: vec![canvas.to_pixels()],
            findings,
        },
        polyps,
        colour,
        instrument: instrument.flatten(),
        green_box,
        text,
        rng_state: rng,
    }
}

fn build(seed: u64, index: usize) -> Built {
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

fn pick<'a, R: Rng>(rng: &mut R, options: &[&'a str]) -> &'a str {
    options[rng.random_range(0..options.len())]
}

/// The index of the largest polyp by area.
fn largest(d: &Drawn) -> Option<usize> {
    (0..d.polyps.len()).max_by_key(|&i| (d.polyps[i].area, usize::MAX - i))
}

fn open_question<R: Rng>(rng: &mut R, d: &Drawn) -> Question {
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
            let text = phrase(
                rng,
                &[
                    "What colour is the polyp? Answer red, pink or white.",
                    "Which colour does the polyp have: red, pink or white?",
                    "Describe the colour of the polyp in one word (red, pink or white).",
                ],
                &[],
            );
            Question::new(
                "polyp-colour",
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
            let text = phrase(
                rng,
                &[
                    "What instrument is visible? Answer forceps, snare or catheter.",
                    "Which endoscopic tool can be seen: forceps, snare or catheter?",
                    "Name the instrument in the image (forceps, snare or catheter).",
                ],
                &[],
            );
            Question::new(
                "instrument-type",
                text,
                Task::Open {
                    answer: kind.into(),
                },
            )
            .boxes(boxes_of(f, "instrument"))
            .about("instrument")
        }
        _ => {
            let text = phrase(
                rng,
                &[
                    "How many polyps are there? Answer with a number.",
                    "Count the polyps in this colonoscopy image. Answer with a number.",
                    "How many polyps can be seen? Answer with a number.",
                ],
                &[],
            );
            Question::new(
                "count",
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

fn closed_question<R: Rng>(rng: &mut R, d: &Drawn) -> Question {
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

fn single_question<R: Rng>(rng: &mut R, d: &Drawn) -> Question {
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
            let text = phrase(
                rng,
                &[
                    "How large is the {which}, judged by the width of its bounding box?",
                    "What is the size of the {which} relative to the image?",
                    "Which size class fits the {which}?",
                ],
                &[("which", if one { "polyp" } else { "largest polyp" })],
            );
            let pf = with_label(f, "polyp");
            Question::new("polyp-size", text, single_ordered(opts, correct))
                .boxes(pf.get(i).map(|x| vec![gt(x)]).unwrap_or_default())
                .about("polyp")
        }
        "polyp-colour-choice" => {
            let others: Vec<String> = PolypColour::ALL
                .iter()
                .map(|c| c.name().to_string())
                .chain(["black".to_string()])
                .collect();
            let text = phrase(
                rng,
                &[
                    "What colour is the polyp?",
                    "Which colour best describes the polyp?",
                    "The polyp in this image is which colour?",
                ],
                &[],
            );
            Question::new(
                "polyp-colour-choice",
                text,
                single(rng, d.colour.name(), &others),
            )
            .boxes(boxes_of(f, "polyp"))
            .about("polyp")
        }
        "polyp-position" => {
            let correct = d.polyps[0].quadrant;
            let others: Vec<String> = QUADRANTS.iter().map(|q| q.to_string()).collect();
            let text = phrase(
                rng,
                &[
                    "Where in the image is the polyp?",
                    "In which quadrant of the image is the polyp located?",
                    "Which part of the image contains the polyp?",
                ],
                &[],
            );
            Question::new("polyp-position", text, single(rng, correct, &others))
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
            let text = phrase(
                rng,
                &[
                    "Which instrument is visible?",
                    "What kind of endoscopic tool appears in the image?",
                    "The instrument entering the field of view is a:",
                ],
                &[],
            );
            Question::new("instrument-choice", text, single(rng, kind, &others))
                .boxes(boxes_of(f, "instrument"))
                .about("instrument")
        }
        "text-corner" => {
            let corner = d.text.map(Corner::name).unwrap_or_default();
            let others: Vec<String> = Corner::ALL.iter().map(|c| c.name().to_string()).collect();
            let text = phrase(
                rng,
                &[
                    "In which corner is the burned-in text?",
                    "Where is the processor text overlaid on the image?",
                    "Which corner of the image carries the date and time text?",
                ],
                &[],
            );
            Question::new("text-corner", text, single(rng, corner, &others))
                .boxes(boxes_of(f, "text"))
                .about("text")
        }
        _ => count_choice(rng, d),
    }
}

fn count_choice<R: Rng>(rng: &mut R, d: &Drawn) -> Question {
    let opts: Vec<String> = (0..=4).map(|k| k.to_string()).collect();
    let text = phrase(
        rng,
        &[
            "How many polyps are visible?",
            "What is the number of polyps in the image?",
            "How many polyps does this frame show?",
        ],
        &[],
    );
    Question::new("count-choice", text, single_ordered(opts, d.polyps.len()))
        .boxes(boxes_of(&d.case.findings, "polyp"))
        .about("polyp")
}

/// Things the multi-choice question may offer; the last three are never drawn.
const OBJECTS: [(&str, &str); 7] = [
    ("polyp", "polyp"),
    ("instrument", "instrument"),
    ("green_box", "green position-map box"),
    ("text", "burned-in text"),
    ("", "active bleeding"),
    ("", "ulcer"),
    ("", "diverticulum"),
];

fn multi_question<R: Rng>(rng: &mut R, d: &Drawn) -> Question {
    let f = &d.case.findings;
    if d.polyps.len() >= 2 && rng.random_bool(0.5) {
        let opts = QUADRANTS
            .iter()
            .map(|q| (q.to_string(), d.polyps.iter().any(|p| p.quadrant == *q)))
            .collect();
        let text = phrase(
            rng,
            &[
                "Which quadrants of the image contain a polyp? Select all that apply.",
                "Select every image quadrant where a polyp is seen.",
                "In which parts of the image are the polyps? Choose all that apply.",
            ],
            &[],
        );
        return Question::new("polyp-quadrants", text, multi(rng, opts, None))
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
    let text = phrase(
        rng,
        &[
            "Which of the following are visible in the image? Select all that apply.",
            "Select everything that can be seen in this colonoscopy frame.",
            "Which of these appear in the image? Choose all that apply.",
        ],
        &[],
    );
    Question::new("visible", text, multi(rng, opts, None)).boxes(f.iter().map(gt).collect())
}

fn grounding_question<R: Rng>(rng: &mut R, d: &Drawn) -> Question {
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
            let text = phrase(
                rng,
                &[
                    "Locate the largest polyp. Answer with a bounding box.",
                    "Draw a bounding box around the biggest polyp.",
                    "Where is the largest polyp? Answer with a bounding box.",
                ],
                &[],
            );
            let pf = with_label(f, "polyp");
            let boxes = largest(d)
                .and_then(|i| pf.get(i))
                .map(|x| vec![gt(x)])
                .unwrap_or_default();
            return Question::new("locate-largest-polyp", text, box_only())
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

#[cfg(test)]
mod tests {
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
}
