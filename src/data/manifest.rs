//! The medvqa JSONL manifest (`jsonl:PATH`): medvqa's own documented format (docs/design.md §2).
//!
//! ```text
//! {"medvqa_manifest": 1, "box_frame": "normalized", "name": "my-set"}
//! {"id": "q1", "images": ["img/a.png"], "question": "Is there a nodule?", "kind": "closed", "options": [], "answer": "yes", "boxes": [{"image": 0, "box": [0.1, 0.2, 0.3, 0.4], "label": "nodule"}], "meta": {"modality": "cxr"}}
//! ```
//!
//! - One JSON object per line; blank lines are skipped.
//! - The optional first-line header declares the box frame (`normalized`, `pixels`,
//!   `pixels:WxH`, `grid:N`; default `normalized`) and the dataset name (default: the file
//!   stem), which seeds perturbations.
//! - Image paths are relative to the manifest's folder and may not leave it.
//! - Each bad line becomes a [`Failure`] with `file:line` and the reason; the rest load.
//! - Sample ids are the `id` field as written.
//!
//! [`write()`] is the inverse: it writes any [`Dataset`]'s samples with normalised boxes,
//! copying images that do not already live under the output folder.

use std::borrow::Cow;
use std::collections::HashSet;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::decode::{ImageError, read_dimensions, resolve_under};
use super::video::{FrameRule, Videos};
use super::{DataError, Dataset, DatasetFormat, LoadOptions};
use crate::failure::{Failure, Stage};
use crate::geometry::{BoxError, BoxFrame};
use crate::sample::{
    GtBox, ImageRef, ImageSource, MAX_OPTIONS, Meta, QuestionKind, Sample, Task, letter_index,
    option_letter,
};

pub const FORMAT: DatasetFormat = DatasetFormat {
    name: "jsonl",
    cluster: "image",
    summary: "medvqa JSONL manifest: one question per line, images relative to the file",
    layout: "DIR/manifest.jsonl   optional header line {\"medvqa_manifest\": 1, \"box_frame\": ..., \"name\": ...}\n\
             DIR/<any>/<image>    PNG, JPEG, WebP or DICOM, paths relative to DIR\n\
             or per line \"video\" and \"frames\" instead of \"images\" (see the videos format)\n\
             fields: id, images, question, kind, options, answer, boxes, meta (docs/datasets.md in the repository)",
    frame: "declared in the header: normalized (default), pixels, pixels:WxH or grid:N",
    ids: "the `id` field as written",
    load,
};

/// A folder of videos with a questions file (`videos:DIR`): the manifest at
/// `DIR/questions.jsonl`, whose lines name videos under `DIR`.
pub const VIDEOS_FORMAT: DatasetFormat = DatasetFormat {
    name: "videos",
    cluster: "image",
    summary: "a folder of video files with questions.jsonl: each question names a video and how to pick its frames",
    layout: "DIR/questions.jsonl   manifest lines with \"video\" and \"frames\" instead of \"images\"\n\
             DIR/<any>/<video>     any container and codec FFmpeg decodes (.mp4, .mkv, .avi, ...)\n\
             frames: {\"uniform\": N} | {\"fps\": F, \"max\": M} | {\"at\": [seconds]}; a default may sit in the header\n\
             boxes on a video name the frame: {\"frame\": <video frame index>, \"box\": [...]}",
    frame: "declared in the header: normalized (default), pixels, pixels:WxH or grid:N",
    ids: "the `id` field as written; image keys are <video>#<frame index>",
    load: load_videos,
};

fn load_videos(dir: &str, opts: &LoadOptions) -> Result<Dataset, DataError> {
    let dir_path = Path::new(dir);
    let questions = dir_path.join("questions.jsonl");
    if !questions.is_file() {
        return Err(DataError::Invalid {
            path: dir_path.to_path_buf(),
            message: "a videos folder needs its questions in questions.jsonl".to_string(),
        });
    }
    let mut ds = load(&questions.to_string_lossy(), opts)?;
    ds.format = VIDEOS_FORMAT.name;
    if ds.name == "questions" {
        ds.name = dir_path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "videos".to_string());
    }
    Ok(ds)
}

/// The version this build reads and writes.
pub const MANIFEST_VERSION: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    medvqa_manifest: u32,
    #[serde(default = "normalized")]
    box_frame: BoxFrame,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    /// The frame rule of video lines that give none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    frames: Option<FrameRule>,
}

fn normalized() -> BoxFrame {
    BoxFrame::Normalized
}

