//! Box imports: detection annotations (COCO, NIH, VinDr-CXR, Kvasir-SEG) turned into
//! templated grounding and presence questions. The format loaders read their files into
//! [`Annotated`] images; [`questions`] writes the questions, the same way for every format.
//!
//! Templates, with `{label}` the annotation's label made readable (`ActiveTuberculosis` →
//! `active tuberculosis`, `Pleural_Thickening` → `pleural thickening`, acronyms kept):
//!
//! | template  | kind        | question                               | answer | boxes                  | id                         |
//! |-----------|-------------|----------------------------------------|--------|------------------------|----------------------------|
//! | `locate`  | `grounding` | `Locate the {label} in this image.`    | —      | every box of the label | `<image>/locate/<label>`   |
//! | `present` | `closed`    | `Is there any {label} in this image?`  | yes    | every box of the label | `<image>/present/<label>`  |
//! | `absent`  | `closed`    | `Is there any {label} in this image?`  | no     | none                   | `<image>/present/<label>`  |
//!
//! - One `locate` and one `present` question per (image, label) with boxes.
//! - `absent` questions are asked only where the dataset says an image has no finding at all
//!   (a COCO image without annotations, a VinDr-CXR "No finding" image, a Kvasir-SEG entry
//!   with no boxes): one per label of the dataset's label set. A label that is merely missing
//!   on an image with other boxes is not asked about, because categories can overlap
//!   (TBX11K's active and pulmonary tuberculosis).
//! - `<image>` is the dataset's own image name (COCO `file_name`, NIH `Image Index`, VinDr
//!   `image_id`, Kvasir-SEG id) and `<label>` the label as written.
//! - `meta` carries `label` (as written), `template` and, where the format knows it,
//!   `modality`.

use std::path::{Path, PathBuf};

use crate::data::decode::{ImageError, resolve_under};
use crate::failure::{Failure, Stage};
use crate::geometry::BBox;
use crate::sample::{GtBox, ImageRef, Meta, MetaValue, Sample, Task};

/// The grounding question.
pub const LOCATE_TEMPLATE: &str = "Locate the {label} in this image.";
/// The presence question, answered yes or no.
pub const PRESENT_TEMPLATE: &str = "Is there any {label} in this image?";

/// One image with its boxes, as a format loader read them.
#[derive(Debug, Clone)]
pub struct Annotated {
    /// The dataset's own name for the image; ids start with it.
    pub name: String,
    pub image: ImageRef,
    /// `(label, box)` in file order.
    pub boxes: Vec<(String, BBox)>,
    /// The dataset states that this image has no finding, so every label is absent.
    pub no_finding: bool,
}

/// `{label}` filled in.
pub fn fill(template: &str, label: &str) -> String {
    template.replace("{label}", &readable(label))
}

