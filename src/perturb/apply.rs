//! [`apply_to_sample`]: the one place that turns a sample plus a condition into what the
//! model sees — its images in the order it sees them, and its ground-truth boxes moved with
//! them.
//!
//! `eval`, `medvqa perturb`'s export and the contact sheets all go through here, so they
//! agree on every rule:
//! - A frame-level perturbation (drop, shuffle, duplicate) reorders the clean frames; each
//!   box follows its frame, and the boxes of a dropped frame go with it. Where the sample
//!   says how its answer follows the frames, the answer is remapped; where it cannot, the
//!   condition is marked order-dependent ([`super::frames::answer_under_order`]).
//! - An image-level perturbation changes each image's pixels; each box is moved by its
//!   image's [`BoxMap`], and a box the perturbation moved out of the image is dropped and
//!   counted.
//! - The clean condition is every image as decoded, boxes unchanged.
//! - A control takes the image away (`blank-image` greys it, `swapped-image` shows another
//!   sample's, `no-image` shows none); the boxes have nothing left to point at and are
//!   not scored.
//! - An option rotation changes the question, not the images: the task as asked, with
//!   its reference remapped, comes back in [`AsSeen::task`].
//!
//! [`view`] decides the layout without touching pixels (the export writes its images in a
//! separate, parallel pass and only needs the layout and the maps); [`apply_to_sample`]
//! also fetches the pixels, through a closure so that each caller keeps its own cache.

use std::sync::Arc;

use super::frames::FrameTruth;
use super::{
    Application, Apply, BoxMap, PerturbError, SeedContext, Swaps, map_frame_boxes, perturb_frames,
};
use crate::pixels::Pixels;
use crate::sample::{GtBox, ImageRef, Sample, Task};

/// How a condition lays out one sample's images, before any pixel is touched.
#[derive(Debug, Clone)]
pub struct View {
    app: Option<Application>,
    /// The source frames in the order seen, for a frame-level perturbation (empty for
    /// `no-image`).
    frames: Option<Vec<usize>>,
    /// The images seen in place of the sample's own, for `swapped-image`.
    donors: Option<Vec<ImageRef>>,
    /// The task as the condition has it, when it differs from the sample's: options
    /// rotated, or the answer a frame reordering changed.
    task: Option<Task>,
    /// A frame reordering whose effect on the answer the dataset cannot say.
    order_dependent: bool,
    n_images: usize,
}

