//! The built-in phantom sets: byte-identical output for a seed whatever the thread count,
//! answers that agree with the drawn findings' masks, all five kinds, exact counts, and a
//! manifest that loads back.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use medvqa::data::phantom::{self, Case, Finding, PhantomSet};
use medvqa::geometry::BBox;
use medvqa::sample::{QuestionKind, Sample, Task};

/// Every file under `dir`, by relative path, with its bytes.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p
                    .strip_prefix(dir)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

fn write_phantoms(out: &Path, seed: &str, n: &str, threads: Option<&str>) {
    let mut cmd = common::medvqa();
    cmd.args([
        "phantom", "--set", "all", "--seed", seed, "--n", n, "--quiet", "--out",
    ])
    .arg(out);
    if let Some(t) = threads {
        cmd.env("RAYON_NUM_THREADS", t);
    }
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "{}", common::stderr(&o));
}

#[test]
fn same_seed_gives_byte_identical_folders_for_any_thread_count() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("c"),
    );
    write_phantoms(&a, "7", "6", None);
    write_phantoms(&b, "7", "6", Some("1"));
    write_phantoms(&c, "7", "6", Some("2"));
    let (ta, tb, tc) = (tree(&a), tree(&b), tree(&c));
    assert!(ta.contains_key("manifest.jsonl"));
    assert!(ta.contains_key("cxr/0000.png"));
    assert!(ta.contains_key("endoscopy/0001.png"));
    assert!(ta.contains_key("frames/0000_f2.png"));
    assert_eq!(ta.keys().collect::<Vec<_>>(), tb.keys().collect::<Vec<_>>());
    for (k, v) in &ta {
        assert!(tb[k] == *v, "{k} differs with RAYON_NUM_THREADS=1");
        assert!(tc[k] == *v, "{k} differs with RAYON_NUM_THREADS=2");
    }
}

#[test]
fn different_seeds_give_different_images() {
    for set in PhantomSet::ALL {
        let a = phantom::case(set, 1, 0);
        let b = phantom::case(set, 2, 0);
        assert!(!a.images.is_empty());
        assert_ne!(a.images[0], b.images[0], "{}", set.name());
        // And different cases of one seed differ too.
        let c = phantom::case(set, 1, 1);
        assert_ne!(a.images[0], c.images[0], "{}", set.name());
    }
}

#[test]
fn cli_writes_exactly_n_per_set_and_the_manifest_loads_back() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("p");
    write_phantoms(&out, "3", "37", None);
    let text = std::fs::read_to_string(out.join("manifest.jsonl")).unwrap();
    let mut per_set: BTreeMap<String, usize> = BTreeMap::new();
    for line in text.lines().skip(1) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        *per_set
            .entry(v["meta"]["set"].as_str().unwrap().to_string())
            .or_default() += 1;
        for img in v["images"].as_array().unwrap() {
            assert!(out.join(img.as_str().unwrap()).is_file(), "{img}");
        }
    }
    assert_eq!(
        per_set,
        BTreeMap::from([
            ("cxr".to_string(), 37),
            ("endoscopy".to_string(), 37),
            ("frames".to_string(), 37)
        ])
    );
    let spec = format!("jsonl:{}", out.join("manifest.jsonl").display());
    let o = common::run(&["inspect", "--dataset", &spec, "--quiet"]);
    let s = common::stdout(&o);
    assert!(o.status.success(), "{s}{}", common::stderr(&o));
    assert!(s.contains("111 loaded, 0 failed"), "{s}");
    assert!(s.contains("grounding") && s.contains("multi_choice"), "{s}");
}

#[test]
fn inspect_generates_phantoms_in_memory() {
    let o = common::run(&[
        "inspect",
        "--dataset",
        "phantom:endoscopy",
        "--dataset-n",
        "7",
        "--quiet",
    ]);
    let s = common::stdout(&o);
    assert!(o.status.success(), "{s}");
    assert!(s.contains("7 loaded, 0 failed"), "{s}");
}

