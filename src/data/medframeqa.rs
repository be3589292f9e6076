//! MedFrameQA as published on HF (`SuhaoYu1020/MedFrameQA`): 2-5 video frames per question.
//!
//! ```text
//! $ medvqa inspect --dataset medframeqa:MedFrameQA/data/test-*.parquet
//! ```
//!
//! - Input: parquet shards (a file, a folder or a `*` pattern). Columns: `question_id`,
//!   `question`, `options` (a list of texts; the letters A, B, … are implied by position),
//!   `correct_answer` (a letter), and `image_1 … image_5`, HF `Image` structs that are null
//!   where a question has fewer frames. `system`, `organ`, `modality`, `video_id` and
//!   `reasoning_chain` go to `meta` when present.
//! - Frames keep their column order exactly; a null followed by a later frame is refused,
//!   because questions refer to "the first image", "the second image", ….
//! - Embedded bytes stay in the file and are read when a frame is decoded; a struct with
//!   only a path resolves under `--image-root` (default: the parquet's folder).
//! - Every question is `single_choice`. Sample ids are `question_id` as written; image keys
//!   are `<question_id>/image_<k>` (or the relative path for path-only frames).

use std::collections::HashMap;

use super::hf::{self, CellImage, ChunkCache, FieldError, ParquetRow, Row};
use super::{DataError, Dataset, DatasetFormat, LoadOptions};
use crate::failure::{Failure, Stage};
use crate::geometry::BoxFrame;
use crate::sample::{
    ImageRef, ImageSource, MAX_OPTIONS, Meta, Sample, Task, letter_index, option_letter,
};

pub const FORMAT: DatasetFormat = DatasetFormat {
    name: "medframeqa",
    cluster: "meta.video_id",
    summary: "MedFrameQA (HF SuhaoYu1020/MedFrameQA): 2-5 frame single-choice questions from medical videos, parquet",
    layout: "PATH: a .parquet file, a folder of them (or its data/ subfolder), or DIR/test-*.parquet\n\
             columns: question_id, question, options (texts, letters implied), correct_answer (a letter)\n\
             image_1 ... image_5: HF Image {bytes, path}, null where unused; frame order kept\n\
             system, organ, modality, video_id, reasoning_chain go to meta when present\n\
             path-only images resolve under --image-root (default: the parquet's folder)\n\
             kind: single_choice",
    frame: "none (no boxes)",
    ids: "question_id as written",
    load,
};

pub const DATASET_NAME: &str = "medframeqa";

/// Frame columns read: `image_1` … `image_N`. The published set stops at 5.
pub const MAX_FRAMES: usize = 16;

const META_COLUMNS: [&str; 5] = ["system", "organ", "modality", "video_id", "reasoning_chain"];

