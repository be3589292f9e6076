//! Kvasir-SEG `kavsir_bboxes.json` (`kvasir-seg:PATH.json`): polyp boxes become grounding
//! and presence questions (templates in [`super::import`]).
//!
//! ```text
//! $ medvqa inspect --dataset kvasir-seg:Kvasir-SEG/kavsir_bboxes.json
//! ```
//!
//! - `{"<id>": {"height": H, "width": W, "bbox": [{"label": "polyp", "xmin", "ymin",
//!   "xmax", "ymax"}]}}`, corners in pixels of the W×H image.
//! - Images are `images/<id>.jpg` under `--image-root` (default: the JSON's folder, which
//!   in the Kvasir-SEG release holds `images/` and `masks/`).
//! - Entries load in id order. An entry with an empty `bbox` list has no polyp and gets an
//!   `absent` question for every label of the file (`polyp` when none is named).

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use super::import::{self, Annotated, ImportError};
use super::{DataError, Dataset, DatasetFormat, LoadOptions};
use crate::failure::Failure;
use crate::geometry::BoxFrame;
use crate::sample::{ImageRef, ImageSource};

pub const FORMAT: DatasetFormat = DatasetFormat {
    name: "kvasir-seg",
    cluster: "image",
    summary: "Kvasir-SEG kavsir_bboxes.json (GI polyps) imported as grounding + presence questions",
    layout: "PATH: kavsir_bboxes.json: {id: {height, width, bbox: [{label, xmin, ymin, xmax, ymax}]}}\n\
             images: ROOT/images/<id>.jpg, ROOT = --image-root or the JSON's folder\n\
             questions per (image, label): \"Locate the {label} in this image.\" (grounding) and \"Is there any {label} in this image?\" (yes)\n\
             entries with an empty bbox list: \"Is there any {label} in this image?\" (no)",
    frame: "pixels (corners in pixels of the listed width x height); override with --dataset-box-frame",
    ids: "<id>/locate/<label>, <id>/present/<label>, e.g. cju0qkwl35piu0993l0dewei2/locate/polyp",
    load,
};

/// The label when a file names none.
pub const DEFAULT_LABEL: &str = "polyp";

#[derive(Debug, Deserialize)]
struct Entry {
    height: f64,
    width: f64,
    #[serde(default)]
    bbox: Vec<RawBox>,
}

#[derive(Debug, Deserialize)]
struct RawBox {
    #[serde(default)]
    label: Option<String>,
    xmin: f64,
    ymin: f64,
    xmax: f64,
    ymax: f64,
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
    let Some(map) = doc.as_object() else {
        return Err(DataError::Invalid {
            path,
            message: "not kavsir_bboxes.json: expected an object keyed by image id".into(),
        });
    };
    let label = super::hf::file_label(&path);
    let root = opts.image_root.clone().unwrap_or_else(|| {
        path.parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."))
    });
    let frame = opts.box_frame.unwrap_or(BoxFrame::Pixels);
    let mut failures: Vec<Failure> = Vec::new();
    let mut annotated = Vec::new();
    let mut label_set: Vec<String> = Vec::new();
    let mut ids: Vec<&String> = map.keys().collect();
    ids.sort();
    for id in ids {
        let loc = format!("{label}: {id}");
        let r = serde_json::from_value::<Entry>(map[id].clone())
            .map_err(|e| ImportError::Row(format!("bad entry: {e}")))
            .and_then(|e| annotate(&root, id, &e, frame));
        match r {
            Ok(a) => {
                for (l, _) in &a.boxes {
                    if !label_set.contains(l) {
                        label_set.push(l.clone());
                    }
                }
                annotated.push(a);
            }
            Err(e) => failures.push(e.failure(loc).with_id(id.clone())),
        }
    }
    if label_set.is_empty() {
        label_set.push(DEFAULT_LABEL.to_string());
    }
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "kvasir-seg".into());
    Ok(Dataset {
        name,
        format: FORMAT.name,
        source_frame: frame,
        samples: import::questions(annotated, &label_set, Some("endoscopy")),
        failures,
    })
}

fn annotate(root: &Path, id: &str, e: &Entry, frame: BoxFrame) -> Result<Annotated, ImportError> {
    let rel = format!("images/{id}.jpg");
    let file = import::resolve(root, &rel)?;
    if e.width < 1.0 || e.height < 1.0 {
        return Err(ImportError::Row(format!(
            "image size {}x{} is not positive",
            e.width, e.height
        )));
    }
    let size = Some((e.width.round() as u32, e.height.round() as u32));
    let boxes = e
        .bbox
        .iter()
        .enumerate()
        .map(|(index, b)| {
            let label = b
                .label
                .clone()
                .filter(|l| !l.trim().is_empty())
                .unwrap_or_else(|| DEFAULT_LABEL.to_string());
            frame
                .normalize_truth([b.xmin, b.ymin, b.xmax, b.ymax], size)
                .map(|bb| (label.clone(), bb))
                .map_err(|source| ImportError::Box {
                    index,
                    label,
                    source,
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Annotated {
        name: id.to_string(),
        image: ImageRef {
            key: rel,
            source: ImageSource::File(file),
        },
        no_finding: boxes.is_empty(),
        boxes,
    })
}
