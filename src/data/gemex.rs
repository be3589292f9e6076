//! GEMeX (`Awenbocc/GEMeX-Project`, `data-v1-subset/`): grounded chest X-ray VQA.
//!
//! ```text
//! $ medvqa inspect --dataset gemex:GEMeX/data-v1-subset --image-root mimic-cxr-jpg/2.0.0/files
//! ```
//!
//! - Input: the folder holding `open_ended_question.jsonl`, `closed_ended_question.jsonl`,
//!   `single_choice_question.jsonl` and `multi_choice_question.jsonl` (any that exist), or
//!   one of those files. Fields: `question`, `type`, `answer`, `reason`, `visual_regions`,
//!   `visual_locations`, `image_path`, `q_id`, `row_id`, and `choices` (`"A: text"`) in the
//!   choice files. Other fields are ignored.
//! - The file decides the kind: closed answers are `"Yes."`/`"No."`; single choice a
//!   letter; multi choice a list of letters; open answers are free text, kept as written
//!   (with their final period). Choice prefixes `A: ` are stripped from the option texts.
//! - Boxes: `visual_locations` are `[x1, y1, x2, y2]` on a declared 224×224 frame
//!   (`pixels:224x224`, override with `--dataset-box-frame`), clamped to it, each labelled
//!   with its `visual_regions` entry.
//! - Images: `image_path` resolves under `--image-root`, the MIMIC-CXR-JPG `files/` folder
//!   (credentialed; not shipped with GEMeX). A row whose image is missing fails with a
//!   reason that says so.
//! - Each row gives two samples: the question, which keeps its boxes, and a `grounding`
//!   item "Locate the {regions} in this chest X-ray." with the same boxes, so a model can be
//!   scored on the answer and on the location.
//! - Ids: `<file kind>/<row_id>/<q_id>` (`single_choice/row_0/1`); the grounding item adds
//!   `#grounding`.

use std::collections::HashMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::decode::{ImageError, read_dimensions, resolve_under};
use super::hf::{self, FieldError, JsonRow, Row};
use super::{DataError, Dataset, DatasetFormat, LoadOptions};
use crate::failure::{Failure, Stage};
use crate::geometry::{BoxError, BoxFrame};
use crate::sample::{
    GtBox, ImageRef, ImageSource, MAX_OPTIONS, Meta, MetaValue, QuestionKind, Sample, Task,
    letter_index, option_letter,
};

pub const FORMAT: DatasetFormat = DatasetFormat {
    name: "gemex",
    cluster: "image",
    summary: "GEMeX data-v1-subset: grounded chest X-ray VQA in four JSONL files; each question also becomes a grounding item",
    layout: "PATH: the folder with {open_ended,closed_ended,single_choice,multi_choice}_question.jsonl, or one of them\n\
             fields: question, type, answer, reason, visual_regions, visual_locations, image_path, q_id, row_id; choices in choice files\n\
             answers: \"Yes.\"/\"No.\" (closed), a letter (single_choice), letters (multi_choice), text (open, kept as written)\n\
             images: image_path under --image-root, your MIMIC-CXR-JPG files/ folder (the one holding p10/ ... p19/)\n\
             every row also gives a grounding item: \"Locate the {visual_regions} in this chest X-ray.\" with the same boxes",
    frame: "pixels:224x224 (visual_locations [x1, y1, x2, y2], clamped); override with --dataset-box-frame",
    ids: "<file kind>/<row_id>/<q_id>, e.g. single_choice/row_0/1; its grounding item is single_choice/row_0/1#grounding",
    load,
};

pub const DATASET_NAME: &str = "gemex";

/// The frame GEMeX boxes are declared in.
pub const DEFAULT_FRAME: BoxFrame = BoxFrame::PixelsOf {
    width: 224,
    height: 224,
};

/// The question files, in load order, with the kind each holds.
pub const FILES: [(&str, QuestionKind); 4] = [
    ("open_ended", QuestionKind::Open),
    ("closed_ended", QuestionKind::Closed),
    ("single_choice", QuestionKind::SingleChoice),
    ("multi_choice", QuestionKind::MultiChoice),
];

