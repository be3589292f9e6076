//! Kvasir-VQA-x1 as published on HF (`SimulaMet/Kvasir-VQA-x1`): GI endoscopy, free text.
//!
//! ```text
//! $ medvqa inspect --dataset kvasir-vqa-x1:Kvasir-VQA-x1/data/test-*.parquet
//! ```
//!
//! - Input: parquet shards, JSONL files of the same rows, or a folder of either. Each row has
//!   `img_id`, `question` and `answer` (required), and `complexity` (integer),
//!   `question_class` (list of strings) and `original` (a JSON *string* of the atomic
//!   questions) that go to `meta` as written. Other fields are ignored.
//! - Images: an `image` column (HF `Image`: embedded bytes, or a path) when the file has one,
//!   else `images/<img_id>.jpg` under the image root (`--image-root`, default the data
//!   file's folder, or its parent for the HF `data/` folder). The image key is
//!   `images/<img_id>.jpg` either way, so all questions on one image share one decode.
//! - The ms-swift JSONL form that the Kvasir repository trains and evaluates on (also the
//!   augmented "transformed" track) is read too: `messages` (one user turn with `<image>`
//!   tags, one assistant turn) plus `images` (paths; absolute ones must lie under the image
//!   root). `img_id` is then the first image's file stem.
//! - Every question is `open`. Sample ids are `<img_id>/<hash>`, the hash being the first
//!   12 hex digits of SHA-256 of the question text, so parquet, JSONL and ms-swift copies of
//!   one row get one id. An exact repeat of a question on an image gets `~2`, `~3`, … in
//!   file order.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::decode::ImageError;
use super::hf::{self, CellImage, ChunkCache, FieldError, JsonRow, ParquetRow, Row};
use super::{DataError, Dataset, DatasetFormat, LoadOptions};
use crate::failure::{Failure, Stage};
use crate::geometry::BoxFrame;
use crate::sample::{ImageRef, ImageSource, Meta, MetaValue, Sample, Task};

pub const FORMAT: DatasetFormat = DatasetFormat {
    name: "kvasir-vqa-x1",
    cluster: "image",
    summary: "Kvasir-VQA-x1 (HF SimulaMet/Kvasir-VQA-x1): GI endoscopy free-text VQA, parquet or JSONL",
    layout: "PATH: a .parquet or .jsonl file, a folder of them (or its data/ subfolder), or DIR/test-*.parquet\n\
             columns: img_id, question, answer; complexity, question_class, original go to meta\n\
             images: an `image` column (HF Image {bytes, path}) if present, else ROOT/images/<img_id>.jpg\n\
             ROOT: --image-root, else the data file's folder (its parent for an HF data/ folder)\n\
             also ms-swift JSONL: {\"messages\": [user \"<image>Q\", assistant \"A\"], \"images\": [\"images/<img_id>.jpg\"]}\n\
             kind: open",
    frame: "none (no boxes)",
    ids: "<img_id>/<first 12 hex of SHA-256(question)>, e.g. clb0kvxwr92ng074yc6jndr8l/29587eea85e9; repeats get ~2, ~3",
    load,
};

/// The dataset name in seeds and reports.
pub const DATASET_NAME: &str = "kvasir-vqa-x1";

const COLUMNS: [&str; 7] = [
    "img_id",
    "question",
    "answer",
    "complexity",
    "question_class",
    "original",
    "image",
];

/// Why one row was refused.
#[derive(Debug, thiserror::Error)]
pub enum RowError {
    #[error(transparent)]
    Field(#[from] FieldError),
    #[error(transparent)]
    Cell(#[from] hf::CellError),
    #[error("empty {0}")]
    Empty(&'static str),
    #[error(
        "image {rel} not found under the image root {root}; put the Kvasir-VQA images there or pass --image-root"
    )]
    ImageMissing { rel: String, root: PathBuf },
    #[error("image {rel}: {source}")]
    Image {
        rel: String,
        #[source]
        source: ImageError,
    },
    #[error("not a JSON object: {0}")]
    Json(String),
    #[error("ms-swift row: {0}")]
    Swift(String),
}

impl RowError {
    fn stage(&self) -> Stage {
        match self {
            RowError::Image { .. }
            | RowError::ImageMissing { .. }
            | RowError::Cell(hf::CellError::Path { .. }) => Stage::Decode,
            _ => Stage::Load,
        }
    }
}

/// A parsed row before its id is made unique. The image is resolved last, so that a row
/// whose image is missing still fails under its id.
struct Parsed {
    img_id: String,
    image: Result<ImageRef, RowError>,
    question: String,
    answer: String,
    meta: Meta,
}

fn load(path: &str, opts: &LoadOptions) -> Result<Dataset, DataError> {
    let files = hf::data_files(path, &["parquet", "jsonl"])?;
    let mut paths = hf::Resolver::new(hf::image_root(&files, opts.image_root.as_deref()));
    let cache = ChunkCache::new(hf::CHUNK_CACHE_BYTES);
    let mut out = Collect::default();
    for file in &files {
        let label = hf::file_label(file);
        if file
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("jsonl"))
        {
            read_jsonl(file, &label, &mut paths, &mut out)?;
        } else {
            let lost = hf::read_parquet(file, &COLUMNS, &cache, |row| {
                let loc = format!("{label}#row {}", row.pos.number);
                out.push(parse_parquet(row, &mut paths), loc);
            })?;
            out.failures.extend(lost);
        }
    }
    Ok(Dataset {
        name: DATASET_NAME.to_string(),
        format: FORMAT.name,
        source_frame: BoxFrame::Normalized,
        samples: out.samples,
        failures: out.failures,
    })
}