#[test]
fn every_set_has_all_kinds_valid_options_and_unique_ids() {
    for set in PhantomSet::ALL {
        let samples = phantom::generate(set, 5, 37);
        assert_eq!(samples.len(), 37, "{}", set.name());
        let mut kinds: BTreeMap<QuestionKind, usize> = BTreeMap::new();
        let mut ids = std::collections::HashSet::new();
        for s in &samples {
            *kinds.entry(s.kind()).or_default() += 1;
            assert!(ids.insert(s.id.clone()), "duplicate id {}", s.id);
            let parts: Vec<&str> = s.id.split('/').collect();
            assert_eq!(parts.len(), 3, "{}", s.id);
            assert_eq!(parts[0], set.name());
            assert!(parts[1].len() == 4 && parts[1].bytes().all(|b| b.is_ascii_digit()));
            assert_eq!(s.meta["set"].to_string(), set.name());
            assert_eq!(s.meta["template"].to_string(), parts[2]);
            assert!(s.meta.contains_key("modality") && s.meta.contains_key("organ"));
            match &s.task {
                Task::MultiChoice { options, answer } => {
                    assert!((4..=6).contains(&options.len()), "{}: {options:?}", s.id);
                    assert!(!answer.is_empty() && answer.iter().all(|&i| i < options.len()));
                    assert!(answer.windows(2).all(|w| w[0] < w[1]));
                    distinct(options, &s.id);
                }
                Task::SingleChoice { options, answer } => {
                    assert!(options.len() >= 2 && *answer < options.len(), "{}", s.id);
                    distinct(options, &s.id);
                }
                Task::Grounding { .. } => assert!(!s.boxes.is_empty(), "{}", s.id),
                Task::Open { answer } => assert!(!answer.is_empty(), "{}", s.id),
                Task::Closed { .. } => {}
            }
            if set == PhantomSet::Frames {
                assert!((2..=5).contains(&s.images.len()), "{}", s.id);
                assert_eq!(s.meta["n_frames"].to_string(), s.images.len().to_string());
                for (k, img) in s.images.iter().enumerate() {
                    assert_eq!(img.key, format!("frames/{}_f{}.png", parts[1], k + 1));
                }
            } else {
                assert_eq!(s.images.len(), 1);
                assert_eq!(s.images[0].key, format!("{}/{}.png", set.name(), parts[1]));
            }
        }
        for k in QuestionKind::ALL {
            assert!(
                kinds.get(&k).copied().unwrap_or(0) > 0,
                "{} lacks {k}",
                set.name()
            );
        }
    }
}

fn distinct(options: &[String], id: &str) {
    let set: std::collections::HashSet<&String> = options.iter().collect();
    assert_eq!(set.len(), options.len(), "{id}: {options:?}");
}

// ---- answers against the drawn findings -------------------------------------------------

/// The cases behind `samples`, each drawn once.
fn cases(set: PhantomSet, seed: u64, samples: &[Sample]) -> HashMap<usize, Case> {
    let mut out = HashMap::new();
    for s in samples {
        let idx: usize = s.id.split('/').nth(1).unwrap().parse().unwrap();
        out.entry(idx)
            .or_insert_with(|| phantom::case(set, seed, idx));
    }
    out
}

fn case_of<'a>(cases: &'a HashMap<usize, Case>, s: &Sample) -> &'a Case {
    &cases[&s.id.split('/').nth(1).unwrap().parse::<usize>().unwrap()]
}

fn labelled<'a>(c: &'a Case, label: &str) -> Vec<&'a Finding> {
    c.findings.iter().filter(|f| f.label == label).collect()
}

fn template(s: &Sample) -> String {
    s.meta["template"].to_string()
}

fn about(s: &Sample) -> String {
    s.meta
        .get("finding")
        .map(|m| m.to_string())
        .unwrap_or_default()
}

