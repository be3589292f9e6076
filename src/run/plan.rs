//! The plan: every (sample, condition) pair `eval` answers, each with its content key.

use std::collections::{BTreeMap, HashMap};

use super::RunError;
use crate::config::Config;
use crate::data::Dataset;
use crate::failure::{Failure, Stage, error_chain};
use crate::infer::Model;
use crate::perturb::{Application, Modality, presets};
use crate::sample::Sample;
use crate::score::Condition;
use crate::store;

/// One (sample, condition) pair of the plan.
#[derive(Debug, Clone)]
pub(super) struct Item {
    pub sample: usize,
    pub app: Option<Application>,
    pub key: String,
}

impl Item {
    pub fn condition(&self) -> Condition {
        match &self.app {
            None => Condition::clean(),
            Some(a) => Condition::new(a.label(), a.severity),
        }
    }
}

/// Every (sample, condition) pair with its key. Samples whose images cannot be read fail
/// here, once, instead of once per condition.
pub(super) fn plan(
    cfg: &Config,
    ds: &Dataset,
    model: &Model,
    digests: &HashMap<String, Result<String, String>>,
) -> Result<Plan, RunError> {
    let severities = &cfg.perturb.severities;
    let fixed = [
        model.fingerprint().to_string(),
        model.prompt_hash(),
        model.generation_key(),
    ];
    // The images' digests are of their bytes; a DICOM window other than the file's own
    // changes the pixels the model sees, so it is part of every key (none for `auto`, so
    // keys from before the option stay valid).
    let dicom_window = match cfg.dataset.dicom_window {
        w if w.is_auto() => None,
        w => Some(format!("dicom_window={w}")),
    };
    let mut items = Vec::new();
    let mut failures = Vec::new();
    let mut skipped: BTreeMap<&'static str, usize> = BTreeMap::new();
    for (si, s) in ds.samples.iter().enumerate() {
        let mut image_hashes = Vec::with_capacity(s.images.len());
        let mut bad = None;
        for img in &s.images {
            match digests.get(&img.key) {
                Some(Ok(d)) => image_hashes.push(d.as_str()),
                Some(Err(e)) => bad = Some(e.clone()),
                None => bad = Some(format!("image {} has no digest", img.key)),
            }
        }
        if let Some(reason) = bad {
            failures.push(Failure {
                stage: Stage::Decode,
                id: Some(s.id.clone()),
                location: None,
                reason,
            });
            continue;
        }
        let content = sample_digest(s, &image_hashes, dicom_window.as_deref());
        let modality = Modality::of(s);
        if !cfg.perturb.any_modality {
            for name in presets::unsuited(&cfg.perturb.perturbations, modality) {
                *skipped.entry(name).or_default() += 1;
            }
        }
        let apps = presets::expand_for(
            &cfg.perturb.perturbations,
            severities,
            s,
            cfg.perturb.any_modality,
        )
        .map_err(|e| RunError::Invalid(format!("perturb.perturbations: {}", error_chain(&e))))?;
        let clean_key = store::key_of(&[
            fixed[0].as_bytes(),
            fixed[1].as_bytes(),
            fixed[2].as_bytes(),
            content.as_bytes(),
            b"clean",
        ]);
        items.push(Item {
            sample: si,
            app: None,
            key: clean_key,
        });
        for app in apps {
            let key = store::key_of(&[
                fixed[0].as_bytes(),
                fixed[1].as_bytes(),
                fixed[2].as_bytes(),
                content.as_bytes(),
                app.label().as_bytes(),
                &[app.severity],
                &cfg.run.seed.to_le_bytes(),
                ds.name.as_bytes(),
            ]);
            items.push(Item {
                sample: si,
                app: Some(app),
                key,
            });
        }
    }
    Ok(Plan {
        items,
        failures,
        skipped,
    })
}

/// The planned work, the samples that failed before inference, and per explicitly named
/// perturbation the samples it was not applied to because it does not suit their modality.
pub(super) struct Plan {
    pub items: Vec<Item>,
    pub failures: Vec<Failure>,
    pub skipped: BTreeMap<&'static str, usize>,
}

/// What the model is asked: the sample's text, kind, options and images (not its answer).
fn sample_digest(s: &Sample, image_hashes: &[&str], dicom_window: Option<&str>) -> String {
    let mut parts: Vec<Vec<u8>> = vec![
        s.id.as_bytes().to_vec(),
        s.question.as_bytes().to_vec(),
        s.kind().as_str().as_bytes().to_vec(),
    ];
    parts.extend(s.task.options().iter().map(|o| o.as_bytes().to_vec()));
    parts.extend(image_hashes.iter().map(|h| h.as_bytes().to_vec()));
    parts.extend(dicom_window.iter().map(|w| w.as_bytes().to_vec()));
    let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    store::key_of(&refs)
}

/// Condition first, then the sample's first image, then its id: questions on one image
/// under one condition run together.
pub(super) fn work_order<'a>(
    ds: &'a Dataset,
    i: &'a Item,
) -> (Option<(&'static str, u16, u8)>, &'a str, &'a str) {
    let s = &ds.samples[i.sample];
    (
        i.app.map(|a| a.sort_key()),
        s.images.first().map_or("", |im| im.key.as_str()),
        s.id.as_str(),
    )
}
