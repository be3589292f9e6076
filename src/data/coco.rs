//! COCO detection JSON (`coco:PATH.json`), e.g. TBX11K: boxes become grounding and
//! presence questions (templates in [`super::import`]).
//!
//! ```text
//! $ medvqa inspect --dataset coco:TBX11K/annotations/json/TBX11K_train.json
//! ```
//!
//! - `images` (`id`, `file_name`, `width`, `height`), `annotations` (`image_id`,
//!   `category_id`, `bbox` = `[x, y, w, h]` in pixels of the listed image size) and
//!   `categories` (`id`, `name`). Other fields are ignored.
//! - `file_name` resolves under `--image-root`; without it, under the first of the JSON's
//!   folder, its parent and its grandparent, each as is or with `images/` or `imgs/`, that
//!   holds the first listed image (TBX11K keeps its JSON in `annotations/json/` and its
//!   images in `imgs/`).
//! - An image without annotations has no finding (COCO annotates exhaustively): it gets an
//!   `absent` question for every category.
//! - A bad image or annotation entry fails that image, with its index and reason.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use super::decode::{read_dimensions, resolve_under};
use super::import::{self, Annotated, ImportError};
use super::{DataError, Dataset, DatasetFormat, LoadOptions};
use crate::failure::Failure;
use crate::geometry::BoxFrame;
use crate::sample::{ImageRef, ImageSource};

pub const FORMAT: DatasetFormat = DatasetFormat {
    name: "coco",
    cluster: "image",
    summary: "COCO detection JSON (e.g. TBX11K) imported as grounding + presence questions",
    layout: "PATH: a COCO JSON with images (id, file_name, width, height), annotations (image_id, category_id, bbox [x, y, w, h]), categories (id, name)\n\
             images: file_name under --image-root, else the first of the JSON's folder, parent, grandparent (as is, images/ or imgs/) holding them\n\
             questions per (image, category with boxes): \"Locate the {label} in this image.\" (grounding) and \"Is there any {label} in this image?\" (yes)\n\
             images without annotations: \"Is there any {label} in this image?\" (no) for every category",
    frame: "pixels ([x, y, w, h] in pixels of the listed width x height); override with --dataset-box-frame",
    ids: "<file_name>/locate/<category>, <file_name>/present/<category>, e.g. tb/tb0005.png/locate/ActiveTuberculosis",
    load,
};

#[derive(Debug, Deserialize)]
struct Image {
    id: Value,
    file_name: String,
    #[serde(default)]
    width: Option<f64>,
    #[serde(default)]
    height: Option<f64>,
}

#[derive(Debug, Deserialize)]
struct Annotation {
    image_id: Value,
    category_id: Value,
    bbox: [f64; 4],
}

#[derive(Debug, Deserialize)]
struct Category {
    id: Value,
    name: String,
}

