//! VinDr-CXR annotation CSV (`vindr:PATH.csv` or `.csv.gz`): radiologists' boxes become
//! grounding and presence questions (templates in [`super::import`]).
//!
//! ```text
//! $ medvqa inspect --dataset vindr:vinbigdata/train.csv --image-root vinbigdata/train_png
//! ```
//!
//! - Columns by header name: `image_id`, `class_name`, `x_min`, `y_min`, `x_max`, `y_max`
//!   (required), `rad_id`/`rad_ID`, `class_id`, and `width`/`height` (optional). Gzip is
//!   recognised from the bytes.
//! - Boxes are in pixels of the original DICOM, whose size the CSV does not give. The frame
//!   is therefore `pixels` of each image: the DICOM as downloaded, `<image_id>.dicom` (or
//!   `.dcm`), whose own Rows and Columns give the size; else a PNG/JPEG copy at
//!   `<image_id>.png` (or `.jpg`, `.jpeg`) under `--image-root` (default: the CSV's folder, or
//!   its `train/` subfolder), which must keep the DICOM's resolution. For resized
//!   copies add the original `width` and `height` columns to the CSV; they take precedence.
//! - Each image is read by several radiologists. Boxes of one label from different readers
//!   that overlap at IoU ≥ 0.5 are averaged into one box (readers agree on one finding);
//!   a box nobody else drew is kept as it is.
//! - An image whose every row is "No finding" gets an `absent` question for every label of
//!   the file.

use std::collections::HashMap;
use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};

use super::decode::read_dimensions;
use super::import::{self, Annotated, ImportError, csv_fields, csv_number};
use super::{DataError, Dataset, DatasetFormat, LoadOptions};
use crate::failure::{Failure, Stage};
use crate::geometry::{BBox, BoxFrame};
use crate::sample::{ImageRef, ImageSource};

pub const FORMAT: DatasetFormat = DatasetFormat {
    name: "vindr",
    cluster: "image",
    summary: "VinDr-CXR annotation CSV (.csv or .csv.gz) imported as grounding + presence questions",
    layout: "PATH: train.csv(.gz) with image_id, class_name, x_min, y_min, x_max, y_max (rad_id, class_id, width, height optional)\n\
             images: <image_id>.dicom|.dcm (as downloaded) or .png|.jpg|.jpeg under --image-root, else the CSV's folder or its train/ subfolder\n\
             questions per (image, label): \"Locate the {label} in this image.\" (grounding) and \"Is there any {label} in this image?\" (yes)\n\
             \"No finding\" images: \"Is there any {label} in this image?\" (no) for every label; readers' overlapping boxes (IoU >= 0.5) are averaged",
    frame: "pixels of the original DICOM: images must keep its resolution, or the CSV must add width and height columns",
    ids: "<image_id>/locate/<class_name>, <image_id>/present/<class_name>",
    load,
};

/// The label VinDr-CXR gives images without findings.
pub const NO_FINDING: &str = "No finding";

/// Readers' boxes overlapping at least this much are one finding.
pub const MERGE_IOU: f64 = 0.5;

/// VinDr-CXR's own files first (`<image_id>.dicom`, as downloaded), then converted copies.
const IMAGE_EXTS: [&str; 5] = ["dicom", "dcm", "png", "jpg", "jpeg"];

struct Columns {
    image: usize,
    class: usize,
    coords: [usize; 4],
    class_id: Option<usize>,
    width: Option<usize>,
    height: Option<usize>,
}

impl Columns {
    fn from_header(header: &[String]) -> Result<Columns, String> {
        let find = |name: &str| {
            header.iter().position(|h| {
                h.trim()
                    .trim_start_matches('\u{feff}')
                    .eq_ignore_ascii_case(name)
            })
        };
        let need = |name: &str| find(name).ok_or_else(|| format!("no `{name}` column"));
        Ok(Columns {
            image: need("image_id")?,
            class: need("class_name")?,
            coords: [
                need("x_min")?,
                need("y_min")?,
                need("x_max")?,
                need("y_max")?,
            ],
            class_id: find("class_id"),
            width: find("width"),
            height: find("height"),
        })
    }
}

#[derive(Default)]
struct Group {
    line: usize,
    boxes: Vec<(String, [f64; 4])>,
    no_finding_rows: usize,
    size: Option<(u32, u32)>,
    error: Option<(usize, ImportError)>,
}