fn centroid(f: &Finding) -> (f64, f64) {
    let (w, h) = f.mask.dimensions();
    let (mut sx, mut sy, mut n) = (0.0, 0.0, 0.0);
    for (x, y, p) in f.mask.enumerate_pixels() {
        if p.0[0] == 255 {
            sx += x as f64 + 0.5;
            sy += y as f64 + 0.5;
            n += 1.0;
        }
    }
    (sx / n / w as f64, sy / n / h as f64)
}

fn area(f: &Finding) -> usize {
    f.mask.pixels().filter(|p| p.0[0] == 255).count()
}

fn open(s: &Sample) -> &str {
    match &s.task {
        Task::Open { answer } => answer,
        t => panic!("{}: not open: {t:?}", s.id),
    }
}

fn closed(s: &Sample) -> bool {
    match &s.task {
        Task::Closed { answer } => *answer,
        t => panic!("{}: not closed: {t:?}", s.id),
    }
}

fn chosen(s: &Sample) -> Vec<String> {
    match &s.task {
        Task::SingleChoice { options, answer } => vec![options[*answer].clone()],
        Task::MultiChoice { options, answer } => {
            answer.iter().map(|&i| options[i].clone()).collect()
        }
        t => panic!("{}: not a choice: {t:?}", s.id),
    }
}

fn boxes_of(fs: &[&Finding]) -> Vec<(usize, [f64; 4])> {
    let mut v: Vec<(usize, [f64; 4])> = fs.iter().map(|f| (f.image, f.bbox.to_array())).collect();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v
}

fn gt_boxes(s: &Sample) -> Vec<(usize, [f64; 4])> {
    let mut v: Vec<(usize, [f64; 4])> = s
        .boxes
        .iter()
        .map(|b| (b.image, b.bbox.to_array()))
        .collect();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v
}

/// The patient's side of a chest finding: the patient's right is on the image left.
fn side(f: &Finding) -> &'static str {
    if centroid(f).0 < 0.5 { "right" } else { "left" }
}

fn masks_are_exact_and_boxes_tight(c: &Case) {
    for f in &c.findings {
        let (w, h) = f.mask.dimensions();
        assert_eq!(
            (w, h),
            c.images[f.image].dimensions(),
            "{} {}",
            c.key,
            f.label
        );
        let px = |b: BBox| b.to_pixels(w, h).map(|v| v.round() as i64);
        let [x0, y0, x1, y1] = px(f.bbox);
        let (mut mx0, mut my0, mut mx1, mut my1) = (i64::MAX, i64::MAX, i64::MIN, i64::MIN);
        for (x, y, p) in f.mask.enumerate_pixels() {
            assert!(p.0[0] == 0 || p.0[0] == 255);
            if p.0[0] == 255 {
                let (x, y) = (x as i64, y as i64);
                assert!(
                    x >= x0 && x < x1 && y >= y0 && y < y1,
                    "{} {} outside its box",
                    c.key,
                    f.label
                );
                mx0 = mx0.min(x);
                my0 = my0.min(y);
                mx1 = mx1.max(x + 1);
                my1 = my1.max(y + 1);
            }
        }
        assert_eq!(
            [mx0, my0, mx1, my1],
            [x0, y0, x1, y1],
            "{} {} box not tight",
            c.key,
            f.label
        );
    }
}

fn grounding_matches(s: &Sample, c: &Case) {
    if s.kind() != QuestionKind::Grounding {
        return;
    }
    let label = about(s);
    let mut fs = labelled(c, &label);
    if let Some(k) = s.meta.get("frame") {
        let k: usize = k.to_string().parse().unwrap();
        fs.retain(|f| f.image == k - 1);
    }
    if let Some(sd) = s.meta.get("side") {
        fs.retain(|f| side(f) == sd.to_string());
    }
    if template(s) == "locate-largest-polyp" {
        let big = fs.iter().copied().max_by_key(|f| area(f)).unwrap();
        fs = vec![big];
    }
    assert!(!fs.is_empty(), "{}", s.id);
    assert_eq!(gt_boxes(s), boxes_of(&fs), "{}", s.id);
}