/// One line, as written.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Record {
    id: String,
    #[serde(default)]
    images: Vec<String>,
    /// A video instead of images, with the rule that picks its frames.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    video: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    frames: Option<FrameRule>,
    question: String,
    kind: String,
    #[serde(default)]
    options: Vec<String>,
    #[serde(default)]
    answer: Value,
    #[serde(default)]
    boxes: Vec<RawBox>,
    #[serde(default)]
    meta: Meta,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBox {
    /// The image's position in the sample (for a video sample, among its chosen frames).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    image: Option<usize>,
    /// For a video sample: the video frame index the box is on, one the rule chose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    frame: Option<usize>,
    #[serde(rename = "box")]
    bbox: [f64; 4],
    #[serde(default, skip_serializing_if = "Option::is_none")]
    label: Option<String>,
}

/// Why one manifest line was refused.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("not a valid manifest record: {0}")]
    Json(#[from] serde_json::Error),
    #[error("empty id")]
    EmptyId,
    #[error("duplicate id {0:?} (first seen on line {1})")]
    DuplicateId(String, usize),
    #[error("no images and no video; a sample needs one or the other")]
    NoImages,
    #[error("both images and a video; a sample has one or the other")]
    ImagesAndVideo,
    #[error("a video sample needs a \"frames\" rule (or a default \"frames\" in the header)")]
    NoFrameRule,
    #[error("\"frames\" is only for a video sample")]
    FramesWithoutVideo,
    #[error("video {video}: {why}")]
    FrameRule { video: String, why: String },
    #[error("box {index} names no image (\"image\": position, or \"frame\": video frame index)")]
    BoxWithoutImage { index: usize },
    #[error("box {index} gives both \"image\" and \"frame\"; give one")]
    BoxImageAndFrame { index: usize },
    #[error(
        "box {index} is on frame {frame}, which the rule does not choose (it chooses {chosen:?})"
    )]
    BoxFrameNotChosen {
        index: usize,
        frame: usize,
        chosen: Vec<usize>,
    },
    #[error("box {index} gives \"frame\", which is only for a video sample")]
    BoxFrameWithoutVideo { index: usize },
    #[error(transparent)]
    Kind(#[from] crate::sample::UnknownKind),
    #[error("{kind} question needs at least 2 options, has {n}")]
    TooFewOptions { kind: QuestionKind, n: usize },
    #[error("{n} options; at most {MAX_OPTIONS} (A-Z) are allowed")]
    TooManyOptions { n: usize },
    #[error("{kind} question must have no options, has {n}")]
    UnexpectedOptions { kind: QuestionKind, n: usize },
    #[error("answer {answer} is not valid for a {kind} question: {why}")]
    BadAnswer {
        kind: QuestionKind,
        answer: String,
        why: String,
    },
    #[error("answer letter {letter:?} is not among the {n} options (A-{last})")]
    LetterOutOfRange {
        letter: String,
        n: usize,
        last: char,
    },
    #[error("box {index} points at image {image}, but the sample has {n} image(s)")]
    BoxImageOutOfRange {
        index: usize,
        image: usize,
        n: usize,
    },
    #[error("box {index}: {source}")]
    Box {
        index: usize,
        #[source]
        source: BoxError,
    },
    #[error("image {index}: {source}")]
    Image {
        index: usize,
        #[source]
        source: ImageError,
    },
}

impl RecordError {
    fn stage(&self) -> Stage {
        match self {
            RecordError::Image { .. } => Stage::Decode,
            _ => Stage::Load,
        }
    }
}

