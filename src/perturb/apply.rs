//! [`apply_to_sample`]: the one place that turns a sample plus a condition into what the
//! model sees — its images in the order it sees them, and its ground-truth boxes moved with
//! them.
//!
//! `eval`, `medvqa perturb`'s export and the contact sheets all go through here, so they
//! agree on every rule:
//! - A frame-level perturbation (drop, shuffle, duplicate) reorders the clean frames; each
//!   box follows its frame, and the boxes of a dropped frame go with it.
//! - An image-level perturbation changes each image's pixels; each box is moved by its
//!   image's [`BoxMap`], and a box the perturbation moved out of the image is dropped and
//!   counted.
//! - The clean condition is every image as decoded, boxes unchanged.
//!
//! [`view`] decides the layout without touching pixels (the export writes its images in a
//! separate, parallel pass and only needs the layout and the maps); [`apply_to_sample`]
//! also fetches the pixels, through a closure so that each caller keeps its own cache.

use std::sync::Arc;

use super::{Application, BoxMap, PerturbError, SeedContext, map_frame_boxes, perturb_frames};
use crate::pixels::Pixels;
use crate::sample::{GtBox, Sample};

/// How a condition lays out one sample's images, before any pixel is touched.
#[derive(Debug, Clone, PartialEq)]
pub struct View {
    app: Option<Application>,
    /// The source frames in the order seen, for a frame-level perturbation.
    frames: Option<Vec<usize>>,
    n_images: usize,
}

/// The layout of `sample` under `app` (`None` is the clean condition). Only a frame-level
/// perturbation can fail here (it needs at least as many frames as it drops).
pub fn view(
    ctx: &SeedContext,
    sample: &Sample,
    app: Option<&Application>,
) -> Result<View, PerturbError> {
    let frames = match app {
        Some(a) if !a.perturbation.is_image_level() => {
            Some(perturb_frames(ctx, &sample.id, sample.images.len(), a)?)
        }
        _ => None,
    };
    Ok(View {
        app: app.copied(),
        frames,
        n_images: sample.images.len(),
    })
}

impl View {
    /// The source frames in the order seen, when a frame-level perturbation reordered them.
    pub fn frames(&self) -> Option<&[usize]> {
        self.frames.as_deref()
    }

    /// The image-level application that changes each image's pixels; `None` when the images
    /// are seen as decoded (clean, or reordered frames).
    pub fn pixel_change(&self) -> Option<&Application> {
        self.app
            .as_ref()
            .filter(|a| a.perturbation.is_image_level())
    }

    /// The source image behind each image seen, in order.
    pub fn sources(&self) -> Vec<usize> {
        match &self.frames {
            Some(order) => order.clone(),
            None => (0..self.n_images).collect(),
        }
    }

    /// The sample's boxes as seen. `maps` holds one [`BoxMap`] per source image and is read
    /// only under an image-level perturbation.
    pub fn boxes(&self, sample: &Sample, maps: &[BoxMap]) -> SeenBoxes {
        if let Some(order) = &self.frames {
            return SeenBoxes {
                boxes: map_frame_boxes(&sample.boxes, order),
                dropped: 0,
                changed: true,
            };
        }
        if self
            .app
            .is_some_and(|a| a.perturbation.family == super::Family::Control)
        {
            // The control took away what the boxes point at: nothing to score them on.
            return SeenBoxes {
                boxes: Vec::new(),
                dropped: 0,
                changed: true,
            };
        }
        if self.pixel_change().is_none() {
            return SeenBoxes {
                boxes: sample.boxes.clone(),
                dropped: 0,
                changed: false,
            };
        }
        let mut boxes = Vec::with_capacity(sample.boxes.len());
        let mut dropped = 0;
        for b in &sample.boxes {
            match maps.get(b.image).and_then(|m| m.apply(&b.bbox)) {
                Some(bbox) => boxes.push(GtBox { bbox, ..b.clone() }),
                None => dropped += 1,
            }
        }
        SeenBoxes {
            boxes,
            dropped,
            changed: maps.iter().any(|m| !matches!(m, BoxMap::Identity)),
        }
    }
}

