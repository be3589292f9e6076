//! Contact sheets: one sample across severities, for a person to judge at a glance whether
//! each perturbation looks plausible and whether the boxes moved with the content.
//!
//! ```text
//! $ medvqa perturb --dataset phantom:cxr --perturbation cxr-default --sheet sheet.png
//! ```
//!
//! Rows are perturbations; columns are the clean image then severities 1–5 (or, for a
//! track that draws one perturbation several times, its first five draws). A cell shows
//! all of the sample's images side by side, in the order the model would see them, with
//! the ground-truth boxes mapped through the perturbation in yellow, and a caption with the
//! severity and the mean absolute difference from the clean image (0–255). Conditions
//! with nothing to look at have no row: `no-image` (no image) and `option-rotate` (the
//! images are the clean ones; only the question changes).

use std::sync::Arc;

use image::imageops::{self, FilterType};

use super::{
    Application, Apply, BoxMap, MAX_SEVERITY, PerturbError, Perturbed, SeedContext, Severities,
    Swaps, apply_to_sample, mean_abs_diff, perturb_image, presets,
};
use crate::draw::{self, Canvas};
use crate::geometry::BBox;
use crate::pixels::Pixels;
use crate::sample::{GtBox, ImageRef, Sample};

/// Decodes an image that is not the sample's own (a `swapped-image` donor).
pub type DecodeFn<'a> = dyn Fn(&ImageRef) -> Result<Arc<Pixels>, PerturbError> + 'a;

/// One cell: the images as the model sees them, the boxes on them, and a caption.
#[derive(Debug, Clone)]
pub struct Cell {
    pub caption: String,
    pub images: Vec<Arc<Pixels>>,
    pub boxes: Vec<GtBox>,
}

#[derive(Debug, Clone)]
pub struct Row {
    pub label: String,
    pub cells: Vec<Cell>,
}

/// Builds the rows for `sample` (whose decoded images are `images`) under the perturbation
/// and track names given, at `severities` (up to five draws of a multi-draw track); the
/// clean image leads every row as the reference. `swaps` and `donor` give the images
/// `swapped-image` shows.
pub fn rows(
    ctx: &SeedContext,
    sample: &Sample,
    images: &[Arc<Pixels>],
    names: &[String],
    severities: &Severities,
    swaps: &Swaps,
    donor: &DecodeFn<'_>,
) -> Result<Vec<Row>, PerturbError> {
    let apps = presets::expand_for(names, severities, sample, false)?;
    let clean = Cell {
        caption: "clean".to_string(),
        images: images.to_vec(),
        boxes: sample.boxes.clone(),
    };
    let mut out: Vec<Row> = Vec::new();
    for app in apps
        .into_iter()
        .filter(|a| !matches!(a.perturbation.apply, Apply::NoImage | Apply::Options(_)))
    {
        let name = app.perturbation.name;
        let row = match out.iter_mut().find(|r| r.label == name) {
            Some(r) => r,
            None => {
                out.push(Row {
                    label: name.to_string(),
                    cells: vec![clean.clone()],
                });
                let last = out.len() - 1;
                &mut out[last]
            }
        };
        if row.cells.len() > MAX_SEVERITY as usize {
            continue;
        }
        row.cells
            .push(cell(ctx, sample, images, &app, swaps, donor)?);
    }
    Ok(out)
}