/// Suffix of the grounding item's id.
pub const GROUNDING_SUFFIX: &str = "#grounding";

#[derive(Debug, thiserror::Error)]
pub enum RowError {
    #[error("not a JSON object: {0}")]
    Json(String),
    #[error(transparent)]
    Field(#[from] FieldError),
    #[error("`{0}` must be a string or an integer")]
    IdPart(&'static str),
    #[error("duplicate id {id:?} (first seen on line {line})")]
    DuplicateId { id: String, line: usize },
    #[error("answer {answer} is not valid for a {kind} question: {why}")]
    BadAnswer {
        kind: QuestionKind,
        answer: String,
        why: &'static str,
    },
    #[error("answer letter {letter:?} is not among the {n} choices (A-{last})")]
    LetterOutOfRange {
        letter: String,
        n: usize,
        last: char,
    },
    #[error("{n} choices; a choice question needs 2 to {MAX_OPTIONS}")]
    ChoiceCount { n: usize },
    #[error("choice {index} {text:?} starts with letter {found}, expected {expected}")]
    ChoiceLetter {
        index: usize,
        text: String,
        found: char,
        expected: char,
    },
    #[error("`visual_locations` must be a list of [x1, y1, x2, y2] numbers")]
    Locations,
    #[error("`visual_locations` is empty; every GEMeX question is grounded")]
    NoLocations,
    #[error("{regions} visual_regions for {locations} visual_locations; they pair up one to one")]
    RegionCount { regions: usize, locations: usize },
    #[error("visual_locations[{index}]: {source}")]
    Box {
        index: usize,
        #[source]
        source: BoxError,
    },
    #[error(
        "image {path} not found under the image root {root}; pass --image-root to your MIMIC-CXR-JPG files/ folder"
    )]
    ImageMissing { path: String, root: PathBuf },
    #[error("image {path}: {source}")]
    Image {
        path: String,
        #[source]
        source: ImageError,
    },
}

impl RowError {
    fn stage(&self) -> Stage {
        match self {
            RowError::ImageMissing { .. } | RowError::Image { .. } => Stage::Decode,
            _ => Stage::Load,
        }
    }
}

fn load(path: &str, opts: &LoadOptions) -> Result<Dataset, DataError> {
    let path = PathBuf::from(path);
    let files = question_files(&path)?;
    let root = opts.image_root.clone().unwrap_or_else(|| {
        files
            .first()
            .and_then(|(f, _, _)| f.parent())
            .filter(|p| !p.as_os_str().is_empty())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."))
    });
    let frame = opts.box_frame.unwrap_or(DEFAULT_FRAME);
    let mut samples = Vec::new();
    let mut failures = Vec::new();
    for (file, prefix, kind) in &files {
        let label = hf::file_label(file);
        let f = std::fs::File::open(file).map_err(|source| DataError::Io {
            path: file.clone(),
            source,
        })?;
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
            let lineno = i + 1;
            let loc = format!("{label}:{lineno}");
            let line = match line {
                Ok(l) => l,
                // A line that is not UTF-8 was read and is skipped; any other read error
                // would repeat on every next read, so it ends the load.
                Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                    failures.push(Failure::new(Stage::Load, &e).at(loc));
                    continue;
                }
                Err(source) => {
                    return Err(DataError::Io {
                        path: file.clone(),
                        source,
                    });
                }
            };
            if line.trim().is_empty() {
                continue;
            }
            let parsed = parse_line(&line, prefix, *kind, &root, frame);
            let r = parsed.and_then(|pair| match seen.get(&pair[0].id) {
                Some(&first) => Err((
                    Some(pair[0].id.clone()),
                    RowError::DuplicateId {
                        id: pair[0].id.clone(),
                        line: first,
                    },
                )),
                None => Ok(pair),
            });
            match r {
                Ok(pair) => {
                    seen.insert(pair[0].id.clone(), lineno);
                    samples.extend(pair);
                }
                Err((id, e)) => {
                    let mut f = Failure::new(e.stage(), &e).at(loc);
                    f.id = id;
                    failures.push(f);
                }
            }
        }
    }
    Ok(Dataset {
        name: DATASET_NAME.to_string(),
        format: FORMAT.name,
        source_frame: frame,
        samples,
        failures,
    })
}

