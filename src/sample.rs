//! The data model every stage shares (docs/design.md §2).
//!
//! A [`Sample`] is one question about 1..N ordered images. What the question asks and what
//! counts as its answer live together in [`Task`], so that an option list without a choice
//! question, or a letter answer to an open question, cannot be represented at all.
//! Ground-truth boxes sit beside the task, because any kind may carry them: every GEMeX
//! question has `visual_locations`, whatever its kind.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::geometry::BBox;
use crate::pixels::Pixels;

/// The five question kinds, named as in the manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuestionKind {
    Open,
    Closed,
    SingleChoice,
    MultiChoice,
    Grounding,
}

impl QuestionKind {
    pub const ALL: [QuestionKind; 5] = [
        QuestionKind::Open,
        QuestionKind::Closed,
        QuestionKind::SingleChoice,
        QuestionKind::MultiChoice,
        QuestionKind::Grounding,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            QuestionKind::Open => "open",
            QuestionKind::Closed => "closed",
            QuestionKind::SingleChoice => "single_choice",
            QuestionKind::MultiChoice => "multi_choice",
            QuestionKind::Grounding => "grounding",
        }
    }
}

impl fmt::Display for QuestionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "unknown question kind {0:?} (expected one of: open, closed, single_choice, multi_choice, grounding)"
)]
pub struct UnknownKind(pub String);

impl FromStr for QuestionKind {
    type Err = UnknownKind;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        QuestionKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownKind(s.to_string()))
    }
}

/// The most options a choice question may have: letters A to Z.
pub const MAX_OPTIONS: usize = 26;

/// The letter of option `index` (0 → `A`). `None` past `Z`.
pub fn option_letter(index: usize) -> Option<char> {
    (index < MAX_OPTIONS).then(|| (b'A' + index as u8) as char)
}

/// The option index of a letter, case-insensitive (`'b'` → 1).
pub fn letter_index(letter: char) -> Option<usize> {
    let up = letter.to_ascii_uppercase();
    up.is_ascii_uppercase().then(|| (up as u8 - b'A') as usize)
}

/// What a question asks and its reference answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Task {
    /// Free text; scored with text metrics.
    Open { answer: String },
    /// Yes/no.
    Closed { answer: bool },
    /// One correct option, by index into `options`.
    SingleChoice { options: Vec<String>, answer: usize },
    /// A set of correct options, sorted and without repeats.
    MultiChoice {
        options: Vec<String>,
        answer: Vec<usize>,
    },
    /// Point to where: scored on the sample's boxes; an optional text answer too.
    Grounding { answer: Option<String> },
}

impl Task {
    pub fn kind(&self) -> QuestionKind {
        match self {
            Task::Open { .. } => QuestionKind::Open,
            Task::Closed { .. } => QuestionKind::Closed,
            Task::SingleChoice { .. } => QuestionKind::SingleChoice,
            Task::MultiChoice { .. } => QuestionKind::MultiChoice,
            Task::Grounding { .. } => QuestionKind::Grounding,
        }
    }

    /// Option texts; empty for kinds without options.
    pub fn options(&self) -> &[String] {
        match self {
            Task::SingleChoice { options, .. } | Task::MultiChoice { options, .. } => options,
            _ => &[],
        }
    }

    /// The reference answer as the manifest writes it: text, `yes`/`no`, a letter, or
    /// letters joined by `, `. `None` for a grounding question without a text answer.
    pub fn answer_text(&self) -> Option<String> {
        match self {
            Task::Open { answer } => Some(answer.clone()),
            Task::Closed { answer } => Some(if *answer { "yes" } else { "no" }.to_string()),
            Task::SingleChoice { answer, .. } => option_letter(*answer).map(String::from),
            Task::MultiChoice { answer, .. } => Some(
                answer
                    .iter()
                    .filter_map(|&i| option_letter(i))
                    .map(String::from)
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            Task::Grounding { answer } => answer.clone(),
        }
    }
}

/// A ground-truth box on one of the sample's images, in the canonical normalised frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GtBox {
    /// Index into [`Sample::images`].
    pub image: usize,
    #[serde(rename = "box")]
    pub bbox: BBox,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

/// A value in a sample's free-form `meta`: what the report can break results down by.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MetaValue {
    Int(i64),
    Float(f64),
    Str(String),
    List(Vec<String>),
}

impl fmt::Display for MetaValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetaValue::Int(v) => write!(f, "{v}"),
            MetaValue::Float(v) => write!(f, "{v}"),
            MetaValue::Str(v) => f.write_str(v),
            MetaValue::List(v) => f.write_str(&v.join(",")),
        }
    }
}

impl From<&str> for MetaValue {
    fn from(v: &str) -> Self {
        MetaValue::Str(v.to_string())
    }
}
impl From<String> for MetaValue {
    fn from(v: String) -> Self {
        MetaValue::Str(v)
    }
}
impl From<i64> for MetaValue {
    fn from(v: i64) -> Self {
        MetaValue::Int(v)
    }
}
impl From<f64> for MetaValue {
    fn from(v: f64) -> Self {
        MetaValue::Float(v)
    }
}

/// A sample's free-form facts by name, in name order (a [`VecMap`](crate::vecmap::VecMap):
/// one small allocation per sample, where a `BTreeMap` took a node of eleven slots).
pub type Meta = crate::vecmap::VecMap<String, MetaValue>;