fn load(path: &str, opts: &LoadOptions) -> Result<Dataset, DataError> {
    let path = PathBuf::from(path);
    let file = std::fs::File::open(&path).map_err(|source| DataError::Io {
        path: path.clone(),
        source,
    })?;
    let root = match &opts.image_root {
        Some(r) => r.clone(),
        None => path
            .parent()
            .map(Path::to_path_buf)
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from(".")),
    };
    let file_label = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    let mut frame = opts.box_frame.unwrap_or(BoxFrame::Normalized);
    let mut name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "manifest".to_string());

    let mut samples = Vec::new();
    let mut failures = Vec::new();
    let mut seen: std::collections::HashMap<String, usize> = Default::default();
    let mut first = true;
    let mut videos = Videos::default();
    let mut default_rule = None;
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let lineno = i + 1;
        let loc = format!("{file_label}:{lineno}");
        let line = match line {
            Ok(l) => l,
            // A line that is not UTF-8 was read and is skipped; any other read error (a
            // directory, a failing disk) would repeat on every next read, so it ends the load.
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                failures.push(Failure::new(Stage::Load, &e).at(loc));
                continue;
            }
            Err(source) => {
                return Err(DataError::Io {
                    path: path.clone(),
                    source,
                });
            }
        };
        // Editors on Windows start a UTF-8 file with a byte-order mark.
        let line = match line.strip_prefix('\u{feff}') {
            Some(rest) if lineno == 1 => rest.to_string(),
            _ => line,
        };
        if line.trim().is_empty() {
            continue;
        }
        if first && line.trim_start().starts_with('[') {
            return Err(DataError::Invalid {
                path: path.clone(),
                message: format!(
                    "line {lineno} opens a JSON array; a manifest is JSON Lines: write one JSON object per line"
                ),
            });
        }
        if std::mem::take(&mut first) && line.contains("\"medvqa_manifest\"") {
            let header: Header = serde_json::from_str(&line).map_err(|e| DataError::Invalid {
                path: path.clone(),
                message: format!("line 1: bad manifest header: {e}"),
            })?;
            if header.medvqa_manifest != MANIFEST_VERSION {
                return Err(DataError::Invalid {
                    path: path.clone(),
                    message: format!(
                        "manifest version {} is not supported (this medvqa reads version {MANIFEST_VERSION})",
                        header.medvqa_manifest
                    ),
                });
            }
            if opts.box_frame.is_none() {
                frame = header.box_frame;
            }
            if let Some(n) = header.name {
                name = n;
            }
            default_rule = header.frames;
            continue;
        }
        let id_hint = serde_json::from_str::<Value>(&line)
            .ok()
            .and_then(|v| v.get("id").and_then(Value::as_str).map(str::to_string));
        let ctx = LineContext {
            root: &root,
            frame,
            default_rule: default_rule.as_ref(),
        };
        match parse_line(&line, &ctx, &mut videos).and_then(|s| match seen.get(&s.id) {
            Some(&prev) => Err(RecordError::DuplicateId(s.id, prev)),
            None => Ok(s),
        }) {
            Ok(s) => {
                seen.insert(s.id.clone(), lineno);
                samples.push(s);
            }
            Err(e) => {
                let mut f = Failure::new(e.stage(), &e).at(loc);
                f.id = id_hint;
                failures.push(f);
            }
        }
    }
    Ok(Dataset {
        name,
        format: FORMAT.name,
        source_frame: frame,
        samples,
        failures,
    })
}

/// What a line is read against: the dataset root, the box frame, the header's default
/// frame rule for videos.
struct LineContext<'a> {
    root: &'a Path,
    frame: BoxFrame,
    default_rule: Option<&'a FrameRule>,
}

/// One manifest line as a sample: image paths resolved under `root` (never read here),
/// boxes read in `frame`. A video line's video is probed (`ffprobe`) for its frame count.
/// Public for the fuzz targets (`fuzz/`).
pub fn parse_record(line: &str, root: &Path, frame: BoxFrame) -> Result<Sample, RecordError> {
    let ctx = LineContext {
        root,
        frame,
        default_rule: None,
    };
    parse_line(line, &ctx, &mut Videos::default())
}