/// The question files a path names, each with its id prefix and kind.
fn question_files(path: &Path) -> Result<Vec<(PathBuf, &'static str, QuestionKind)>, DataError> {
    let expected = FILES
        .iter()
        .map(|(p, _)| format!("{p}_question.jsonl"))
        .collect::<Vec<_>>()
        .join(", ");
    if path.is_dir() {
        let found: Vec<_> = FILES
            .iter()
            .map(|(p, k)| (path.join(format!("{p}_question.jsonl")), *p, *k))
            .filter(|(f, _, _)| f.is_file())
            .collect();
        if found.is_empty() {
            return Err(DataError::Invalid {
                path: path.to_path_buf(),
                message: format!("no GEMeX question files here (expected {expected})"),
            });
        }
        return Ok(found);
    }
    std::fs::metadata(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let name = hf::file_label(path);
    FILES
        .iter()
        .find(|(p, _)| name == format!("{p}_question.jsonl"))
        .map(|(p, k)| vec![(path.to_path_buf(), *p, *k)])
        .ok_or_else(|| DataError::Invalid {
            path: path.to_path_buf(),
            message: format!("not a GEMeX question file (expected one of {expected})"),
        })
}

type RowResult = Result<[Sample; 2], (Option<String>, RowError)>;

/// One line: the question and its grounding item, or the reason (with the id when known).
fn parse_line(
    line: &str,
    prefix: &str,
    kind: QuestionKind,
    root: &Path,
    frame: BoxFrame,
) -> RowResult {
    let v: Value = serde_json::from_str(line).map_err(|e| (None, RowError::Json(e.to_string())))?;
    let obj = v
        .as_object()
        .ok_or_else(|| (None, RowError::Json("the line is not an object".into())))?;
    let id = match (id_part(obj, "row_id"), id_part(obj, "q_id")) {
        (Ok(r), Ok(q)) => format!("{prefix}/{r}/{q}"),
        (Err(e), _) | (_, Err(e)) => return Err((None, e)),
    };
    parse_row(obj, &id, kind, root, frame).map_err(|e| (Some(id), e))
}

fn id_part(obj: &serde_json::Map<String, Value>, field: &'static str) -> Result<String, RowError> {
    match obj.get(field) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(n.to_string()),
        None => Err(RowError::Field(FieldError::Missing {
            column: field.to_string(),
            expected: "a string or an integer",
        })),
        _ => Err(RowError::IdPart(field)),
    }
}

fn parse_row(
    obj: &serde_json::Map<String, Value>,
    id: &str,
    kind: QuestionKind,
    root: &Path,
    frame: BoxFrame,
) -> Result<[Sample; 2], RowError> {
    let row = JsonRow(obj);
    let question = hf::required_text(&row, "question")?;
    let regions = hf::required_text_list(&row, "visual_regions")?;
    let locations = locations(obj.get("visual_locations"))?;
    if locations.is_empty() {
        return Err(RowError::NoLocations);
    }
    if regions.len() != locations.len() {
        return Err(RowError::RegionCount {
            regions: regions.len(),
            locations: locations.len(),
        });
    }
    let task = task(obj, &row, kind)?;
    let image_path = hf::required_text(&row, "image_path")?;
    let file = resolve_under(root, &image_path).map_err(|source| match source {
        ImageError::Missing { .. } => RowError::ImageMissing {
            path: image_path.clone(),
            root: root.to_path_buf(),
        },
        source => RowError::Image {
            path: image_path.clone(),
            source,
        },
    })?;
    let image = ImageRef {
        key: image_path.trim_start_matches("./").replace('\\', "/"),
        source: ImageSource::File(file),
    };
    let size = match frame {
        BoxFrame::Pixels => Some(
            read_dimensions(&image.source, &image.key).map_err(|source| RowError::Image {
                path: image_path.clone(),
                source,
            })?,
        ),
        _ => None,
    };
    let boxes = locations
        .iter()
        .zip(&regions)
        .enumerate()
        .map(|(index, (raw, label))| {
            Ok(GtBox {
                image: 0,
                bbox: frame
                    .normalize_truth(*raw, size)
                    .map_err(|source| RowError::Box { index, source })?,
                label: Some(label.clone()),
            })
        })
        .collect::<Result<Vec<_>, RowError>>()?;

    let mut meta = Meta::new();
    meta.insert("modality".into(), MetaValue::from("X-ray"));
    meta.insert("question_file".into(), MetaValue::from(kind_file(kind)));
    if let Some(t) = hf::optional(row.text("type"))? {
        meta.insert("type".into(), MetaValue::Str(t));
    }
    if let Some(r) = hf::optional(row.text("reason"))? {
        meta.insert("reason".into(), MetaValue::Str(r));
    }
    let grounding = Sample {
        id: format!("{id}{GROUNDING_SUFFIX}"),
        images: vec![image.clone()],
        question: grounding_question(&regions),
        task: Task::Grounding { answer: None },
        boxes: boxes.clone(),
        meta: meta.clone(),
    };
    let sample = Sample {
        id: id.to_string(),
        images: vec![image],
        question,
        task,
        boxes,
        meta,
    };
    Ok([sample, grounding])
}