/// A label as words: `_` to spaces, camel case split, lower case except acronyms.
pub fn readable(label: &str) -> String {
    let mut words: Vec<String> = Vec::new();
    for raw in label.split(['_', ' ']).filter(|w| !w.is_empty()) {
        let chars: Vec<char> = raw.chars().collect();
        let mut cur = String::new();
        for (i, &c) in chars.iter().enumerate() {
            let prev_lower = i > 0 && chars[i - 1].is_lowercase();
            if c.is_uppercase() && prev_lower && !cur.is_empty() {
                words.push(std::mem::take(&mut cur));
            }
            cur.push(c);
        }
        if !cur.is_empty() {
            words.push(cur);
        }
    }
    words
        .into_iter()
        .map(|w| {
            let acronym = w.chars().count() > 1 && w.chars().all(|c| !c.is_lowercase());
            if acronym { w } else { w.to_lowercase() }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The questions for `images`, in image order. `labels` is the dataset's label set, used
/// for `absent` questions; `modality` goes to `meta` when known.
pub fn questions(images: Vec<Annotated>, labels: &[String], modality: Option<&str>) -> Vec<Sample> {
    let mut out = Vec::new();
    for a in images {
        let meta = |label: &str, template: &str| {
            let mut m = Meta::new();
            if let Some(md) = modality {
                m.insert("modality".into(), MetaValue::from(md));
            }
            m.insert("label".into(), MetaValue::from(label));
            m.insert("template".into(), MetaValue::from(template));
            m
        };
        let mut order: Vec<&str> = Vec::new();
        for (l, _) in &a.boxes {
            if !order.contains(&l.as_str()) {
                order.push(l);
            }
        }
        for label in order {
            let boxes: Vec<GtBox> = a
                .boxes
                .iter()
                .filter(|(l, _)| l == label)
                .map(|(l, b)| GtBox {
                    image: 0,
                    bbox: *b,
                    label: Some(l.clone()),
                })
                .collect();
            out.push(Sample {
                id: format!("{}/locate/{label}", a.name),
                images: vec![a.image.clone()],
                question: fill(LOCATE_TEMPLATE, label),
                task: Task::Grounding { answer: None },
                boxes: boxes.clone(),
                meta: meta(label, "locate"),
            });
            out.push(Sample {
                id: format!("{}/present/{label}", a.name),
                images: vec![a.image.clone()],
                question: fill(PRESENT_TEMPLATE, label),
                task: Task::Closed { answer: true },
                boxes,
                meta: meta(label, "present"),
            });
        }
        if a.no_finding && a.boxes.is_empty() {
            for label in labels {
                out.push(Sample {
                    id: format!("{}/present/{label}", a.name),
                    images: vec![a.image.clone()],
                    question: fill(PRESENT_TEMPLATE, label),
                    task: Task::Closed { answer: false },
                    boxes: Vec::new(),
                    meta: meta(label, "absent"),
                });
            }
        }
    }
    out
}

/// Why an image's questions were not made.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(
        "image {name} not found under the image root {root}; pass --image-root to the folder that holds the images"
    )]
    ImageMissing { name: String, root: PathBuf },
    #[error("image {name}: {source}")]
    Image {
        name: String,
        #[source]
        source: ImageError,
    },
    #[error("{0}")]
    Row(String),
    #[error("box {index} ({label}): {source}")]
    Box {
        index: usize,
        label: String,
        #[source]
        source: crate::geometry::BoxError,
    },
}

impl ImportError {
    pub fn failure(&self, location: impl Into<String>) -> Failure {
        let stage = match self {
            ImportError::Image { .. } | ImportError::ImageMissing { .. } => Stage::Decode,
            _ => Stage::Load,
        };
        Failure::new(stage, self).at(location)
    }
}

/// Resolves an image path under `root` (see [`resolve_under`]); a missing file says how to
/// point at the images.
pub fn resolve(root: &Path, rel: &str) -> Result<PathBuf, ImportError> {
    resolve_under(root, rel).map_err(|source| match source {
        ImageError::Missing { .. } => ImportError::ImageMissing {
            name: rel.to_string(),
            root: root.to_path_buf(),
        },
        source => ImportError::Image {
            name: rel.to_string(),
            source,
        },
    })
}

/// Splits one CSV line into fields: commas separate, double quotes group, `""` inside
/// quotes is a quote.
pub fn csv_fields(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.trim_end_matches(['\r', '\n']).chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    fields.push(cur);
    fields
}

/// Parses a CSV number field, naming the column in the error.
pub fn csv_number(fields: &[String], index: usize, column: &str) -> Result<f64, ImportError> {
    let raw = fields.get(index).map(|s| s.trim()).unwrap_or("");
    raw.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| ImportError::Row(format!("column {column}: {raw:?} is not a number")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_read_as_words() {
        assert_eq!(readable("ActiveTuberculosis"), "active tuberculosis");
        assert_eq!(readable("Pleural_Thickening"), "pleural thickening");
        assert_eq!(readable("Aortic enlargement"), "aortic enlargement");
        assert_eq!(readable("ILD"), "ILD");
        assert_eq!(readable("Nodule/Mass"), "nodule/mass");
        assert_eq!(readable("polyp"), "polyp");
        assert_eq!(
            fill(LOCATE_TEMPLATE, "ObsoletePulmonaryTuberculosis"),
            "Locate the obsolete pulmonary tuberculosis in this image."
        );
    }

    #[test]
    fn csv_fields_handle_quotes_and_empty_fields() {
        assert_eq!(
            csv_fields("a,\"b,c\",,\"d\"\"e\"\r"),
            ["a", "b,c", "", "d\"e"]
        );
        assert_eq!(csv_fields(""), [""]);
    }
}
