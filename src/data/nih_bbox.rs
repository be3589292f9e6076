//! NIH ChestX-ray14 `BBox_List_2017.csv` (`nih-bbox:PATH.csv`): the 984 boxes drawn on 880
//! images become grounding and presence questions (templates in [`super::import`]).
//!
//! ```text
//! $ medvqa inspect --dataset nih-bbox:BBox_List_2017.csv --image-root ChestX-ray14/images
//! ```
//!
//! - Columns `Image Index, Finding Label, Bbox [x, y, w, h]` (the header's trailing empty
//!   columns are ignored). Boxes are `[x, y, w, h]` on the 1024×1024 frame of the original
//!   images (`pixels:1024x1024`), whatever the resolution of the copy being evaluated.
//! - `Image Index` resolves under `--image-root`; without it, under the CSV's folder, or its
//!   `images/` subfolder when that holds the first image.
//! - The file lists findings only, so there are no `absent` questions: it does not say what
//!   an image is free of.
//! - Rows are grouped by image in first-seen order; a bad row fails its image with the
//!   row's line number.

use std::collections::HashMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};

use super::decode::resolve_under;
use super::import::{self, Annotated, ImportError, csv_fields, csv_number};
use super::{DataError, Dataset, DatasetFormat, LoadOptions};
use crate::failure::Failure;
use crate::geometry::BoxFrame;
use crate::sample::{ImageRef, ImageSource};

pub const FORMAT: DatasetFormat = DatasetFormat {
    name: "nih-bbox",
    cluster: "image",
    summary: "NIH ChestX-ray14 BBox_List_2017.csv imported as grounding + presence questions",
    layout: "PATH: BBox_List_2017.csv (Image Index, Finding Label, Bbox [x, y, w, h])\n\
             images: <Image Index> under --image-root, else the CSV's folder or its images/ subfolder\n\
             questions per (image, label): \"Locate the {label} in this image.\" (grounding) and \"Is there any {label} in this image?\" (yes)\n\
             no \"no\" questions: the list names findings, not their absence",
    frame: "pixels:1024x1024 ([x, y, w, h] on the original 1024-px images); override with --dataset-box-frame",
    ids: "<Image Index>/locate/<label>, <Image Index>/present/<label>, e.g. 00013118_008.png/locate/Atelectasis",
    load,
};

pub const DEFAULT_FRAME: BoxFrame = BoxFrame::PixelsOf {
    width: 1024,
    height: 1024,
};

struct Group {
    line: usize,
    boxes: Vec<(String, [f64; 4])>,
    error: Option<(usize, ImportError)>,
}

fn load(path: &str, opts: &LoadOptions) -> Result<Dataset, DataError> {
    let path = PathBuf::from(path);
    let file = std::fs::File::open(&path).map_err(|source| DataError::Io {
        path: path.clone(),
        source,
    })?;
    let label = super::hf::file_label(&path);
    let frame = opts.box_frame.unwrap_or(DEFAULT_FRAME);
    let mut failures: Vec<Failure> = Vec::new();
    let mut order: Vec<String> = Vec::new();
    let mut groups: HashMap<String, Group> = HashMap::new();
    let mut lines = std::io::BufReader::new(file).lines().enumerate();
    match lines.next() {
        Some((_, Ok(h))) if h.trim_start_matches('\u{feff}').starts_with("Image Index") => {}
        _ => {
            return Err(DataError::Invalid {
                path,
                message: "not BBox_List_2017.csv: the header must start with `Image Index`".into(),
            });
        }
    }
    for (i, line) in lines {
        let lineno = i + 1;
        let loc = format!("{label}:{lineno}");
        let line = match line {
            Ok(l) => l,
            Err(e) => {
                failures.push(Failure::new(crate::failure::Stage::Load, &e).at(loc));
                continue;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        let f = csv_fields(&line);
        let image = f.first().map(|s| s.trim().to_string()).unwrap_or_default();
        if image.is_empty() {
            failures.push(ImportError::Row("empty Image Index".into()).failure(loc));
            continue;
        }
        let group = groups.entry(image.clone()).or_insert_with(|| {
            order.push(image.clone());
            Group {
                line: lineno,
                boxes: Vec::new(),
                error: None,
            }
        });
        let finding = f.get(1).map(|s| s.trim().to_string()).unwrap_or_default();
        let parsed = (|| {
            if finding.is_empty() {
                return Err(ImportError::Row("empty Finding Label".into()));
            }
            let [x, y, w, h] = [
                csv_number(&f, 2, "x")?,
                csv_number(&f, 3, "y")?,
                csv_number(&f, 4, "w")?,
                csv_number(&f, 5, "h")?,
            ];
            Ok([x, y, x + w, y + h])
        })();
        match parsed {
            Ok(b) => group.boxes.push((finding, b)),
            Err(e) => {
                group.error.get_or_insert((lineno, e));
            }
        }
    }

    let root = opts.image_root.clone().unwrap_or_else(|| {
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        match order.first() {
            Some(first)
                if resolve_under(&dir, first).is_err()
                    && resolve_under(&dir.join("images"), first).is_ok() =>
            {
                dir.join("images")
            }
            _ => dir,
        }
    });
    let mut annotated = Vec::new();
    let mut label_set: Vec<String> = Vec::new();
    for name in order {
        let Some(g) = groups.remove(&name) else {
            continue;
        };
        if let Some((line, err)) = g.error {
            failures.push(err.failure(format!("{label}:{line}")).with_id(name));
            continue;
        }
        match annotate(&root, &name, g.boxes, frame) {
            Ok(a) => {
                for (l, _) in &a.boxes {
                    if !label_set.contains(l) {
                        label_set.push(l.clone());
                    }
                }
                annotated.push(a);
            }
            Err(err) => failures.push(err.failure(format!("{label}:{}", g.line)).with_id(name)),
        }
    }
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "nih-bbox".into());
    Ok(Dataset {
        name,
        format: FORMAT.name,
        source_frame: frame,
        samples: import::questions(annotated, &label_set, Some("X-ray")),
        failures,
    })
}

fn annotate(
    root: &Path,
    name: &str,
    boxes: Vec<(String, [f64; 4])>,
    frame: BoxFrame,
) -> Result<Annotated, ImportError> {
    let file = import::resolve(root, name)?;
    let image = ImageRef {
        key: name.replace('\\', "/"),
        source: ImageSource::File(file),
    };
    let size = match frame {
        BoxFrame::Pixels => Some(
            super::decode::read_dimensions(&image.source, &image.key).map_err(|source| {
                ImportError::Image {
                    name: name.to_string(),
                    source,
                }
            })?,
        ),
        _ => None,
    };
    let boxes = boxes
        .into_iter()
        .enumerate()
        .map(|(index, (label, raw))| {
            frame
                .normalize_truth(raw, size)
                .map(|b| (label.clone(), b))
                .map_err(|source| ImportError::Box {
                    index,
                    label,
                    source,
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Annotated {
        name: name.to_string(),
        image,
        boxes,
        no_finding: false,
    })
}