fn open(path: &Path) -> Result<Box<dyn BufRead>, DataError> {
    let io = |source| DataError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut magic = [0u8; 2];
    let n = file.read(&mut magic).map_err(io)?;
    let file = std::fs::File::open(path).map_err(io)?;
    Ok(if n == 2 && magic == [0x1f, 0x8b] {
        Box::new(std::io::BufReader::new(flate2::read::GzDecoder::new(file)))
    } else {
        Box::new(std::io::BufReader::new(file))
    })
}

fn load(path: &str, opts: &LoadOptions) -> Result<Dataset, DataError> {
    let path = PathBuf::from(path);
    let reader = open(&path)?;
    let label = super::hf::file_label(&path);
    let frame = opts.box_frame.unwrap_or(BoxFrame::Pixels);
    let mut lines = reader.lines().enumerate();
    let header = match lines.next() {
        Some((_, Ok(h))) => csv_fields(&h),
        Some((_, Err(source))) => return Err(DataError::Io { path, source }),
        None => {
            return Err(DataError::Invalid {
                path,
                message: "empty file".into(),
            });
        }
    };
    let cols = Columns::from_header(&header).map_err(|m| DataError::Invalid {
        path: path.clone(),
        message: format!("not a VinDr-CXR CSV: {m}"),
    })?;

    let mut failures: Vec<Failure> = Vec::new();
    let mut order: Vec<String> = Vec::new();
    let mut groups: HashMap<String, Group> = HashMap::new();
    let mut classes: Vec<(Option<i64>, String)> = Vec::new();
    for (i, line) in lines {
        let lineno = i + 1;
        let loc = format!("{label}:{lineno}");
        let line = match line {
            Ok(l) => l,
            Err(e) => {
                // A damaged gzip stream ends the file here.
                failures.push(Failure::new(Stage::Load, &e).at(loc));
                break;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        let f = csv_fields(&line);
        let get = |i: usize| f.get(i).map(|s| s.trim()).unwrap_or("");
        let image = get(cols.image).to_string();
        if image.is_empty() {
            failures.push(ImportError::Row("empty image_id".into()).failure(loc));
            continue;
        }
        let group = groups.entry(image.clone()).or_insert_with(|| {
            order.push(image.clone());
            Group {
                line: lineno,
                ..Group::default()
            }
        });
        let class = get(cols.class).to_string();
        let parsed = (|| -> Result<Option<(String, [f64; 4])>, ImportError> {
            if let (Some(w), Some(h)) = (cols.width, cols.height) {
                let w = csv_number(&f, w, "width")?;
                let h = csv_number(&f, h, "height")?;
                if w < 1.0 || h < 1.0 {
                    return Err(ImportError::Row(format!(
                        "image size {w}x{h} is not positive"
                    )));
                }
                group.size = Some((w.round() as u32, h.round() as u32));
            }
            if class.is_empty() {
                return Err(ImportError::Row("empty class_name".into()));
            }
            if class.eq_ignore_ascii_case(NO_FINDING) {
                return Ok(None);
            }
            let [a, b, c, d] = cols.coords;
            Ok(Some((
                class.clone(),
                [
                    csv_number(&f, a, "x_min")?,
                    csv_number(&f, b, "y_min")?,
                    csv_number(&f, c, "x_max")?,
                    csv_number(&f, d, "y_max")?,
                ],
            )))
        })();
        match parsed {
            Ok(Some(b)) => {
                if !classes.iter().any(|(_, n)| *n == class) {
                    let id = cols.class_id.and_then(|c| get(c).parse::<i64>().ok());
                    classes.push((id, class.clone()));
                }
                group.boxes.push(b);
            }
            Ok(None) => group.no_finding_rows += 1,
            Err(e) => {
                group.error.get_or_insert((lineno, e));
            }
        }
    }
    classes.sort_by(|a, b| (a.0.unwrap_or(i64::MAX), &a.1).cmp(&(b.0.unwrap_or(i64::MAX), &b.1)));
    let label_set: Vec<String> = classes.into_iter().map(|(_, n)| n).collect();

    let root = opts.image_root.clone().unwrap_or_else(|| {
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        match order.first() {
            Some(first)
                if find_image(&dir, first).is_err()
                    && find_image(&dir.join("train"), first).is_ok() =>
            {
                dir.join("train")
            }
            _ => dir,
        }
    });
    let mut annotated = Vec::new();
    for name in order {
        let Some(g) = groups.remove(&name) else {
            continue;
        };
        if let Some((line, err)) = g.error {
            failures.push(err.failure(format!("{label}:{line}")).with_id(name));
            continue;
        }
        match annotate(&root, &name, &g, frame) {
            Ok(a) => annotated.push(a),
            Err(err) => failures.push(err.failure(format!("{label}:{}", g.line)).with_id(name)),
        }
    }
    let name = path
        .file_name()
        .map(|s| {
            let s = s.to_string_lossy();
            s.trim_end_matches(".gz")
                .trim_end_matches(".csv")
                .to_string()
        })
        .unwrap_or_else(|| "vindr".into());
    Ok(Dataset {
        name,
        format: FORMAT.name,
        source_frame: frame,
        samples: import::questions(annotated, &label_set, Some("X-ray")),
        failures,
    })
}

/// `<image_id>.dicom`, `.dcm`, `.png`, `.jpg` or `.jpeg` under `root`: the relative path and the file.
fn find_image(root: &Path, image_id: &str) -> Result<(String, PathBuf), ImportError> {
    for ext in IMAGE_EXTS {
        let rel = format!("{image_id}.{ext}");
        match import::resolve(root, &rel) {
            Ok(p) => return Ok((rel, p)),
            Err(ImportError::ImageMissing { .. }) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(ImportError::ImageMissing {
        name: format!("{image_id}.{{{}}}", IMAGE_EXTS.join(",")),
        root: root.to_path_buf(),
    })
}

fn annotate(root: &Path, name: &str, g: &Group, frame: BoxFrame) -> Result<Annotated, ImportError> {
    let (rel, file) = find_image(root, name)?;
    let image = ImageRef {
        key: rel,
        source: ImageSource::File(file),
    };
    let size = match (frame, g.size) {
        (_, Some(s)) => Some(s),
        (BoxFrame::Pixels, None) if !g.boxes.is_empty() => Some(
            read_dimensions(&image.source, &image.key).map_err(|source| ImportError::Image {
                name: name.to_string(),
                source,
            })?,
        ),
        _ => None,
    };
    let mut normalised: Vec<(String, BBox)> = Vec::with_capacity(g.boxes.len());
    for (index, (label, raw)) in g.boxes.iter().enumerate() {
        let b = frame
            .normalize_truth(*raw, size)
            .map_err(|source| ImportError::Box {
                index,
                label: label.clone(),
                source,
            })?;
        normalised.push((label.clone(), b));
    }
    Ok(Annotated {
        name: name.to_string(),
        image,
        boxes: merge_readers(&normalised),
        no_finding: g.boxes.is_empty() && g.no_finding_rows > 0,
    })
}

/// Per label, in file order: each box joins the first cluster whose mean it overlaps at
/// IoU ≥ [`MERGE_IOU`]; each cluster becomes its coordinate-wise mean.
pub fn merge_readers(boxes: &[(String, BBox)]) -> Vec<(String, BBox)> {
    let mut clusters: Vec<(String, Vec<BBox>)> = Vec::new();
    let mean = |bs: &[BBox]| {
        let n = bs.len() as f64;
        let s = bs.iter().fold([0.0; 4], |acc, b| {
            [acc[0] + b.x1, acc[1] + b.y1, acc[2] + b.x2, acc[3] + b.y2]
        });
        BBox {
            x1: s[0] / n,
            y1: s[1] / n,
            x2: s[2] / n,
            y2: s[3] / n,
        }
    };
    for (label, b) in boxes {
        match clusters
            .iter_mut()
            .find(|(l, members)| l == label && mean(members).iou(b) >= MERGE_IOU)
        {
            Some((_, members)) => members.push(*b),
            None => clusters.push((label.clone(), vec![*b])),
        }
    }
    clusters
        .into_iter()
        .map(|(l, members)| (l, mean(&members)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_reader_boxes_average_and_others_stay() {
        let b = |x1, y1, x2, y2| BBox::new(x1, y1, x2, y2).unwrap();
        let merged = merge_readers(&[
            ("Nodule".into(), b(0.1, 0.1, 0.3, 0.3)),
            ("Nodule".into(), b(0.12, 0.1, 0.32, 0.3)),
            ("Nodule".into(), b(0.7, 0.7, 0.8, 0.8)),
            ("Effusion".into(), b(0.1, 0.1, 0.3, 0.3)),
        ]);
        assert_eq!(merged.len(), 3);
        assert!((merged[0].1.x1 - 0.11).abs() < 1e-12);
        assert!((merged[0].1.x2 - 0.31).abs() < 1e-12);
        assert_eq!(merged[1].1, b(0.7, 0.7, 0.8, 0.8));
        assert_eq!(merged[2].0, "Effusion");
    }
}