fn parse_line(
    line: &str,
    ctx: &LineContext<'_>,
    videos: &mut Videos,
) -> Result<Sample, RecordError> {
    let (root, frame) = (ctx.root, ctx.frame);
    let r: Record = serde_json::from_str(line)?;
    if r.id.trim().is_empty() {
        return Err(RecordError::EmptyId);
    }
    match (&r.video, r.images.is_empty()) {
        (None, true) => return Err(RecordError::NoImages),
        (Some(_), false) => return Err(RecordError::ImagesAndVideo),
        (None, false) if r.frames.is_some() => return Err(RecordError::FramesWithoutVideo),
        _ => {}
    }
    let kind: QuestionKind = r.kind.parse()?;
    let task = parse_task(kind, r.options, &r.answer)?;
    let mut images = Vec::with_capacity(r.images.len());
    let mut chosen = Vec::new();
    if let Some(rel) = &r.video {
        let rule = r
            .frames
            .as_ref()
            .or(ctx.default_rule)
            .ok_or(RecordError::NoFrameRule)?;
        let image = |source| RecordError::Image { index: 0, source };
        let file = resolve_under(root, rel).map_err(image)?;
        let key = rel.trim_start_matches("./").replace('\\', "/");
        let video = videos.get(&file, &key).map_err(image)?;
        let p = video.probe();
        chosen = rule
            .indices(p.frames, p.rate)
            .map_err(|why| RecordError::FrameRule {
                video: key.clone(),
                why,
            })?;
        video.want(&chosen);
        for &index in &chosen {
            images.push(ImageRef {
                key: video.frame_key(index),
                source: ImageSource::Frame {
                    video: video.clone(),
                    index,
                },
            });
        }
    }
    for (index, rel) in r.images.iter().enumerate() {
        let file =
            resolve_under(root, rel).map_err(|source| RecordError::Image { index, source })?;
        images.push(ImageRef {
            key: rel.trim_start_matches("./").replace('\\', "/"),
            source: ImageSource::File(file),
        });
    }
    let mut boxes = Vec::with_capacity(r.boxes.len());
    for (index, b) in r.boxes.into_iter().enumerate() {
        let position = match (b.image, b.frame) {
            (Some(_), Some(_)) => return Err(RecordError::BoxImageAndFrame { index }),
            (None, None) => return Err(RecordError::BoxWithoutImage { index }),
            (Some(i), None) => i,
            (None, Some(_)) if r.video.is_none() => {
                return Err(RecordError::BoxFrameWithoutVideo { index });
            }
            (None, Some(f)) => chosen.iter().position(|&c| c == f).ok_or_else(|| {
                RecordError::BoxFrameNotChosen {
                    index,
                    frame: f,
                    chosen: chosen.clone(),
                }
            })?,
        };
        let img = images
            .get(position)
            .ok_or(RecordError::BoxImageOutOfRange {
                index,
                image: position,
                n: images.len(),
            })?;
        let size = match frame {
            BoxFrame::Pixels => Some(read_dimensions(&img.source, &img.key).map_err(|source| {
                RecordError::Image {
                    index: position,
                    source,
                }
            })?),
            _ => None,
        };
        let bbox = frame
            .normalize_truth(b.bbox, size)
            .map_err(|source| RecordError::Box { index, source })?;
        boxes.push(GtBox {
            image: position,
            bbox,
            label: b.label,
        });
    }
    Ok(Sample {
        id: r.id,
        images,
        question: r.question,
        task,
        boxes,
        meta: r.meta,
    })
}

fn parse_task(
    kind: QuestionKind,
    options: Vec<String>,
    answer: &Value,
) -> Result<Task, RecordError> {
    let bad = |why: &str| RecordError::BadAnswer {
        kind,
        answer: answer.to_string(),
        why: why.to_string(),
    };
    let choice = matches!(kind, QuestionKind::SingleChoice | QuestionKind::MultiChoice);
    if choice && options.len() < 2 {
        return Err(RecordError::TooFewOptions {
            kind,
            n: options.len(),
        });
    }
    if options.len() > MAX_OPTIONS {
        return Err(RecordError::TooManyOptions { n: options.len() });
    }
    if !choice && !options.is_empty() {
        return Err(RecordError::UnexpectedOptions {
            kind,
            n: options.len(),
        });
    }
    let letter = |v: &Value| -> Result<usize, RecordError> {
        let s = v
            .as_str()
            .ok_or_else(|| bad("expected a letter string"))?
            .trim();
        let mut chars = s.chars();
        let (Some(c), None) = (chars.next(), chars.next()) else {
            return Err(bad("expected a single letter"));
        };
        let idx = letter_index(c).ok_or_else(|| bad("expected a letter A-Z"))?;
        if idx >= options.len() {
            return Err(RecordError::LetterOutOfRange {
                letter: s.to_string(),
                n: options.len(),
                last: option_letter(options.len() - 1).unwrap_or('Z'),
            });
        }
        Ok(idx)
    };
    Ok(match kind {
        QuestionKind::Open => Task::Open {
            answer: answer
                .as_str()
                .ok_or_else(|| bad("expected a string"))?
                .to_string(),
        },
        QuestionKind::Closed => Task::Closed {
            answer: match answer {
                Value::Bool(b) => *b,
                Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
                    "yes" => true,
                    "no" => false,
                    _ => return Err(bad("expected \"yes\" or \"no\"")),
                },
                _ => return Err(bad("expected \"yes\" or \"no\"")),
            },
        },
        QuestionKind::SingleChoice => {
            let answer = letter(answer)?;
            Task::SingleChoice { options, answer }
        }
        QuestionKind::MultiChoice => {
            let list = answer
                .as_array()
                .ok_or_else(|| bad("expected a list of letters"))?;
            if list.is_empty() {
                return Err(bad("expected at least one letter"));
            }
            let mut idx = list.iter().map(&letter).collect::<Result<Vec<_>, _>>()?;
            idx.sort_unstable();
            idx.dedup();
            Task::MultiChoice {
                options,
                answer: idx,
            }
        }
        QuestionKind::Grounding => Task::Grounding {
            answer: match answer {
                Value::Null => None,
                Value::String(s) => Some(s.clone()),
                _ => return Err(bad("expected a string or null")),
            },
        },
    })
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("cannot write {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot encode image {key}")]
    Encode {
        key: String,
        #[source]
        source: image::ImageError,
    },
    #[error("cannot read image {key}")]
    Read {
        key: String,
        #[source]
        source: ImageError,
    },
    #[error("cannot serialise sample {id}")]
    Json {
        id: String,
        #[source]
        source: serde_json::Error,
    },
}