#[test]
fn cxr_answers_agree_with_the_drawn_findings() {
    let seed = 21;
    let samples = phantom::generate(PhantomSet::Cxr, seed, 60);
    let cases = cases(PhantomSet::Cxr, seed, &samples);
    for c in cases.values() {
        masks_are_exact_and_boxes_tight(c);
        assert_eq!(labelled(c, "heart").len(), 1);
    }
    let mut checked = 0;
    for s in &samples {
        let c = case_of(&cases, s);
        grounding_matches(s, c);
        let nod = labelled(c, "nodule");
        let has = |l: &str| !labelled(c, l).is_empty();
        let only = |l: &str| labelled(c, l)[0];
        match template(s).as_str() {
            "count" => assert_eq!(open(s), nod.len().to_string(), "{}", s.id),
            "count-choice" => assert_eq!(chosen(s), vec![nod.len().to_string()], "{}", s.id),
            "nodule-side" => assert_eq!(open(s), side(nod[0]), "{}", s.id),
            "effusion-side" => assert_eq!(open(s), side(only("effusion"))),
            "pneumothorax-side" => assert_eq!(open(s), side(only("pneumothorax"))),
            "has-effusion" => assert_eq!(closed(s), has("effusion"), "{}", s.id),
            "has-pneumothorax" => assert_eq!(closed(s), has("pneumothorax"), "{}", s.id),
            "has-cardiomegaly" => assert_eq!(closed(s), has("cardiomegaly"), "{}", s.id),
            "is-normal" => assert_eq!(closed(s), c.findings.len() == 1, "{}", s.id),
            "has-nodule-side" => {
                let sd = s.meta["side"].to_string();
                assert_eq!(closed(s), nod.iter().any(|f| side(f) == sd), "{}", s.id);
            }
            "pleural-side" => {
                let f = only(&about(s));
                assert_eq!(chosen(s), vec![side(f).to_string()], "{}", s.id);
            }
            "nodule-zone" => {
                let got = &chosen(s)[0];
                assert!(got.starts_with(side(nod[0])), "{}: {got}", s.id);
            }
            "nodule-zones" => {
                let sides: Vec<String> = chosen(s)
                    .iter()
                    .map(|z| z.split(' ').next().unwrap().to_string())
                    .collect();
                for f in &nod {
                    assert!(sides.contains(&side(f).to_string()), "{}", s.id);
                }
            }
            "findings" => {
                let picked = chosen(s);
                for (text, label) in [
                    ("pulmonary nodule", "nodule"),
                    ("pleural effusion", "effusion"),
                    ("cardiomegaly", "cardiomegaly"),
                    ("pneumothorax", "pneumothorax"),
                ] {
                    assert_eq!(
                        picked.contains(&text.to_string()),
                        has(label),
                        "{}: {text}",
                        s.id
                    );
                }
                assert_eq!(
                    picked.contains(&"no abnormality".to_string()),
                    c.findings.len() == 1
                );
            }
            "ctr-range" => {
                let got = chosen(s)[0].clone();
                if has("cardiomegaly") {
                    assert_ne!(got, "less than 0.50", "{}", s.id);
                } else {
                    assert_eq!(got, "less than 0.50", "{}", s.id);
                }
                // The enlarged heart is wider than a normal one would be.
                let hw = only("heart").bbox.width();
                assert!(
                    if has("cardiomegaly") {
                        hw > 0.36
                    } else {
                        hw < 0.40
                    },
                    "{}: {hw}",
                    s.id
                );
            }
            _ => {}
        }
        // Boxes on any question point at findings that exist.
        for b in &s.boxes {
            assert!(
                c.findings
                    .iter()
                    .any(|f| f.image == b.image && f.bbox == b.bbox),
                "{}",
                s.id
            );
        }
        checked += 1;
    }
    assert_eq!(checked, 60);
    covers(
        &samples,
        &[
            "count",
            "count-choice",
            "nodule-side",
            "effusion-side",
            "pneumothorax-side",
            "has-effusion",
            "has-pneumothorax",
            "has-cardiomegaly",
            "is-normal",
            "has-nodule-side",
            "pleural-side",
            "nodule-zone",
            "nodule-zones",
            "findings",
            "ctr-range",
        ],
        8,
    );
}