fn cell(
    ctx: &SeedContext,
    sample: &Sample,
    images: &[Arc<Pixels>],
    app: &Application,
    swaps: &Swaps,
    donor: &DecodeFn<'_>,
) -> Result<Cell, PerturbError> {
    let caption = if app.variant > 0 {
        format!("v{}", app.variant)
    } else {
        format!("s{}", app.severity)
    };
    let own = |img: &ImageRef| sample.images.iter().position(|i| i.key == img.key);
    let seen = apply_to_sample(ctx, sample, Some(app), swaps, |img, change| {
        let pixels = match own(img).and_then(|i| images.get(i)) {
            Some(p) => p.clone(),
            None => donor(img)?,
        };
        match change {
            None => Ok((pixels, BoxMap::Identity)),
            Some(a) => {
                let Perturbed { pixels, map } = perturb_image(ctx, &img.key, &pixels, a)?;
                Ok::<_, PerturbError>((Arc::new(pixels), map))
            }
        }
    })?;
    let caption = match &seen.frames {
        Some(order) => format!("{caption} {order:?}"),
        None => {
            let diff: f64 = images
                .iter()
                .zip(&seen.images)
                .map(|(clean, seen)| mean_abs_diff(clean, seen))
                .sum();
            format!("{caption} d{:.1}", diff / images.len().max(1) as f64)
        }
    };
    Ok(Cell {
        caption,
        images: seen.images,
        boxes: seen.boxes.boxes,
    })
}

/// What the captions mean, under the title.
const LEGEND: &str =
    "sN severity, vN draw, dX mean absolute difference from clean (0-255), [..] frame order";
const PAD: u32 = 6;
const CAPTION: u32 = 16;
/// Label text size, pixels per em, in the shipped TrueType font.
const FONT_PX: f32 = 13.0;
const BACKGROUND: [f32; 3] = [24.0, 24.0, 28.0];
const INK: [f32; 3] = [230.0, 230.0, 230.0];
const BOX: [f32; 3] = [255.0, 220.0, 0.0];

/// Renders rows into one RGB image; every image is scaled to `thumb` pixels high.
pub fn render(title: &str, rows: &[Row], thumb: u32) -> Pixels {
    let thumb = thumb.max(16);
    let cell_w = rows
        .iter()
        .flat_map(|r| &r.cells)
        .map(|c| cell_width(c, thumb))
        .max()
        .unwrap_or(thumb);
    let cols = rows.iter().map(|r| r.cells.len()).max().unwrap_or(1) as u32;
    let label_w = rows
        .iter()
        .map(|r| text_width(&r.label))
        .max()
        .unwrap_or(0)
        .max(text_width(title) / 3)
        + 2 * PAD;
    let row_h = CAPTION + thumb + PAD;
    let width = (label_w + cols * (cell_w + PAD) + PAD).max(text_width(LEGEND) + 2 * PAD);
    let top = 2 * PAD + 2 * CAPTION;
    let height = top + rows.len() as u32 * row_h + PAD;
    let mut c = Canvas::new(width, height, &BACKGROUND);
    label(&mut c, PAD, PAD, title, 1.0);
    label(&mut c, PAD, PAD + CAPTION, LEGEND, 0.7);
    for (ri, row) in rows.iter().enumerate() {
        let y = top + ri as u32 * row_h;
        label(
            &mut c,
            PAD,
            (y + CAPTION + thumb / 2).saturating_sub(FONT_PX as u32 / 2),
            &row.label,
            1.0,
        );
        for (ci, cell) in row.cells.iter().enumerate() {
            let x = label_w + ci as u32 * (cell_w + PAD);
            label(&mut c, x, y + 1, &cell.caption, 0.9);
            draw_cell(&mut c, cell, x, y + CAPTION, thumb);
        }
    }
    c.to_pixels()
}

/// The width of `text` as [`label`] draws it.
fn text_width(text: &str) -> u32 {
    draw::truetype_width(text, FONT_PX)
}

/// `text` in the label font with its top left at `(x, y)`.
fn label(c: &mut Canvas, x: u32, y: u32, text: &str, alpha: f32) {
    c.paint_mask(
        &draw::truetype(text, FONT_PX),
        x as i64,
        y as i64,
        &INK,
        alpha,
    );
}

fn scaled_width(p: &Pixels, thumb: u32) -> u32 {
    ((p.width() as u64 * thumb as u64) / p.height().max(1) as u64).max(1) as u32
}

