//! Reading back a dataset that `medvqa perturb` wrote, as conditions of its source samples.
//!
//! ```text
//! $ medvqa perturb --dataset gemex:data --perturbation rotate --severity 0,1,3 --out P
//! $ my-api-model P/manifest.jsonl > preds.jsonl          # ids like single_choice/row_0/1@rotate/s3
//! $ medvqa score --dataset jsonl:P/manifest.jsonl --predictions preds.jsonl --out R
//! ```
//!
//! Each sample of a perturbed manifest is one (source sample, condition): its `meta` holds
//! `source_id`, `perturbation` (`clean` for the severity-0 copy) and `severity`, and its
//! boxes are already moved with the image. [`fold`] turns such a dataset back into its
//! source samples and remembers each perturbed copy as the ground truth of its condition,
//! so `score` reports robustness tables and scores boxes where the perturbed image shows
//! the finding.

use std::collections::HashMap;

use crate::sample::{Meta, MetaValue, Sample};
use crate::score::{Condition, Prediction};

/// The meta `medvqa perturb` adds to each copy it writes. The export writes it and [`fold`]
/// reads it, both through this type, so the layout lives in one place.
#[derive(Debug, Clone, PartialEq)]
pub struct PerturbedMeta {
    /// The id of the sample this is a copy of.
    pub source_id: String,
    /// The condition the copy shows; the clean copy is written with [`CLEAN_COPY`].
    pub condition: Condition,
    /// Boxes a geometric perturbation moved out of the image.
    pub boxes_dropped: usize,
}

/// The `perturbation` label of the clean (severity-0) copy, and the folder it is written to.
pub const CLEAN_COPY: &str = "clean";

impl PerturbedMeta {
    /// The meta keys it owns; they are removed from the folded source samples.
    const KEYS: [&str; 4] = ["source_id", "perturbation", "severity", "boxes_dropped"];

    /// The label written for the condition: [`CLEAN_COPY`] for the clean copy.
    pub fn label(condition: &Condition) -> String {
        if condition.is_clean() {
            CLEAN_COPY.to_string()
        } else {
            condition.perturbation.clone()
        }
    }

    /// Adds the keys to a copy's meta.
    pub fn write(&self, meta: &mut Meta) {
        meta.insert(
            "perturbation".into(),
            MetaValue::Str(Self::label(&self.condition)),
        );
        meta.insert(
            "severity".into(),
            MetaValue::Int(i64::from(self.condition.severity)),
        );
        meta.insert("source_id".into(), MetaValue::Str(self.source_id.clone()));
        if self.boxes_dropped > 0 {
            meta.insert(
                "boxes_dropped".into(),
                MetaValue::Int(self.boxes_dropped as i64),
            );
        }
    }

    /// The keys of a copy's meta; `None` when they are not all there (not a copy).
    pub fn read(meta: &Meta) -> Option<PerturbedMeta> {
        let source_id = match meta.get("source_id")? {
            MetaValue::Str(v) => v.clone(),
            _ => return None,
        };
        let label = match meta.get("perturbation")? {
            MetaValue::Str(v) => v.clone(),
            _ => return None,
        };
        let severity = match meta.get("severity")? {
            MetaValue::Int(v) => u8::try_from(*v).ok()?,
            _ => return None,
        };
        let condition = if label == CLEAN_COPY || severity == 0 {
            Condition::clean()
        } else {
            Condition::new(label, severity)
        };
        let boxes_dropped = match meta.get("boxes_dropped") {
            Some(MetaValue::Int(v)) => usize::try_from(*v).unwrap_or(0),
            _ => 0,
        };
        Some(PerturbedMeta {
            source_id,
            condition,
            boxes_dropped,
        })
    }

    /// Removes the keys, leaving the source sample's own meta.
    pub fn strip(meta: &mut Meta) {
        for k in Self::KEYS {
            meta.remove(k);
        }
    }
}

/// A perturbed dataset folded onto its source samples.
#[derive(Debug, Clone)]
pub struct Folded {
    /// One per source id, sorted by id: the clean copy when the manifest has one.
    pub samples: Vec<Sample>,
    /// Perturbed sample id → (source id, condition).
    by_id: HashMap<String, (String, Condition)>,
    /// (source id, condition) → the sample as the model saw it (source id, moved boxes).
    seen: HashMap<(String, Condition), Sample>,
}