/// Ground-truth boxes as the model sees them.
#[derive(Debug, Clone, PartialEq)]
pub struct SeenBoxes {
    pub boxes: Vec<GtBox>,
    /// Boxes a geometric perturbation moved out of the image (frame drops are not counted:
    /// a box leaves with its frame).
    pub dropped: usize,
    /// Whether the boxes differ from the sample's own: frames were reordered or a
    /// geometric perturbation moved them.
    pub changed: bool,
}

impl SeenBoxes {
    /// The boxes to record with a prediction: `None` when they are the sample's own.
    pub fn if_changed(&self, sample: &Sample) -> Option<Vec<GtBox>> {
        (self.changed && !sample.boxes.is_empty()).then(|| self.boxes.clone())
    }
}

/// A sample's images under one condition, as the model sees them.
#[derive(Debug, Clone)]
pub struct AsSeen {
    pub images: Vec<Arc<Pixels>>,
    /// The source frames in the order seen, when a frame-level perturbation reordered them.
    pub frames: Option<Vec<usize>>,
    pub boxes: SeenBoxes,
}

/// `sample` under `app` (`None`: clean). `image(i, change)` gives source image `i`, with
/// `change` applied when it is `Some` (and the [`BoxMap`] that goes with it), or as
/// decoded when it is `None`; callers route it through their caches.
pub fn apply_to_sample<E: From<PerturbError>>(
    ctx: &SeedContext,
    sample: &Sample,
    app: Option<&Application>,
    mut image: impl FnMut(usize, Option<&Application>) -> Result<(Arc<Pixels>, BoxMap), E>,
) -> Result<AsSeen, E> {
    let v = view(ctx, sample, app)?;
    let change = v.pixel_change().copied();
    let mut images = Vec::with_capacity(sample.images.len());
    let mut maps = Vec::with_capacity(sample.images.len());
    for i in v.sources() {
        let (pixels, map) = image(i, change.as_ref())?;
        images.push(pixels);
        maps.push(map);
    }
    let boxes = v.boxes(sample, &maps);
    Ok(AsSeen {
        images,
        frames: v.frames,
        boxes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::BBox;
    use crate::perturb::{find, perturb_image};
    use crate::sample::{ImageRef, ImageSource, Task};

    fn sample(n: usize, boxes: Vec<GtBox>) -> Sample {
        Sample {
            id: "q1".into(),
            images: (0..n)
                .map(|i| ImageRef {
                    source: ImageSource::File(format!("f{i}.png").into()),
                    key: format!("f{i}"),
                })
                .collect(),
            question: "?".into(),
            task: Task::Open { answer: "x".into() },
            boxes,
            meta: Default::default(),
        }
    }

    fn gt(image: usize, b: [f64; 4]) -> GtBox {
        GtBox {
            image,
            label: Some("finding".into()),
            bbox: BBox::new(b[0], b[1], b[2], b[3]).unwrap(),
        }
    }

    fn app(name: &str, severity: u8) -> Application {
        Application {
            perturbation: find(name).unwrap(),
            severity,
            variant: 0,
        }
    }

    fn grey(v: u8) -> Arc<Pixels> {
        Arc::new(Pixels::Rgb(image::RgbImage::from_pixel(
            40,
            30,
            image::Rgb([v; 3]),
        )))
    }

    #[test]
    fn clean_is_the_images_as_decoded_with_their_own_boxes() {
        let ctx = SeedContext::new(1, "d");
        let s = sample(2, vec![gt(1, [0.1, 0.1, 0.5, 0.5])]);
        let seen = apply_to_sample::<PerturbError>(&ctx, &s, None, |i, change| {
            assert!(change.is_none());
            Ok((grey(i as u8), BoxMap::Identity))
        })
        .unwrap();
        assert_eq!(seen.images.len(), 2);
        assert_eq!(seen.images[1].as_raw()[0], 1);
        assert_eq!(seen.frames, None);
        assert_eq!(seen.boxes.boxes, s.boxes);
        assert_eq!(seen.boxes.if_changed(&s), None);
    }

    #[test]
    fn frame_perturbations_reorder_clean_frames_and_boxes_follow_them() {
        let ctx = SeedContext::new(1, "d");
        let s = sample(
            4,
            vec![gt(0, [0.1, 0.1, 0.2, 0.2]), gt(3, [0.5, 0.5, 0.6, 0.6])],
        );
        let a = app("frame-shuffle", 5);
        let seen = apply_to_sample::<PerturbError>(&ctx, &s, Some(&a), |i, change| {
            assert!(change.is_none(), "frames are seen as decoded");
            Ok((grey(i as u8), BoxMap::Identity))
        })
        .unwrap();
        let order = seen.frames.clone().unwrap();
        assert_eq!(order, perturb_frames(&ctx, "q1", 4, &a).unwrap());
        for (pos, &src) in order.iter().enumerate() {
            assert_eq!(seen.images[pos].as_raw()[0], src as u8);
        }
        let pos_of = |src: usize| order.iter().position(|&o| o == src).unwrap();
        assert_eq!(
            seen.boxes.boxes[0].image.min(seen.boxes.boxes[1].image),
            pos_of(0).min(pos_of(3))
        );
        assert!(
            seen.boxes
                .boxes
                .iter()
                .any(|b| b.image == pos_of(3) && b.bbox == s.boxes[1].bbox)
        );
        assert!(seen.boxes.if_changed(&s).is_some());
    }

    #[test]
    fn geometric_perturbations_move_boxes_and_count_the_ones_pushed_out() {
        let ctx = SeedContext::new(1, "d");
        let s = sample(
            1,
            vec![gt(0, [0.1, 0.1, 0.3, 0.3]), gt(0, [0.7, 0.7, 0.9, 0.9])],
        );
        let a = app("flip-h", 1);
        let seen = apply_to_sample::<PerturbError>(&ctx, &s, Some(&a), |_, change| {
            let p = perturb_image(&ctx, "f0", &grey(9), change.unwrap())?;
            Ok((Arc::new(p.pixels), p.map))
        })
        .unwrap();
        assert_eq!(seen.boxes.dropped, 0);
        assert!(seen.boxes.changed);
        let b = &seen.boxes.boxes[0].bbox;
        assert!(
            (b.x1 - 0.7).abs() < 1e-9 && (b.x2 - 0.9).abs() < 1e-9,
            "{b:?}"
        );

        // A map that pushes the second box out drops it, and counts it.
        let v = view(&ctx, &s, Some(&a)).unwrap();
        let out = v.boxes(
            &s,
            &[BoxMap::Affine {
                to_output: crate::perturb::Affine::translate(-24.0, -18.0),
                src: (40, 30),
                dst: (40, 30),
            }],
        );
        assert_eq!((out.boxes.len(), out.dropped), (1, 1));
    }

    #[test]
    fn controls_take_the_boxes_away_with_the_image() {
        let ctx = SeedContext::new(1, "d");
        let s = sample(1, vec![gt(0, [0.1, 0.1, 0.3, 0.3])]);
        let a = app("blank-image", 1);
        let seen = apply_to_sample::<PerturbError>(&ctx, &s, Some(&a), |_, change| {
            let p = perturb_image(&ctx, "f0", &grey(9), change.unwrap())?;
            Ok((Arc::new(p.pixels), p.map))
        })
        .unwrap();
        assert!(seen.images[0].as_raw().iter().all(|&v| v == 128));
        assert!(seen.boxes.boxes.is_empty() && seen.boxes.changed);
        assert_eq!(seen.boxes.if_changed(&s), Some(Vec::new()));
    }
}