/// Fails unless at least `min` of the templates a test checks occur in `samples`, so
/// that the per-template checks above are not vacuous.
fn covers(samples: &[Sample], checked: &[&str], min: usize) {
    let seen: std::collections::BTreeSet<String> = samples
        .iter()
        .map(template)
        .filter(|t| checked.contains(&t.as_str()))
        .collect();
    assert!(seen.len() >= min, "only {seen:?} were checked");
}

#[test]
fn endoscopy_answers_agree_with_the_drawn_findings() {
    let seed = 22;
    let samples = phantom::generate(PhantomSet::Endoscopy, seed, 60);
    let cases = cases(PhantomSet::Endoscopy, seed, &samples);
    for c in cases.values() {
        masks_are_exact_and_boxes_tight(c);
        assert!(!c.findings.is_empty(), "{}", c.key);
    }
    let quadrant = |f: &Finding| {
        let (x, y) = centroid(f);
        format!(
            "{} {}",
            if y < 0.5 { "upper" } else { "lower" },
            if x < 0.5 { "left" } else { "right" }
        )
    };
    for s in &samples {
        let c = case_of(&cases, s);
        grounding_matches(s, c);
        let polyps = labelled(c, "polyp");
        let has = |l: &str| !labelled(c, l).is_empty();
        match template(s).as_str() {
            "count" => assert_eq!(open(s), polyps.len().to_string(), "{}", s.id),
            "count-choice" => assert_eq!(chosen(s), vec![polyps.len().to_string()], "{}", s.id),
            "has-polyp" => assert_eq!(closed(s), has("polyp"), "{}", s.id),
            "multiple-polyps" => assert_eq!(closed(s), polyps.len() > 1, "{}", s.id),
            "has-instrument" => assert_eq!(closed(s), has("instrument"), "{}", s.id),
            "has-green-box" => assert_eq!(closed(s), has("green_box"), "{}", s.id),
            "has-text" => assert_eq!(closed(s), has("text"), "{}", s.id),
            "polyp-position" => assert_eq!(chosen(s), vec![quadrant(polyps[0])], "{}", s.id),
            "polyp-quadrants" => {
                let mut want: Vec<String> = polyps.iter().map(|f| quadrant(f)).collect();
                want.sort();
                want.dedup();
                let mut got = chosen(s);
                got.sort();
                assert_eq!(got, want, "{}", s.id);
            }
            "polyp-size" => {
                let big = polyps.iter().max_by_key(|f| area(f)).unwrap();
                let w = big.bbox.width();
                let got = &chosen(s)[0];
                let want = if w < 0.12 {
                    "small"
                } else if w <= 0.22 {
                    "medium"
                } else {
                    "large"
                };
                assert!(got.starts_with(want), "{}: {got} for width {w}", s.id);
            }
            "text-corner" => {
                let b = labelled(c, "text")[0].bbox;
                let (x, y) = ((b.x1 + b.x2) / 2.0, (b.y1 + b.y2) / 2.0);
                let want = format!(
                    "{} {}",
                    if y < 0.5 { "top" } else { "bottom" },
                    if x < 0.5 { "left" } else { "right" }
                );
                assert_eq!(chosen(s), vec![want], "{}", s.id);
            }
            "visible" => {
                let picked = chosen(s);
                for (text, label) in [
                    ("polyp", "polyp"),
                    ("instrument", "instrument"),
                    ("green position-map box", "green_box"),
                    ("burned-in text", "text"),
                ] {
                    assert_eq!(
                        picked.contains(&text.to_string()),
                        has(label),
                        "{}: {text}",
                        s.id
                    );
                }
                assert!(
                    picked.iter().all(
                        |p| !["active bleeding", "ulcer", "diverticulum"].contains(&p.as_str())
                    )
                );
            }
            "polyp-colour" | "polyp-colour-choice" => {
                // Colour classes differ in how much green the polyp keeps against its red.
                let img = &c.images[0];
                let medvqa::pixels::Pixels::Rgb(rgb) = img else {
                    panic!()
                };
                let (mut r, mut g, mut n) = (0.0, 0.0, 0.0);
                for f in &polyps {
                    for (x, y, p) in f.mask.enumerate_pixels() {
                        if p.0[0] == 255 {
                            let px = rgb.get_pixel(x, y).0;
                            r += px[0] as f64;
                            g += px[1] as f64;
                            n += 1.0;
                        }
                    }
                }
                let ratio = g / r.max(1.0);
                let answer = if template(s) == "polyp-colour" {
                    open(s).to_string()
                } else {
                    chosen(s)[0].clone()
                };
                match answer.as_str() {
                    "red" => assert!(ratio < 0.45, "{}: g/r {ratio}", s.id),
                    "pink" => assert!((0.5..0.8).contains(&ratio), "{}: g/r {ratio}", s.id),
                    "white" => assert!(ratio > 0.78, "{}: g/r {ratio}", s.id),
                    other => panic!("{}: colour {other}", s.id),
                }
                let _ = n;
            }
            _ => {}
        }
        for b in &s.boxes {
            assert!(
                c.findings
                    .iter()
                    .any(|f| f.image == b.image && f.bbox == b.bbox),
                "{}",
                s.id
            );
        }
    }
    covers(
        &samples,
        &[
            "count",
            "count-choice",
            "has-polyp",
            "multiple-polyps",
            "has-instrument",
            "has-green-box",
            "has-text",
            "polyp-position",
            "polyp-quadrants",
            "polyp-size",
            "text-corner",
            "visible",
            "polyp-colour",
            "polyp-colour-choice",
        ],
        8,
    );
}