/// Folds `samples` if every one of them is a perturbed copy (see the module docs); `None`
/// for any other dataset.
pub fn fold(samples: &[Sample]) -> Option<Folded> {
    if samples.is_empty() {
        return None;
    }
    let mut by_id = HashMap::new();
    let mut seen = HashMap::new();
    let mut base: std::collections::BTreeMap<String, (bool, Sample)> = Default::default();
    for s in samples {
        let PerturbedMeta {
            source_id: source,
            condition,
            ..
        } = PerturbedMeta::read(&s.meta)?;
        let mut as_source = s.clone();
        as_source.id = source.clone();
        PerturbedMeta::strip(&mut as_source.meta);
        // The clean copy is the source sample; without one, a copy of an image-level
        // perturbation stands in: its frames, text and answer are the source's. A frame
        // reordering, a control (other images, or none) or an option rotation (another
        // answer) never does.
        let is_clean = condition.is_clean();
        let frames_kept = !is_clean
            && crate::perturb::find(&condition.perturbation).is_none_or(|p| p.is_image_level());
        match base.get(&source) {
            Some((true, _)) => {}
            Some((false, _)) if !is_clean => {}
            _ if is_clean || frames_kept => {
                base.insert(source.clone(), (is_clean, as_source.clone()));
            }
            _ => {}
        }
        by_id.insert(s.id.clone(), (source.clone(), condition.clone()));
        seen.insert((source, condition), as_source);
    }
    Some(Folded {
        samples: base.into_values().map(|(_, s)| s).collect(),
        by_id,
        seen,
    })
}

impl Folded {
    /// Predictions made on perturbed ids become predictions on their source id under their
    /// condition. A record that names a condition itself is left as it is.
    pub fn rewrite(&self, predictions: Vec<Prediction>) -> Vec<Prediction> {
        predictions
            .into_iter()
            .map(|mut p| {
                if p.condition.is_clean()
                    && let Some((source, condition)) = self.by_id.get(&p.id)
                {
                    p.id = source.clone();
                    p.condition = condition.clone();
                }
                p
            })
            .collect()
    }

    /// The sample as the model saw it under the prediction's condition.
    pub fn seen(&self, id: &str, condition: &Condition) -> Option<&Sample> {
        self.seen.get(&(id.to_string(), condition.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::BBox;
    use crate::sample::{GtBox, ImageRef, ImageSource, Task};
    use std::path::PathBuf;

    fn copy(source: &str, label: &str, severity: i64, x: f64) -> Sample {
        let mut meta = crate::sample::Meta::new();
        meta.insert("source_id".into(), MetaValue::Str(source.into()));
        meta.insert("perturbation".into(), MetaValue::Str(label.into()));
        meta.insert("severity".into(), MetaValue::Int(severity));
        meta.insert("modality".into(), MetaValue::Str("cxr".into()));
        Sample {
            id: format!("{source}@{label}/s{severity}"),
            images: vec![ImageRef {
                key: format!("{label}/s{severity}/a.png"),
                source: ImageSource::File(PathBuf::from("a.png")),
            }],
            question: "Where?".into(),
            task: Task::Grounding { answer: None },
            boxes: vec![GtBox {
                image: 0,
                bbox: BBox::new(x, 0.1, x + 0.2, 0.3).unwrap(),
                label: None,
            }],
            meta,
        }
    }

    #[test]
    fn copies_fold_onto_their_source_with_moved_boxes_per_condition() {
        let samples = vec![copy("q1", "rotate", 3, 0.5), copy("q1", "clean", 0, 0.1)];
        let f = fold(&samples).unwrap();
        assert_eq!(f.samples.len(), 1);
        assert_eq!(f.samples[0].id, "q1");
        assert_eq!(
            f.samples[0].boxes[0].bbox.x1, 0.1,
            "the clean copy is the source"
        );
        assert!(!f.samples[0].meta.contains_key("source_id"));
        let preds = f.rewrite(vec![
            Prediction::clean("q1@rotate/s3", "[0.5, 0.1, 0.7, 0.3]"),
            Prediction::clean("q1@clean/s0", "[0.1, 0.1, 0.3, 0.3]"),
        ]);
        assert_eq!(preds[0].id, "q1");
        assert_eq!(preds[0].condition, Condition::new("rotate", 3));
        assert!(preds[1].condition.is_clean());
        assert_eq!(
            f.seen("q1", &Condition::new("rotate", 3)).unwrap().boxes[0]
                .bbox
                .x1,
            0.5
        );
    }

    #[test]
    fn other_datasets_are_not_folded() {
        let mut s = copy("q1", "rotate", 3, 0.5);
        s.meta.remove("source_id");
        assert!(fold(&[copy("q2", "jpeg", 1, 0.1), s]).is_none());
        assert!(fold(&[]).is_none());
    }

    #[test]
    fn the_meta_the_export_writes_is_the_meta_fold_reads() {
        for (condition, dropped) in [(Condition::clean(), 0), (Condition::new("rotate", 3), 2)] {
            let m = PerturbedMeta {
                source_id: "q1".into(),
                condition,
                boxes_dropped: dropped,
            };
            let mut meta = crate::sample::Meta::new();
            meta.insert("modality".into(), MetaValue::Str("cxr".into()));
            m.write(&mut meta);
            assert_eq!(PerturbedMeta::read(&meta), Some(m.clone()));
            PerturbedMeta::strip(&mut meta);
            assert_eq!(meta.len(), 1, "{meta:?}");
        }
    }
}