#[derive(Default)]
struct Collect {
    samples: Vec<Sample>,
    failures: Vec<Failure>,
    seen: HashMap<String, usize>,
}

impl Collect {
    fn push(&mut self, r: Result<Parsed, RowError>, location: String) {
        match r {
            Ok(p) => {
                let base = format!("{}/{}", p.img_id, question_hash(&p.question));
                let n = self.seen.entry(base.clone()).or_insert(0);
                *n += 1;
                let id = if *n == 1 { base } else { format!("{base}~{n}") };
                let image = match p.image {
                    Ok(i) => i,
                    Err(e) => {
                        let f = Failure::new(e.stage(), &e).at(location).with_id(id);
                        self.failures.push(f);
                        return;
                    }
                };
                self.samples.push(Sample {
                    id,
                    images: vec![image],
                    question: p.question,
                    task: Task::Open { answer: p.answer },
                    boxes: Vec::new(),
                    meta: p.meta,
                });
            }
            Err(e) => self.failures.push(Failure::new(e.stage(), &e).at(location)),
        }
    }
}

/// The first 12 hex digits of SHA-256 of the question.
pub fn question_hash(question: &str) -> String {
    hex::encode(&Sha256::digest(question.as_bytes())[..6])
}

fn base_meta() -> Meta {
    let mut m = Meta::new();
    m.insert("modality".into(), MetaValue::from("endoscopy"));
    m
}

/// The fields shared by the parquet and JSON forms.
fn parse_fields(row: &dyn Row) -> Result<(String, String, String, Meta), RowError> {
    let img_id = hf::required_text(row, "img_id")?;
    let question = hf::required_text(row, "question")?;
    let answer = hf::required_text(row, "answer")?;
    if img_id.trim().is_empty() {
        return Err(RowError::Empty("img_id"));
    }
    if question.trim().is_empty() {
        return Err(RowError::Empty("question"));
    }
    let mut meta = base_meta();
    if let Some(c) = hf::optional(row.int("complexity"))? {
        meta.insert("complexity".into(), MetaValue::Int(c));
    }
    if let Some(l) = hf::optional(row.text_list("question_class"))? {
        meta.insert("question_class".into(), MetaValue::List(l));
    }
    if let Some(o) = hf::optional(row.text("original"))? {
        meta.insert("original".into(), MetaValue::Str(o));
    }
    Ok((img_id, question, answer, meta))
}

fn image_key(img_id: &str) -> String {
    format!("images/{img_id}.jpg")
}

fn file_image(paths: &mut hf::Resolver, img_id: &str) -> Result<ImageRef, RowError> {
    let rel = image_key(img_id);
    let path = paths.resolve(&rel).map_err(|source| match source {
        ImageError::Missing { .. } => RowError::ImageMissing {
            rel: rel.clone(),
            root: paths.root().to_path_buf(),
        },
        source => RowError::Image {
            rel: rel.clone(),
            source,
        },
    })?;
    Ok(ImageRef {
        key: rel,
        source: ImageSource::File(path),
    })
}

fn parse_parquet(row: &ParquetRow<'_>, paths: &mut hf::Resolver) -> Result<Parsed, RowError> {
    let (img_id, question, answer, meta) = parse_fields(row)?;
    let image = if row.has("image") {
        match hf::image_cell(row, "image", paths) {
            Ok(Some(CellImage::Bytes(source))) => Ok(ImageRef {
                key: image_key(&img_id),
                source,
            }),
            Ok(Some(CellImage::File { rel, path })) => Ok(ImageRef {
                key: rel,
                source: ImageSource::File(path),
            }),
            Ok(None) => file_image(paths, &img_id),
            Err(e) => Err(e.into()),
        }
    } else {
        file_image(paths, &img_id)
    };
    Ok(Parsed {
        img_id,
        image,
        question,
        answer,
        meta,
    })
}