fn kind_file(kind: QuestionKind) -> &'static str {
    FILES
        .iter()
        .find(|(_, k)| *k == kind)
        .map(|(p, _)| *p)
        .unwrap_or("unknown")
}

/// "Locate the right lung and the cardiac region in this chest X-ray." Repeated regions are
/// named once.
pub fn grounding_question(regions: &[String]) -> String {
    let mut seen: Vec<&str> = Vec::new();
    for r in regions {
        let r = r.trim();
        if !r.is_empty() && !seen.iter().any(|n| n.eq_ignore_ascii_case(r)) {
            seen.push(r);
        }
    }
    let names: Vec<String> = seen.iter().map(|r| format!("the {r}")).collect();
    let list = match names.as_slice() {
        [] => "the findings".to_string(),
        [one] => one.clone(),
        [head @ .., last] => format!("{} and {last}", head.join(", ")),
    };
    format!("Locate {list} in this chest X-ray.")
}

fn locations(v: Option<&Value>) -> Result<Vec<[f64; 4]>, RowError> {
    let Some(v) = v else {
        return Err(RowError::Field(FieldError::Missing {
            column: "visual_locations".into(),
            expected: "a list of [x1, y1, x2, y2]",
        }));
    };
    let list = v.as_array().ok_or(RowError::Locations)?;
    list.iter()
        .map(|b| {
            let nums = b
                .as_array()
                .filter(|a| a.len() == 4)
                .ok_or(RowError::Locations)?;
            let mut out = [0.0; 4];
            for (o, n) in out.iter_mut().zip(nums) {
                *o = n.as_f64().ok_or(RowError::Locations)?;
            }
            Ok(out)
        })
        .collect()
}