fn cell_width(c: &Cell, thumb: u32) -> u32 {
    let w: u32 = c.images.iter().map(|p| scaled_width(p, thumb) + 2).sum();
    w.saturating_sub(2).max(1)
}

fn draw_cell(c: &mut Canvas, cell: &Cell, x0: u32, y0: u32, thumb: u32) {
    let mut x = x0;
    for (i, img) in cell.images.iter().enumerate() {
        let tw = scaled_width(img, thumb);
        let small = imageops::resize(&img.to_rgb(), tw, thumb, FilterType::Triangle);
        for (px, py, p) in small.enumerate_pixels() {
            let (cx, cy) = (x + px, y0 + py);
            if cx < c.width && cy < c.height {
                let i0 = (cy as usize * c.width as usize + cx as usize) * 3;
                for k in 0..3 {
                    c.data[i0 + k] = p.0[k] as f32;
                }
            }
        }
        for b in cell.boxes.iter().filter(|b| b.image == i) {
            stroke_box(c, &b.bbox, x, y0, tw, thumb);
        }
        x += tw + 2;
    }
}

fn stroke_box(c: &mut Canvas, b: &BBox, x0: u32, y0: u32, w: u32, h: u32) {
    let [bx1, by1, bx2, by2] = b.to_pixels(w, h);
    let r = [
        x0 as i64 + bx1.floor() as i64,
        y0 as i64 + by1.floor() as i64,
        x0 as i64 + (bx2.ceil() as i64).max(bx1.floor() as i64 + 2),
        y0 as i64 + (by2.ceil() as i64).max(by1.floor() as i64 + 2),
    ];
    c.stroke_rect(r, 1, &BOX, 1.0);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::perturb::testimg;
    use crate::sample::{ImageRef, ImageSource, Task};

    #[test]
    fn a_sheet_has_a_row_per_perturbation_and_a_column_per_severity() {
        let img = Arc::new(testimg::rgb(64, 48, 0));
        let sample = Sample {
            id: "q1".into(),
            images: vec![ImageRef {
                key: "a.png".into(),
                source: ImageSource::Pixels(img.clone()),
            }],
            question: "where?".into(),
            task: Task::Grounding { answer: None },
            boxes: vec![GtBox {
                image: 0,
                bbox: BBox::new(0.2, 0.2, 0.5, 0.6).unwrap(),
                label: None,
            }],
            meta: Default::default(),
        };
        let ctx = SeedContext::new(1, "t");
        let names = vec!["rotate".to_string(), "flip-h".to_string()];
        // --severity 3,5: the clean reference and those two columns only.
        let some: Severities = "3,5".parse().unwrap();
        let picked = rows(
            &ctx,
            &sample,
            std::slice::from_ref(&img),
            &names[..1],
            &some,
            &Swaps::default(),
            &|_| unreachable!(),
        )
        .unwrap();
        let captions: Vec<&str> = picked[0].cells.iter().map(|c| c.caption.as_str()).collect();
        assert_eq!(captions.len(), 3, "{captions:?}");
        assert!(
            captions[0] == "clean"
                && captions[1].starts_with("s3")
                && captions[2].starts_with("s5")
        );
        let rows = rows(
            &ctx,
            &sample,
            &[img],
            &names,
            &Severities::All,
            &Swaps::default(),
            &|_| unreachable!(),
        )
        .unwrap();
        assert_eq!(rows.len(), 2);
        let row = |name: &str| rows.iter().find(|r| r.label == name).unwrap();
        assert_eq!(row("rotate").cells.len(), 6);
        assert_eq!(row("flip-h").cells.len(), 2);
        assert!(row("rotate").cells.iter().all(|c| c.boxes.len() == 1));
        let sheet = render("test", &rows, 40);
        assert!(sheet.width() > 6 * 40 && sheet.height() > 2 * 40);
        // The yellow box is drawn.
        let yellow = sheet
            .to_rgb()
            .pixels()
            .filter(|p| p.0 == [255, 220, 0])
            .count();
        assert!(yellow > 50);
    }
}