#[test]
fn frames_answers_agree_with_the_per_frame_masks() {
    let seed = 23;
    let samples = phantom::generate(PhantomSet::Frames, seed, 50);
    let cases = cases(PhantomSet::Frames, seed, &samples);
    for c in cases.values() {
        masks_are_exact_and_boxes_tight(c);
        // One finding per label and frame at most, each with a non-empty mask.
        let mut seen = std::collections::HashSet::new();
        for f in &c.findings {
            assert!(seen.insert((f.label.clone(), f.image)), "{}", c.key);
            assert!(area(f) > 0);
            assert!(f.image < c.images.len());
        }
    }
    for s in &samples {
        let c = case_of(&cases, s);
        grounding_matches(s, c);
        let n = c.images.len();
        let label = about(s);
        let frames: Vec<usize> = labelled(c, &label).iter().map(|f| f.image).collect();
        let in_frame = |k: usize| frames.contains(&k);
        let first = (0..n).find(|&k| in_frame(k));
        let last = (0..n).rev().find(|&k| in_frame(k));
        let frame_meta = || s.meta["frame"].to_string().parse::<usize>().unwrap() - 1;
        let areas: Vec<usize> = (0..n)
            .map(|k| {
                labelled(c, &label)
                    .iter()
                    .filter(|f| f.image == k)
                    .map(|f| area(f))
                    .sum()
            })
            .collect();
        match template(s).as_str() {
            "first-frame" => assert_eq!(open(s), (first.unwrap() + 1).to_string(), "{}", s.id),
            "last-frame" => assert_eq!(open(s), (last.unwrap() + 1).to_string(), "{}", s.id),
            "frames-count" => assert_eq!(open(s), frames.len().to_string(), "{}", s.id),
            "largest-frame" => {
                let big = (0..n).max_by_key(|&k| areas[k]).unwrap();
                assert_eq!(open(s), (big + 1).to_string(), "{}", s.id);
            }
            "first-frame-choice" => {
                assert_eq!(chosen(s), vec![format!("frame {}", first.unwrap() + 1)])
            }
            "last-frame-choice" => {
                assert_eq!(chosen(s), vec![format!("frame {}", last.unwrap() + 1)])
            }
            "largest-frame-choice" => {
                let big = (0..n).max_by_key(|&k| areas[k]).unwrap();
                assert_eq!(chosen(s), vec![format!("frame {}", big + 1)], "{}", s.id);
            }
            "visible-in-frame" => assert_eq!(closed(s), in_frame(frame_meta()), "{}", s.id),
            "in-every-frame" => assert_eq!(closed(s), frames.len() == n, "{}", s.id),
            "frames-visible" => {
                let want: Vec<String> = (0..n)
                    .filter(|&k| in_frame(k))
                    .map(|k| format!("frame {}", k + 1))
                    .collect();
                assert_eq!(chosen(s), want, "{}", s.id);
            }
            "objects-in-frame" => {
                let k = frame_meta();
                let picked = chosen(s);
                for (text, l) in [
                    ("polyp", "polyp"),
                    ("instrument", "instrument"),
                    ("timestamp text", "text"),
                ] {
                    let present = c.findings.iter().any(|f| f.label == l && f.image == k);
                    assert_eq!(
                        picked.contains(&text.to_string()),
                        present,
                        "{}: {text}",
                        s.id
                    );
                }
            }
            "larger-at-end" => {
                let p: Vec<usize> = (0..n)
                    .map(|k| {
                        labelled(c, "polyp")
                            .iter()
                            .filter(|f| f.image == k)
                            .map(|f| area(f))
                            .sum()
                    })
                    .collect();
                assert_eq!(closed(s), p[n - 1] as f64 > 1.5 * p[0] as f64, "{}", s.id);
            }
            "direction" | "direction-choice" => {
                let fs = labelled(c, &label);
                let a = fs.iter().find(|f| f.image == first.unwrap()).unwrap();
                let b = fs.iter().find(|f| f.image == last.unwrap()).unwrap();
                let ((x0, y0), (x1, y1)) = (centroid(a), centroid(b));
                let (dx, dy) = ((x1 - x0) * 448.0, (y1 - y0) * 384.0);
                let want = if dx.abs() >= dy.abs() {
                    if dx < 0.0 { "left" } else { "right" }
                } else if dy < 0.0 {
                    "up"
                } else {
                    "down"
                };
                let got = if template(s) == "direction" {
                    open(s).to_string()
                } else {
                    chosen(s)[0].clone()
                };
                assert_eq!(got, want, "{}", s.id);
            }
            "change" => {
                let got = chosen(s)[0].clone();
                if label == "instrument" {
                    assert!(!in_frame(0) && in_frame(n - 1), "{}", s.id);
                    assert!(got.starts_with("It comes into view"));
                } else if got.starts_with("It is absent at first") {
                    assert!(!in_frame(0) && in_frame(n - 1), "{}", s.id);
                } else if got.starts_with("It is visible at first") {
                    assert!(in_frame(0) && !in_frame(n - 1), "{}", s.id);
                } else {
                    assert_eq!(frames.len(), n, "{}", s.id);
                    if got.contains("larger") {
                        assert!(areas[n - 1] as f64 > 1.5 * areas[0] as f64, "{}", s.id);
                    }
                }
            }
            _ => {}
        }
        for b in &s.boxes {
            assert!(
                c.findings
                    .iter()
                    .any(|f| f.image == b.image && f.bbox == b.bbox),
                "{}",
                s.id
            );
        }
    }
    covers(
        &samples,
        &[
            "first-frame",
            "last-frame",
            "frames-count",
            "largest-frame",
            "first-frame-choice",
            "last-frame-choice",
            "largest-frame-choice",
            "visible-in-frame",
            "in-every-frame",
            "frames-visible",
            "objects-in-frame",
            "larger-at-end",
            "direction",
            "direction-choice",
            "change",
        ],
        8,
    );
}