/// Writes `samples` as a manifest at `path`, boxes in the normalised frame.
///
/// Image files already under `path`'s folder are referenced in place. Anything else (files
/// elsewhere, bytes from parquet, generated pixels) is written under `images_dir` (relative
/// to the manifest's folder; empty for the folder itself) at its image key, so the result is
/// self-contained and loads with `jsonl:`, and file keys equal the in-memory keys.
pub fn write(
    path: &Path,
    name: &str,
    samples: &[Sample],
    images_dir: &str,
) -> Result<(), WriteError> {
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| WriteError::Io { path: p, source }
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let real_dir = dir.canonicalize().map_err(io(&dir))?;
    let prefix = match images_dir.trim_matches('/') {
        "" => String::new(),
        d => format!("{}/", safe_key(d)),
    };
    let mut written: HashSet<String> = HashSet::new();
    let mut out_bytes = BytesOut {
        dir: &dir,
        prefix: &prefix,
        by_key: Default::default(),
    };

    let file = std::fs::File::create(path).map_err(io(path))?;
    let mut out = BufWriter::new(file);
    let header = Header {
        medvqa_manifest: MANIFEST_VERSION,
        box_frame: BoxFrame::Normalized,
        name: Some(name.to_string()),
        frames: None,
    };
    writeln!(out, "{}", to_line("header", &header)?).map_err(io(path))?;
    for s in samples {
        let mut images = Vec::with_capacity(s.images.len());
        for img in &s.images {
            let rel = match &img.source {
                ImageSource::File(f) => match f.strip_prefix(&real_dir) {
                    Ok(r) => r.to_string_lossy().replace('\\', "/"),
                    Err(_) => {
                        let rel = format!("{prefix}{}", safe_key(&img.key));
                        if written.insert(rel.clone()) {
                            let dest = dir.join(&rel);
                            create_parent(&dest)?;
                            std::fs::copy(f, &dest).map_err(io(&dest))?;
                        }
                        rel
                    }
                },
                ImageSource::Bytes(b) => {
                    let b = b.clone();
                    out_bytes.write(&img.key, || Ok(b))?
                }
                // Read here, one image at a time, and dropped once written.
                ImageSource::Deferred(d) => out_bytes.write(&img.key, || d.read())?,
                ImageSource::Pixels(p) => {
                    let rel = with_ext(&format!("{prefix}{}", safe_key(&img.key)), "png");
                    write_png(&dir, &rel, &img.key, &mut written, || {
                        Ok(Cow::Borrowed(&**p))
                    })?;
                    rel
                }
                // A video frame becomes a PNG of its pixels: `clip.mkv#3` → `clip.mkv_f3.png`.
                ImageSource::Frame { video, index } => {
                    let rel = with_ext(&format!("{prefix}{}", safe_key(&img.key)), "png");
                    write_png(&dir, &rel, &img.key, &mut written, || {
                        video.frame(*index, u64::MAX).map(Cow::Owned)
                    })?;
                    rel
                }
            };
            images.push(rel);
        }
        let rec = record_of(s, images);
        writeln!(out, "{}", to_line(&s.id, &rec)?).map_err(io(path))?;
    }
    out.flush().map_err(io(path))?;
    Ok(())
}