fn list<'a>(doc: &'a Value, key: &str) -> &'a [Value] {
    doc.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn load(path: &str, opts: &LoadOptions) -> Result<Dataset, DataError> {
    let path = PathBuf::from(path);
    let text = std::fs::read_to_string(&path).map_err(|source| DataError::Io {
        path: path.clone(),
        source,
    })?;
    let doc: Value = serde_json::from_str(&text).map_err(|e| DataError::Invalid {
        path: path.clone(),
        message: format!("not valid JSON: {e}"),
    })?;
    if !doc.get("images").is_some_and(Value::is_array) {
        return Err(DataError::Invalid {
            path,
            message: "not a COCO file: no `images` list".into(),
        });
    }
    let label = super::hf::file_label(&path);
    let frame = opts.box_frame.unwrap_or(BoxFrame::Pixels);
    let mut failures: Vec<Failure> = Vec::new();

    let mut categories: BTreeMap<String, String> = BTreeMap::new();
    let mut label_set: Vec<String> = Vec::new();
    for (i, v) in list(&doc, "categories").iter().enumerate() {
        match serde_json::from_value::<Category>(v.clone()) {
            Ok(c) => {
                if !label_set.contains(&c.name) {
                    label_set.push(c.name.clone());
                }
                categories.insert(c.id.to_string(), c.name);
            }
            Err(e) => failures.push(
                ImportError::Row(format!("bad category: {e}"))
                    .failure(format!("{label}: categories[{i}]")),
            ),
        }
    }

    let images: Vec<(usize, Result<Image, serde_json::Error>)> = list(&doc, "images")
        .iter()
        .map(|v| serde_json::from_value::<Image>(v.clone()))
        .enumerate()
        .collect();
    let root = match &opts.image_root {
        Some(r) => r.clone(),
        None => default_root(&path, images.iter().find_map(|(_, r)| r.as_ref().ok())),
    };

    // image id → (entry index, boxes or the first reason it failed)
    struct Entry {
        index: usize,
        image: Image,
        boxes: Vec<(String, [f64; 4])>,
        error: Option<ImportError>,
    }
    let mut entries: Vec<Entry> = Vec::new();
    let mut by_id: HashMap<String, usize> = HashMap::new();
    for (index, r) in images {
        match r {
            Ok(image) => {
                let key = image.id.to_string();
                if by_id.contains_key(&key) {
                    failures.push(
                        ImportError::Row(format!("duplicate image id {key}"))
                            .failure(format!("{label}: images[{index}]")),
                    );
                    continue;
                }
                by_id.insert(key, entries.len());
                entries.push(Entry {
                    index,
                    image,
                    boxes: Vec::new(),
                    error: None,
                });
            }
            Err(e) => failures.push(
                ImportError::Row(format!("bad image entry: {e}"))
                    .failure(format!("{label}: images[{index}]")),
            ),
        }
    }
    for (i, v) in list(&doc, "annotations").iter().enumerate() {
        let loc = format!("{label}: annotations[{i}]");
        let a = match serde_json::from_value::<Annotation>(v.clone()) {
            Ok(a) => a,
            Err(e) => {
                // Without a usable image_id the annotation cannot be tied to an image.
                let owner = v
                    .get("image_id")
                    .map(Value::to_string)
                    .and_then(|k| by_id.get(&k).copied());
                let err = ImportError::Row(format!("annotations[{i}] is not usable: {e}"));
                match owner {
                    Some(o) => {
                        entries[o].error.get_or_insert(err);
                    }
                    None => failures.push(err.failure(loc)),
                }
                continue;
            }
        };
        let Some(&o) = by_id.get(&a.image_id.to_string()) else {
            failures.push(
                ImportError::Row(format!("image_id {} is not in `images`", a.image_id))
                    .failure(loc),
            );
            continue;
        };
        match categories.get(&a.category_id.to_string()) {
            Some(name) => entries[o].boxes.push((name.clone(), a.bbox)),
            None => {
                entries[o].error.get_or_insert(ImportError::Row(format!(
                    "annotations[{i}]: category_id {} is not in `categories`",
                    a.category_id
                )));
            }
        }
    }

    let mut annotated = Vec::new();
    for e in entries {
        let loc = format!("{label}: images[{}]", e.index);
        if let Some(err) = e.error {
            failures.push(err.failure(loc).with_id(e.image.file_name));
            continue;
        }
        match annotate(&root, &e.image, &e.boxes, frame) {
            Ok(a) => annotated.push(a),
            Err(err) => failures.push(err.failure(loc).with_id(e.image.file_name)),
        }
    }
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "coco".into());
    Ok(Dataset {
        name,
        format: FORMAT.name,
        source_frame: frame,
        samples: import::questions(annotated, &label_set, None),
        failures,
    })
}

fn annotate(
    root: &Path,
    image: &Image,
    boxes: &[(String, [f64; 4])],
    frame: BoxFrame,
) -> Result<Annotated, ImportError> {
    let name = image.file_name.clone();
    let file = import::resolve(root, &name)?;
    let image_ref = ImageRef {
        key: name.trim_start_matches("./").replace('\\', "/"),
        source: ImageSource::File(file),
    };
    let size = match (image.width, image.height) {
        (Some(w), Some(h)) if w >= 1.0 && h >= 1.0 => Some((w.round() as u32, h.round() as u32)),
        _ if frame == BoxFrame::Pixels && !boxes.is_empty() => Some(
            read_dimensions(&image_ref.source, &image_ref.key).map_err(|source| {
                ImportError::Image {
                    name: name.clone(),
                    source,
                }
            })?,
        ),
        _ => None,
    };
    let mut out = Vec::with_capacity(boxes.len());
    for (index, (label, [x, y, w, h])) in boxes.iter().enumerate() {
        let b = frame
            .normalize_truth([*x, *y, x + w, y + h], size)
            .map_err(|source| ImportError::Box {
                index,
                label: label.clone(),
                source,
            })?;
        out.push((label.clone(), b));
    }
    Ok(Annotated {
        name,
        image: image_ref,
        no_finding: boxes.is_empty(),
        boxes: out,
    })
}

/// The first candidate folder that holds `first`; the JSON's folder when none does.
fn default_root(json: &Path, first: Option<&Image>) -> PathBuf {
    let dir = json
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let Some(first) = first else { return dir };
    let mut up = Some(dir.clone());
    for _ in 0..3 {
        let Some(base) = up else { break };
        for cand in [base.clone(), base.join("images"), base.join("imgs")] {
            if resolve_under(&cand, &first.file_name).is_ok() {
                return cand;
            }
        }
        up = base
            .parent()
            .map(|p| {
                if p.as_os_str().is_empty() {
                    PathBuf::from(".")
                } else {
                    p.to_path_buf()
                }
            })
            .filter(|p| *p != base);
    }
    dir
}