fn task(
    obj: &serde_json::Map<String, Value>,
    row: &JsonRow<'_>,
    kind: QuestionKind,
) -> Result<Task, RowError> {
    let answer = obj.get("answer").unwrap_or(&Value::Null);
    let bad = |why: &'static str| RowError::BadAnswer {
        kind,
        answer: answer.to_string(),
        why,
    };
    match kind {
        QuestionKind::Open => {
            let a = hf::required_text(row, "answer")?;
            if a.trim().is_empty() {
                return Err(bad("empty"));
            }
            Ok(Task::Open { answer: a })
        }
        QuestionKind::Closed => {
            let a = hf::required_text(row, "answer")?;
            match a.trim().trim_end_matches('.').to_ascii_lowercase().as_str() {
                "yes" => Ok(Task::Closed { answer: true }),
                "no" => Ok(Task::Closed { answer: false }),
                _ => Err(bad("expected \"Yes.\" or \"No.\"")),
            }
        }
        QuestionKind::SingleChoice => {
            let options = choices(row)?;
            let a = hf::required_text(row, "answer")?;
            let answer = letter(&a, options.len())
                .map_err(|e| e.unwrap_or_else(|| bad("expected a letter")))?;
            Ok(Task::SingleChoice { options, answer })
        }
        QuestionKind::MultiChoice => {
            let options = choices(row)?;
            let list = answer
                .as_array()
                .ok_or_else(|| bad("expected a list of letters"))?;
            if list.is_empty() {
                return Err(bad("expected at least one letter"));
            }
            let mut idx = list
                .iter()
                .map(|l| {
                    let s = l
                        .as_str()
                        .ok_or_else(|| bad("expected a list of letters"))?;
                    letter(s, options.len())
                        .map_err(|e| e.unwrap_or_else(|| bad("expected a list of letters")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            idx.sort_unstable();
            idx.dedup();
            Ok(Task::MultiChoice {
                options,
                answer: idx,
            })
        }
        QuestionKind::Grounding => Ok(Task::Grounding { answer: None }),
    }
}

/// The option index of `C` (or `C.`); `Err(None)` when it is no letter at all.
fn letter(s: &str, n: usize) -> Result<usize, Option<RowError>> {
    let t = s.trim().trim_end_matches(['.', ':', ')']);
    let mut chars = t.chars();
    let (Some(c), None) = (chars.next(), chars.next()) else {
        return Err(None);
    };
    let i = letter_index(c).ok_or(None)?;
    if i >= n {
        return Err(Some(RowError::LetterOutOfRange {
            letter: s.to_string(),
            n,
            last: option_letter(n.saturating_sub(1)).unwrap_or('Z'),
        }));
    }
    Ok(i)
}

/// Option texts from `["A: text", "B: text"]`: the letter prefix, when present, must be the
/// option's own letter and is removed.
fn choices(row: &JsonRow<'_>) -> Result<Vec<String>, RowError> {
    let raw = hf::required_text_list(row, "choices")?;
    if !(2..=MAX_OPTIONS).contains(&raw.len()) {
        return Err(RowError::ChoiceCount { n: raw.len() });
    }
    raw.iter()
        .enumerate()
        .map(|(index, text)| {
            let expected = option_letter(index).unwrap_or('Z');
            let mut chars = text.trim_start().chars();
            match (chars.next(), chars.next()) {
                (Some(c), Some(':' | '.' | ')')) if c.is_ascii_uppercase() => {
                    if c != expected {
                        return Err(RowError::ChoiceLetter {
                            index,
                            text: text.clone(),
                            found: c,
                            expected,
                        });
                    }
                    Ok(chars.as_str().trim().to_string())
                }
                _ => Ok(text.trim().to_string()),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(v: Value) -> serde_json::Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn grounding_question_names_each_region_once() {
        let r = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            grounding_question(&r(&["bilateral lung"])),
            "Locate the bilateral lung in this chest X-ray."
        );
        assert_eq!(
            grounding_question(&r(&[
                "right lung",
                "cardiac region",
                "right lung",
                "left lung"
            ])),
            "Locate the right lung, the cardiac region and the left lung in this chest X-ray."
        );
    }

    #[test]
    fn choices_lose_their_own_letters_only() {
        let obj = row(serde_json::json!({"choices": ["A: Left lung", "B: Right lung"]}));
        assert_eq!(
            choices(&JsonRow(&obj)).unwrap(),
            ["Left lung", "Right lung"]
        );
        let obj = row(serde_json::json!({"choices": ["B: Left lung", "A: Right lung"]}));
        assert!(matches!(
            choices(&JsonRow(&obj)),
            Err(RowError::ChoiceLetter { .. })
        ));
    }

    #[test]
    fn closed_answers_accept_yes_and_no_with_a_period_only() {
        let t = |a: &str| {
            let obj = row(serde_json::json!({ "answer": a }));
            task(&obj, &JsonRow(&obj), QuestionKind::Closed)
        };
        assert_eq!(t("Yes.").unwrap(), Task::Closed { answer: true });
        assert_eq!(t("no").unwrap(), Task::Closed { answer: false });
        assert!(t("Possibly.").is_err());
    }

    #[test]
    fn letters_outside_the_choices_are_refused() {
        let obj = row(serde_json::json!({"choices": ["A: x", "B: y"], "answer": ["A", "C"]}));
        let e = task(&obj, &JsonRow(&obj), QuestionKind::MultiChoice).unwrap_err();
        assert!(matches!(e, RowError::LetterOutOfRange { n: 2, .. }), "{e}");
    }
}