/// Where an image's bytes come from. Decoding happens later, once per image, in the data
/// layer's image store.
#[derive(Debug, Clone)]
pub enum ImageSource {
    /// A file already checked to lie inside the dataset root.
    File(PathBuf),
    /// Encoded bytes held in memory, e.g. an HF `Image` struct from a parquet row.
    Bytes(Arc<[u8]>),
    /// Pixels made in memory, e.g. by the phantom generator.
    Pixels(Arc<Pixels>),
    /// Encoded bytes that stay where they are until asked for, e.g. an HF `Image` cell in a
    /// parquet file of many gigabytes: holding every image's bytes would make memory grow
    /// with the file.
    Deferred(Arc<dyn ImageBytes>),
    /// Frame `index` (0-based, in the stream's decode order) of a video, decoded when asked
    /// for (the data layer's video reader).
    Frame {
        video: Arc<dyn VideoFrames>,
        index: usize,
    },
}

/// A video's frames, decoded on demand. Implementations bound what they hold.
pub trait VideoFrames: Send + Sync + fmt::Debug {
    /// Frame `index`, refused over `max_pixels` before anything is decoded.
    fn frame(&self, index: usize, max_pixels: u64) -> Result<Pixels, ImageError>;
    /// `(width, height)` of every frame, from the stream's header.
    fn dimensions(&self) -> (u32, u32);
    /// The video file.
    fn path(&self) -> &std::path::Path;
    /// How many decoding passes over the file have run (one per run when all goes well).
    fn decode_passes(&self) -> u64;
}

/// Encoded image bytes read on demand. Implementations bound whatever they cache.
pub trait ImageBytes: Send + Sync + fmt::Debug {
    fn read(&self) -> Result<Arc<[u8]>, ImageError>;
}

/// Why an image cannot be read or decoded: a path that leaves the dataset root, a missing
/// or unreadable file, a format other than PNG, JPEG or WebP, a size over the pixel budget,
/// or bytes that do not decode. Part of the data model because [`ImageBytes`] returns it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ImageError {
    #[error("image path {path:?} is absolute; paths must be relative to the dataset root")]
    AbsolutePath { path: String },
    #[error("image path {path:?} contains '..'; paths must stay inside the dataset root")]
    ParentComponent { path: String },
    #[error("image path {path:?} is empty")]
    EmptyPath { path: String },
    #[error("image path {path:?} leads outside the dataset root {root} (through a symlink)")]
    EscapesRoot { path: String, root: PathBuf },
    #[error("image file {path} does not exist")]
    Missing { path: PathBuf },
    #[error("cannot read image {what}: {message}")]
    Io { what: String, message: String },
    #[error("image {what} is not PNG, JPEG, WebP or DICOM (sniffed: {sniffed})")]
    UnsupportedFormat { what: String, sniffed: String },
    #[error(
        "image {what} is {width}x{height} = {pixels} pixels, over the budget of {budget} (raise --max-pixels to allow it)"
    )]
    TooLarge {
        what: String,
        width: u32,
        height: u32,
        pixels: u64,
        budget: u64,
    },
    #[error("image {what} cannot be decoded: {message}")]
    Decode { what: String, message: String },
}

/// One image of a sample.
#[derive(Debug, Clone)]
pub struct ImageRef {
    /// Identifies the *image* within its dataset (not the question): the decode cache and
    /// the perturbation seed (docs/design.md §3) key on it. For files it is the path relative to
    /// the dataset root, with `/` separators.
    pub key: String,
    pub source: ImageSource,
}

impl ImageRef {
    /// What images of one origin share: the key, or for a video frame the video's part of
    /// it (`clip.mkv` for `clip.mkv#12`), so that questions on one video form one cluster.
    pub fn origin(&self) -> &str {
        match &self.source {
            ImageSource::Frame { .. } => self.key.rsplit_once('#').map_or(&self.key, |(v, _)| v),
            _ => &self.key,
        }
    }
}

/// One question about 1..N ordered images.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Stable and unique within its dataset; predictions and resume keys join on it.
    pub id: String,
    pub images: Vec<ImageRef>,
    pub question: String,
    pub task: Task,
    pub boxes: Vec<GtBox>,
    pub meta: Meta,
}

impl Sample {
    pub fn kind(&self) -> QuestionKind {
        self.task.kind()
    }

    /// The `modality` meta value, or `unknown`.
    pub fn modality(&self) -> String {
        self.meta
            .get("modality")
            .map(|m| m.to_string())
            .unwrap_or_else(|| "unknown".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_their_names_and_reject_others() {
        for k in QuestionKind::ALL {
            assert_eq!(k.as_str().parse::<QuestionKind>(), Ok(k));
        }
        assert_eq!(
            "multiple_choice".parse::<QuestionKind>(),
            Err(UnknownKind("multiple_choice".into()))
        );
    }

    #[test]
    fn letters_map_both_ways_and_stop_at_z() {
        assert_eq!(option_letter(0), Some('A'));
        assert_eq!(option_letter(25), Some('Z'));
        assert_eq!(option_letter(26), None);
        assert_eq!(letter_index('b'), Some(1));
        assert_eq!(letter_index('Z'), Some(25));
        assert_eq!(letter_index('1'), None);
    }

    #[test]
    fn answer_text_follows_the_manifest_form() {
        let multi = Task::MultiChoice {
            options: vec!["a".into(), "b".into(), "c".into()],
            answer: vec![0, 2],
        };
        assert_eq!(multi.answer_text().as_deref(), Some("A, C"));
        assert_eq!(
            Task::Closed { answer: false }.answer_text().as_deref(),
            Some("no")
        );
        assert_eq!(Task::Grounding { answer: None }.answer_text(), None);
    }
}