fn read_jsonl(
    path: &Path,
    label: &str,
    paths: &mut hf::Resolver,
    out: &mut Collect,
) -> Result<(), DataError> {
    use std::io::BufRead;
    let file = std::fs::File::open(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let loc = format!("{label}:{}", i + 1);
        let line = match line {
            Ok(l) => l,
            // A line that is not UTF-8 was read and is skipped; any other read error (a
            // directory, a failing disk) would repeat on every next read, so it ends the load.
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                out.failures.push(Failure::new(Stage::Load, &e).at(loc));
                continue;
            }
            Err(source) => {
                return Err(DataError::Io {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        out.push(parse_json_line(&line, paths), loc);
    }
    Ok(())
}

fn parse_json_line(line: &str, paths: &mut hf::Resolver) -> Result<Parsed, RowError> {
    let v: Value = serde_json::from_str(line).map_err(|e| RowError::Json(e.to_string()))?;
    let obj = v
        .as_object()
        .ok_or_else(|| RowError::Json("the line is not an object".into()))?;
    if obj.contains_key("messages") {
        return parse_swift(obj, paths);
    }
    let row = JsonRow(obj);
    let (img_id, question, answer, meta) = parse_fields(&row)?;
    Ok(Parsed {
        image: file_image(paths, &img_id),
        img_id,
        question,
        answer,
        meta,
    })
}

/// One ms-swift row: `{"messages": [...], "images": [...]}`.
fn parse_swift(
    obj: &serde_json::Map<String, Value>,
    paths: &mut hf::Resolver,
) -> Result<Parsed, RowError> {
    let bad = |m: &str| RowError::Swift(m.to_string());
    let messages = obj
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("`messages` must be a list"))?;
    let mut user = Vec::new();
    let mut assistant = Vec::new();
    for m in messages {
        let role = m.get("role").and_then(Value::as_str).unwrap_or_default();
        let content = match m.get("content") {
            Some(Value::String(s)) => s.clone(),
            _ => return Err(bad("each message needs a string `content`")),
        };
        match role {
            "user" => user.push(content),
            "assistant" => assistant.push(content),
            "system" => {}
            other => return Err(RowError::Swift(format!("unknown role {other:?}"))),
        }
    }
    if user.len() != 1 || assistant.len() != 1 {
        return Err(RowError::Swift(format!(
            "expected one user and one assistant turn, found {} and {}",
            user.len(),
            assistant.len()
        )));
    }
    let question = user[0].replace("<image>", "").trim().to_string();
    let answer = assistant[0].trim().to_string();
    if question.is_empty() {
        return Err(RowError::Empty("question"));
    }
    let listed: Vec<&str> = match obj.get("images") {
        Some(Value::Array(a)) => a
            .iter()
            .map(Value::as_str)
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| bad("`images` must be a list of paths"))?,
        _ => return Err(bad("`images` must be a list of paths")),
    };
    let [path] = listed.as_slice() else {
        return Err(RowError::Swift(format!(
            "expected one image, found {}",
            listed.len()
        )));
    };
    let rel = under_root(paths.root(), path)?;
    let img_id = Path::new(&rel)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| rel.clone());
    let image = paths
        .resolve(&rel)
        .map(|file| ImageRef {
            key: rel.clone(),
            source: ImageSource::File(file),
        })
        .map_err(|source| RowError::Image { rel, source });
    Ok(Parsed {
        img_id,
        image,
        question,
        answer,
        meta: base_meta(),
    })
}

/// A path as written in an ms-swift row, made relative to the image root. The Kvasir
/// scripts write absolute paths; those are accepted only inside the root.
fn under_root(root: &Path, path: &str) -> Result<String, RowError> {
    let p = PathBuf::from(path);
    if !p.is_absolute() {
        return Ok(path.trim_start_matches("./").replace('\\', "/"));
    }
    let real_root = root.canonicalize().map_err(|e| RowError::Image {
        rel: path.to_string(),
        source: ImageError::Io {
            what: root.display().to_string(),
            message: e.to_string(),
        },
    })?;
    match p.strip_prefix(&real_root).or_else(|_| p.strip_prefix(root)) {
        Ok(rel) => Ok(rel.to_string_lossy().replace('\\', "/")),
        Err(_) => Err(RowError::Swift(format!(
            "absolute image path {path} is outside the image root {}; pass --image-root to a folder that holds it",
            root.display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn question_hash_is_stable() {
        // Pinned: predictions join on ids, so the hash may never change.
        assert_eq!(
            question_hash("What is shown?"),
            question_hash("What is shown?")
        );
        assert_eq!(question_hash("").len(), 12);
        assert_eq!(question_hash(""), "e3b0c44298fc");
    }

    #[test]
    fn swift_rows_need_one_turn_each() {
        let dir = tempfile::tempdir().unwrap();
        let line = r#"{"messages":[{"role":"user","content":"<image>Q?"},{"role":"assistant","content":"A"},{"role":"user","content":"again"}],"images":["images/x.jpg"]}"#;
        let mut paths = hf::Resolver::new(dir.path().to_path_buf());
        let err = parse_json_line(line, &mut paths).err().unwrap();
        assert!(
            err.to_string().contains("one user and one assistant"),
            "{err}"
        );
    }

    #[test]
    fn absolute_swift_paths_outside_the_root_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = under_root(dir.path(), "/elsewhere/images/x.jpg").unwrap_err();
        assert!(err.to_string().contains("outside the image root"), "{err}");
        let inside = dir.path().canonicalize().unwrap().join("images/x.jpg");
        assert_eq!(
            under_root(dir.path(), &inside.to_string_lossy()).unwrap(),
            "images/x.jpg"
        );
    }
}