/// The layout of `sample` under `app` (`None` is the clean condition). `swaps` gives the
/// donors of `swapped-image` (an empty [`Swaps`] where the condition cannot occur). Fails
/// where the condition cannot be laid out: a frame drop on too few frames, an image
/// without a donor, a rotation the question's options do not allow.
pub fn view(
    ctx: &SeedContext,
    sample: &Sample,
    app: Option<&Application>,
    swaps: &Swaps,
) -> Result<View, PerturbError> {
    let mut v = View {
        app: app.copied(),
        frames: None,
        donors: None,
        task: None,
        order_dependent: false,
        n_images: sample.images.len(),
    };
    let Some(a) = app.filter(|a| a.severity > 0) else {
        return Ok(v);
    };
    match a.perturbation.apply {
        Apply::Image(_) => {}
        Apply::Frames(_) => {
            let order = perturb_frames(ctx, &sample.id, sample.images.len(), a)?;
            match super::frames::answer_under_order(sample, &order) {
                FrameTruth::Same => {}
                FrameTruth::Remapped(task) => v.task = Some(task),
                FrameTruth::OrderDependent => v.order_dependent = true,
            }
            v.frames = Some(order);
        }
        Apply::NoImage => v.frames = Some(Vec::new()),
        Apply::Swap => {
            v.donors = Some(
                sample
                    .images
                    .iter()
                    .map(|img| swaps.donor(&img.key).cloned())
                    .collect::<Result<_, _>>()?,
            );
        }
        Apply::Options(f) => {
            v.task =
                Some(
                    f(&sample.task, a.severity).ok_or_else(|| PerturbError::NotApplicable {
                        name: a.perturbation.name,
                        why: format!(
                            "{} with {} options, rotation {}",
                            sample.kind().as_str(),
                            sample.task.options().len(),
                            a.severity
                        ),
                    })?,
                );
        }
    }
    Ok(v)
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

    /// The source image behind each image seen, in order (indices into the sample's
    /// images; under `swapped-image`, into the donors of [`View::images`]).
    pub fn sources(&self) -> Vec<usize> {
        match &self.frames {
            Some(order) => order.clone(),
            None => (0..self.n_images).collect(),
        }
    }

    /// The images seen, in order: the sample's own (reordered by a frame perturbation), or
    /// another sample's under `swapped-image`.
    pub fn images<'a>(&'a self, sample: &'a Sample) -> Vec<&'a ImageRef> {
        let own: &[ImageRef] = self.donors.as_deref().unwrap_or(&sample.images);
        self.sources()
            .into_iter()
            .filter_map(|i| own.get(i))
            .collect()
    }

    /// The task as the condition has it: options rotated (and the reference with them), or
    /// the answer a frame reordering changed ([`super::frames::answer_under_order`]);
    /// `None` when it is the sample's own.
    pub fn task(&self) -> Option<&Task> {
        self.task.as_ref()
    }

    /// Whether a frame reordering left the answer unknown (the dataset cannot say how it
    /// follows the frames): such answers are reported apart.
    pub fn order_dependent(&self) -> bool {
        self.order_dependent
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
    /// The task as the condition has it, when it differs from the sample's.
    pub task: Option<Task>,
    /// A frame reordering whose effect on the answer the dataset cannot say.
    pub order_dependent: bool,
}

/// `sample` under `app` (`None`: clean). `image(img, change)` gives the image `img`, with
/// `change` applied when it is `Some` (and the [`BoxMap`] that goes with it), or as
/// decoded when it is `None`; callers route it through their caches. `img` is one of the
/// sample's images, or a donor's under `swapped-image` (see [`view`] for `swaps`).
pub fn apply_to_sample<E: From<PerturbError>>(
    ctx: &SeedContext,
    sample: &Sample,
    app: Option<&Application>,
    swaps: &Swaps,
    mut image: impl FnMut(&ImageRef, Option<&Application>) -> Result<(Arc<Pixels>, BoxMap), E>,
) -> Result<AsSeen, E> {
    let v = view(ctx, sample, app, swaps)?;
    let change = v.pixel_change().copied();
    let mut images = Vec::with_capacity(sample.images.len());
    let mut maps = Vec::with_capacity(sample.images.len());
    for img in v.images(sample) {
        let (pixels, map) = image(img, change.as_ref())?;
        images.push(pixels);
        maps.push(map);
    }
    let boxes = v.boxes(sample, &maps);
    Ok(AsSeen {
        images,
        frames: v.frames,
        boxes,
        order_dependent: v.order_dependent,
        task: v.task,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::BBox;
    use crate::perturb::{find, perturb_image};
    use crate::sample::ImageSource;

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

    fn none() -> Swaps {
        Swaps::default()
    }

    /// The index in an image key `f{i}` (or a donor's `g{i}`, plus 100).
    fn idx(img: &ImageRef) -> u8 {
        let n: u8 = img.key[1..].parse().unwrap();
        if img.key.starts_with('g') { n + 100 } else { n }
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
        let seen = apply_to_sample::<PerturbError>(&ctx, &s, None, &none(), |img, change| {
            assert!(change.is_none());
            Ok((grey(idx(img)), BoxMap::Identity))
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
        let seen = apply_to_sample::<PerturbError>(&ctx, &s, Some(&a), &none(), |img, change| {
            assert!(change.is_none(), "frames are seen as decoded");
            Ok((grey(idx(img)), BoxMap::Identity))
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
        let seen = apply_to_sample::<PerturbError>(&ctx, &s, Some(&a), &none(), |_, change| {
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
        let v = view(&ctx, &s, Some(&a), &none()).unwrap();
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
        let seen = apply_to_sample::<PerturbError>(&ctx, &s, Some(&a), &none(), |_, change| {
            let p = perturb_image(&ctx, "f0", &grey(9), change.unwrap())?;
            Ok((Arc::new(p.pixels), p.map))
        })
        .unwrap();
        assert!(seen.images[0].as_raw().iter().all(|&v| v == 128));
        assert!(seen.boxes.boxes.is_empty() && seen.boxes.changed);
        assert_eq!(seen.boxes.if_changed(&s), Some(Vec::new()));
    }

    #[test]
    fn swapped_images_come_from_another_sample_of_the_same_modality() {
        let ctx = SeedContext::new(3, "d");
        let mut a = sample(2, vec![gt(0, [0.1, 0.1, 0.3, 0.3])]);
        let mut b = sample(1, Vec::new());
        b.id = "q2".into();
        b.images[0].key = "g0".into();
        let mut c = sample(1, Vec::new());
        c.id = "q3".into();
        c.images[0].key = "g1".into();
        for s in [&mut a, &mut b, &mut c] {
            s.meta.insert("modality".into(), "cxr".into());
        }
        let swaps = Swaps::new(&ctx, &[a.clone(), b.clone(), c.clone()]);
        let app = app("swapped-image", 1);
        let seen = apply_to_sample::<PerturbError>(&ctx, &a, Some(&app), &swaps, |img, change| {
            assert!(change.is_none(), "donors are seen as decoded");
            Ok((grey(idx(img)), BoxMap::Identity))
        })
        .unwrap();
        assert_eq!(seen.images.len(), 2, "as many images as the sample has");
        for im in &seen.images {
            assert!(
                im.as_raw()[0] >= 100,
                "a donor, never the sample's own frame"
            );
        }
        assert!(seen.boxes.boxes.is_empty() && seen.boxes.changed);
        // The donors do not depend on the order the samples come in.
        let again = Swaps::new(&ctx, &[c.clone(), a.clone(), b.clone()]);
        for img in a.images.iter().chain(&b.images).chain(&c.images) {
            assert_eq!(
                swaps.donor(&img.key).unwrap().key,
                again.donor(&img.key).unwrap().key
            );
            assert_ne!(swaps.donor(&img.key).unwrap().key, img.key);
        }
        // A modality with one sample has no one to swap with: a clear failure.
        let mut lone = sample(1, Vec::new());
        lone.id = "x".into();
        lone.images[0].key = "solo".into();
        lone.meta.insert("modality".into(), "endoscopy".into());
        let swaps = Swaps::new(&ctx, &[a.clone(), lone.clone()]);
        let e = view(&ctx, &lone, Some(&app), &swaps).unwrap_err();
        assert!(e.to_string().contains("endoscopy"), "{e}");
    }

    #[test]
    fn no_image_leaves_the_question_alone() {
        let ctx = SeedContext::new(1, "d");
        let s = sample(3, vec![gt(1, [0.1, 0.1, 0.3, 0.3])]);
        let seen = apply_to_sample::<PerturbError>(
            &ctx,
            &s,
            Some(&app("no-image", 1)),
            &none(),
            |_, _| -> Result<(Arc<Pixels>, BoxMap), PerturbError> { panic!("no image is read") },
        )
        .unwrap();
        assert!(seen.images.is_empty());
        assert_eq!(seen.frames, Some(Vec::new()));
        assert_eq!(seen.boxes.if_changed(&s), Some(Vec::new()));
    }

    #[test]
    fn option_rotation_changes_the_question_not_the_images() {
        let ctx = SeedContext::new(1, "d");
        let mut s = sample(1, Vec::new());
        s.task = Task::SingleChoice {
            options: vec!["a".into(), "b".into(), "c".into()],
            answer: 2,
        };
        let seen = apply_to_sample::<PerturbError>(
            &ctx,
            &s,
            Some(&app("option-rotate", 2)),
            &none(),
            |img, change| {
                assert!(change.is_none());
                Ok((grey(idx(img)), BoxMap::Identity))
            },
        )
        .unwrap();
        assert_eq!(seen.images.len(), 1);
        assert_eq!(
            seen.task,
            Some(Task::SingleChoice {
                options: vec!["c".into(), "a".into(), "b".into()],
                answer: 0,
            })
        );
        let e = view(&ctx, &s, Some(&app("option-rotate", 3)), &none()).unwrap_err();
        assert!(e.to_string().contains("3 options, rotation 3"), "{e}");
    }
}