/// Writes pixels as a PNG at `rel` under `dir`, once per path.
fn write_png<'p>(
    dir: &Path,
    rel: &str,
    key: &str,
    written: &mut HashSet<String>,
    pixels: impl FnOnce() -> Result<Cow<'p, crate::pixels::Pixels>, ImageError>,
) -> Result<(), WriteError> {
    if written.insert(rel.to_string()) {
        let dest = dir.join(rel);
        create_parent(&dest)?;
        let p = pixels().map_err(|source| WriteError::Read {
            key: key.to_string(),
            source,
        })?;
        let bytes = p.encode_png().map_err(|source| WriteError::Encode {
            key: key.to_string(),
            source,
        })?;
        std::fs::write(&dest, bytes).map_err(|source| WriteError::Io { path: dest, source })?;
    }
    Ok(())
}

/// Writes encoded bytes at their key with the extension their format has, once per key.
struct BytesOut<'a> {
    dir: &'a Path,
    prefix: &'a str,
    by_key: std::collections::HashMap<String, String>,
}

impl BytesOut<'_> {
    fn write(
        &mut self,
        key: &str,
        bytes: impl FnOnce() -> Result<Arc<[u8]>, ImageError>,
    ) -> Result<String, WriteError> {
        if let Some(rel) = self.by_key.get(key) {
            return Ok(rel.clone());
        }
        let b = bytes().map_err(|source| WriteError::Read {
            key: key.to_string(),
            source,
        })?;
        let ext = image::guess_format(&b)
            .ok()
            .and_then(|f| f.extensions_str().first().copied())
            .unwrap_or("bin");
        let rel = with_ext(&format!("{}{}", self.prefix, safe_key(key)), ext);
        let dest = self.dir.join(&rel);
        create_parent(&dest)?;
        std::fs::write(&dest, &b).map_err(|source| WriteError::Io {
            path: dest.clone(),
            source,
        })?;
        self.by_key.insert(key.to_string(), rel.clone());
        Ok(rel)
    }
}

/// `key` with extension `ext`, unless it already ends with it.
fn with_ext(key: &str, ext: &str) -> String {
    if Path::new(key)
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case(ext))
    {
        key.to_string()
    } else {
        format!("{key}.{ext}")
    }
}

fn create_parent(dest: &Path) -> Result<(), WriteError> {
    if let Some(p) = dest.parent() {
        std::fs::create_dir_all(p).map_err(|source| WriteError::Io {
            path: p.to_path_buf(),
            source,
        })?;
    }
    Ok(())
}

/// An image key made safe as a relative file path: no `..`, no leading `/`, and a video
/// frame's `#` as `_f` (`clip.mkv#3` → `clip.mkv_f3`), so the path also works as a URL.
pub(crate) fn safe_key(key: &str) -> String {
    key.replace('#', "_f")
        .split(['/', '\\'])
        .filter(|c| !c.is_empty() && *c != "." && *c != "..")
        .collect::<Vec<_>>()
        .join("/")
}

fn record_of(s: &Sample, images: Vec<String>) -> Record {
    let answer = match &s.task {
        Task::Open { answer } => Value::String(answer.clone()),
        Task::Closed { answer } => Value::String(if *answer { "yes" } else { "no" }.into()),
        Task::SingleChoice { answer, .. } => {
            Value::String(option_letter(*answer).map(String::from).unwrap_or_default())
        }
        Task::MultiChoice { answer, .. } => Value::Array(
            answer
                .iter()
                .filter_map(|&i| option_letter(i))
                .map(|c| Value::String(c.to_string()))
                .collect(),
        ),
        Task::Grounding { answer } => answer.clone().map(Value::String).unwrap_or(Value::Null),
    };
    Record {
        id: s.id.clone(),
        images,
        video: None,
        frames: None,
        question: s.question.clone(),
        kind: s.kind().as_str().to_string(),
        options: s.task.options().to_vec(),
        answer,
        boxes: s
            .boxes
            .iter()
            .map(|b| RawBox {
                image: Some(b.image),
                frame: None,
                bbox: b.bbox.to_array(),
                label: b.label.clone(),
            })
            .collect(),
        meta: s.meta.clone(),
    }
}

/// A sample whose images are generated in memory, for writers that build datasets (phantom
/// sets, perturbed copies) and hand them to [`write()`].
pub fn pixels_ref(key: impl Into<String>, pixels: crate::pixels::Pixels) -> ImageRef {
    ImageRef {
        key: key.into(),
        source: ImageSource::Pixels(Arc::new(pixels)),
    }
}

fn to_line<T: Serialize>(id: &str, v: &T) -> Result<String, WriteError> {
    serde_json::to_string(v).map_err(|source| WriteError::Json {
        id: id.to_string(),
        source,
    })
}