#[derive(Debug, thiserror::Error)]
pub enum RowError {
    #[error(transparent)]
    Field(#[from] FieldError),
    #[error(transparent)]
    Cell(#[from] hf::CellError),
    #[error("empty question_id")]
    EmptyId,
    #[error("duplicate question_id {id:?} (first seen at row {first})")]
    DuplicateId { id: String, first: usize },
    #[error("{n} options; a choice question needs 2 to {MAX_OPTIONS} (A-Z)")]
    OptionCount { n: usize },
    #[error("correct_answer {0:?} is not a single letter")]
    NotALetter(String),
    #[error("correct_answer {letter:?} is not among the {n} options (A-{last})")]
    LetterOutOfRange {
        letter: String,
        n: usize,
        last: char,
    },
    #[error("image_1 is null; a question needs at least one frame")]
    NoFrames,
    #[error("image_{k} is set but image_{gap} is null; frames must be consecutive")]
    FrameGap { k: usize, gap: usize },
}

impl RowError {
    fn stage(&self) -> Stage {
        match self {
            RowError::Cell(hf::CellError::Path { .. }) => Stage::Decode,
            _ => Stage::Load,
        }
    }
}

fn columns() -> Vec<String> {
    let mut c: Vec<String> = ["question_id", "question", "options", "correct_answer"]
        .iter()
        .chain(META_COLUMNS.iter())
        .map(|s| s.to_string())
        .collect();
    c.extend((1..=MAX_FRAMES).map(|k| format!("image_{k}")));
    c
}

fn load(path: &str, opts: &LoadOptions) -> Result<Dataset, DataError> {
    let files = hf::data_files(path, &["parquet"])?;
    let mut paths = hf::Resolver::new(hf::image_root(&files, opts.image_root.as_deref()));
    let cache = ChunkCache::new(hf::CHUNK_CACHE_BYTES);
    let cols = columns();
    let cols: Vec<&str> = cols.iter().map(String::as_str).collect();
    let mut samples = Vec::new();
    let mut failures = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for file in &files {
        let label = hf::file_label(file);
        let lost = hf::read_parquet(file, &cols, &cache, |row| {
            let loc = format!("{label}#row {}", row.pos.number);
            let id_hint = row.text("question_id").ok().flatten();
            let r = parse_row(row, &mut paths).and_then(|s| match seen.get(&s.id) {
                Some(&first) => Err(RowError::DuplicateId { id: s.id, first }),
                None => Ok(s),
            });
            match r {
                Ok(s) => {
                    seen.insert(s.id.clone(), row.pos.number);
                    samples.push(s);
                }
                Err(e) => {
                    let mut f = Failure::new(e.stage(), &e).at(loc);
                    f.id = id_hint;
                    failures.push(f);
                }
            }
        })?;
        failures.extend(lost);
    }
    Ok(Dataset {
        name: DATASET_NAME.to_string(),
        format: FORMAT.name,
        source_frame: BoxFrame::Normalized,
        samples,
        failures,
    })
}

fn parse_row(row: &ParquetRow<'_>, paths: &mut hf::Resolver) -> Result<Sample, RowError> {
    let id = hf::required_text(row, "question_id")?;
    if id.trim().is_empty() {
        return Err(RowError::EmptyId);
    }
    let question = hf::required_text(row, "question")?;
    let options = hf::required_text_list(row, "options")?;
    let letter = hf::required_text(row, "correct_answer")?;
    if !(2..=MAX_OPTIONS).contains(&options.len()) {
        return Err(RowError::OptionCount { n: options.len() });
    }
    let answer = answer_index(&letter, options.len())?;

    let mut images = Vec::new();
    let mut first_gap = None;
    for k in 1..=MAX_FRAMES {
        let column = format!("image_{k}");
        if k > 1 && !row.has(&column) {
            break;
        }
        match hf::image_cell(row, &column, paths)? {
            None => {
                first_gap.get_or_insert(k);
            }
            Some(cell) => {
                if let Some(gap) = first_gap {
                    return Err(if gap == 1 {
                        RowError::NoFrames
                    } else {
                        RowError::FrameGap { k, gap }
                    });
                }
                images.push(match cell {
                    CellImage::Bytes(source) => ImageRef {
                        key: format!("{id}/{column}"),
                        source,
                    },
                    CellImage::File { rel, path } => ImageRef {
                        key: rel,
                        source: ImageSource::File(path),
                    },
                });
            }
        }
    }
    if images.is_empty() {
        return Err(RowError::NoFrames);
    }

    let mut meta = Meta::new();
    for c in META_COLUMNS {
        if let Some(v) = hf::optional(row.meta(c))? {
            meta.insert(c.to_string(), v);
        }
    }
    Ok(Sample {
        id,
        images,
        question,
        task: Task::SingleChoice { options, answer },
        boxes: Vec::new(),
        meta,
    })
}

/// The option index of a letter answer such as `C` (also `c`, ` C `, `C.`).
fn answer_index(letter: &str, n: usize) -> Result<usize, RowError> {
    let t = letter.trim().trim_end_matches(['.', ')', ':']);
    let mut chars = t.chars();
    let (Some(c), None) = (chars.next(), chars.next()) else {
        return Err(RowError::NotALetter(letter.to_string()));
    };
    let i = letter_index(c).ok_or_else(|| RowError::NotALetter(letter.to_string()))?;
    if i >= n {
        return Err(RowError::LetterOutOfRange {
            letter: letter.to_string(),
            n,
            last: option_letter(n - 1).unwrap_or('Z'),
        });
    }
    Ok(i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answer_letters_must_name_an_option() {
        assert_eq!(answer_index("C", 6).unwrap(), 2);
        assert_eq!(answer_index(" f. ", 6).unwrap(), 5);
        assert!(matches!(
            answer_index("G", 6),
            Err(RowError::LetterOutOfRange {
                n: 6,
                last: 'F',
                ..
            })
        ));
        assert!(matches!(
            answer_index("AB", 6),
            Err(RowError::NotALetter(_))
        ));
        assert!(matches!(answer_index("", 6), Err(RowError::NotALetter(_))));
    }
}
