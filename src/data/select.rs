//! Which of a loaded dataset's samples a command works on: `--filter`, `--sample`, `--limit`.
//!
//! ```text
//! $ medvqa eval --config c.toml --filter kind=closed,modality=cxr --sample 50 --sample-seed 3
//! ```
//!
//! Applied in this order, after loading:
//! 1. **filter**: `KEY=VALUE` conditions, all of which must hold. `KEY` is `kind`, `modality`,
//!    `n_images`, `id` or any meta key; `VALUE` may list alternatives with `|`
//!    (`kind=closed|single_choice`). A list-valued meta key matches if any element does.
//! 2. **sample**: a seeded random subset of N. Membership is decided by a hash of the seed and
//!    the sample id alone (the N smallest hashes), so it does not depend on the order the
//!    dataset was read in, and the chosen samples keep the dataset's order.
//! 3. **limit**: the first N.
//!
//! Samples that failed to load stay in the failure list whatever the selection: they have
//! no question to filter on, and a failure is never dropped silently.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::sample::Sample;

/// One `KEY=VALUE[|VALUE...]` condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub key: String,
    pub values: Vec<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SelectError {
    #[error("filter {0:?} is not KEY=VALUE (e.g. kind=closed, modality=cxr, set=frames)")]
    Syntax(String),
    #[error("filter key {key:?} is not a field of any sample{hint}; keys here: {known}")]
    UnknownKey {
        key: String,
        hint: String,
        known: String,
    },
    #[error("no sample matches the filter {filter}; {key} takes: {values}")]
    NothingLeft {
        filter: String,
        key: String,
        values: String,
    },
}

impl std::str::FromStr for Filter {
    type Err = SelectError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (key, value) = s
            .split_once('=')
            .ok_or_else(|| SelectError::Syntax(s.to_string()))?;
        let key = key.trim();
        let values: Vec<String> = value
            .split('|')
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .collect();
        if key.is_empty() || values.is_empty() {
            return Err(SelectError::Syntax(s.to_string()));
        }
        Ok(Filter {
            key: key.to_string(),
            values,
        })
    }
}

impl std::fmt::Display for Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}={}", self.key, self.values.join("|"))
    }
}

/// Parses `kind=closed,modality=cxr` (commas separate conditions) into filters.
pub fn parse_filters(text: &str) -> Result<Vec<Filter>, SelectError> {
    text.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::parse)
        .collect()
}

/// The selection settings, as `[dataset]` in a config holds them (`limit` is `run.limit`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selection {
    /// `KEY=VALUE[|VALUE...]` conditions, all of which must hold.
    pub filter: Vec<String>,
    /// A seeded random subset of this many samples.
    pub sample: Option<usize>,
    pub sample_seed: u64,
    /// The first N, after filter and sample.
    pub limit: Option<usize>,
}

/// What a selection did: a line for the console and the report, and the ids it left out
/// (so that `score` can tell a prediction for a left-out sample from an unknown id).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selected {
    pub note: Option<String>,
    pub left_out: BTreeSet<String>,
}

/// The values `key` has on `s`: the built-in fields, then meta (lists give each element).
fn values_of(s: &Sample, key: &str) -> Option<Vec<String>> {
    match key {
        "kind" => Some(vec![s.kind().as_str().to_string()]),
        "modality" => Some(vec![s.modality()]),
        "n_images" => Some(vec![s.images.len().to_string()]),
        "id" => Some(vec![s.id.clone()]),
        _ => s.meta.get(key).map(|v| match v {
            crate::sample::MetaValue::List(items) => items.clone(),
            other => vec![other.to_string()],
        }),
    }
}

fn matches(s: &Sample, f: &Filter) -> bool {
    values_of(s, &f.key).is_some_and(|vs| vs.iter().any(|v| f.values.contains(v)))
}

/// The hash that decides membership in a seeded sample.
fn sample_rank(seed: u64, id: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"medvqa-sample\0");
    h.update(seed.to_le_bytes());
    h.update(id.as_bytes());
    h.finalize().into()
}

impl Selection {
    pub fn is_empty(&self) -> bool {
        self.filter.is_empty() && self.sample.is_none() && self.limit.is_none()
    }

    /// Keeps the selected samples, in their order.
    pub fn apply(&self, samples: &mut Vec<Sample>) -> Result<Selected, SelectError> {
        if self.is_empty() {
            return Ok(Selected::default());
        }
        let before: Vec<String> = samples.iter().map(|s| s.id.clone()).collect();
        let total = samples.len();
        let mut steps = Vec::new();
        let filters: Vec<Filter> = self
            .filter
            .iter()
            .map(|f| parse_filters(f))
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .flatten()
            .collect();
        for f in &filters {
            if !samples.is_empty() && !samples.iter().any(|s| values_of(s, &f.key).is_some()) {
                let mut keys: BTreeSet<String> = ["kind", "modality", "n_images", "id"]
                    .map(String::from)
                    .into();
                keys.extend(samples.iter().flat_map(|s| s.meta.keys().cloned()));
                let known: Vec<&str> = keys.iter().map(String::as_str).collect();
                return Err(SelectError::UnknownKey {
                    key: f.key.clone(),
                    hint: crate::suggest::hint(&f.key, known.iter().copied()),
                    known: known.join(", "),
                });
            }
            if !samples.is_empty() && !samples.iter().any(|s| matches(s, f)) {
                let mut values: BTreeSet<String> = BTreeSet::new();
                for s in samples.iter() {
                    values.extend(values_of(s, &f.key).unwrap_or_default());
                }
                let listed: Vec<String> = values.into_iter().take(20).collect();
                return Err(SelectError::NothingLeft {
                    filter: f.to_string(),
                    key: f.key.clone(),
                    values: listed.join(", "),
                });
            }
            samples.retain(|s| matches(s, f));
        }
        if !filters.is_empty() {
            let names: Vec<String> = filters.iter().map(Filter::to_string).collect();
            steps.push(format!("filter {}", names.join(", ")));
        }
        if let Some(n) = self.sample {
            if n < samples.len() {
                let mut ranked: Vec<([u8; 32], usize)> = samples
                    .iter()
                    .enumerate()
                    .map(|(i, s)| (sample_rank(self.sample_seed, &s.id), i))
                    .collect();
                ranked.sort();
                let keep: BTreeSet<usize> = ranked.iter().take(n).map(|&(_, i)| i).collect();
                *samples = std::mem::take(samples)
                    .into_iter()
                    .enumerate()
                    .filter_map(|(i, s)| keep.contains(&i).then_some(s))
                    .collect();
            }
            steps.push(format!(
                "a seeded sample of {n} (seed {})",
                self.sample_seed
            ));
        }
        if let Some(n) = self.limit {
            samples.truncate(n);
            steps.push(format!("the first {n}"));
        }
        let kept: BTreeSet<&str> = samples.iter().map(|s| s.id.as_str()).collect();
        let left_out = before
            .into_iter()
            .filter(|id| !kept.contains(id.as_str()))
            .collect();
        Ok(Selected {
            note: Some(format!(
                "selected {} of {total} samples: {}",
                samples.len(),
                steps.join(", then ")
            )),
            left_out,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::{MetaValue, Task};

    fn sample(id: &str, kind: Task, modality: &str, tags: &[&str]) -> Sample {
        let mut meta = crate::sample::Meta::new();
        meta.insert("modality".into(), modality.into());
        meta.insert(
            "tags".into(),
            MetaValue::List(tags.iter().map(|t| t.to_string()).collect()),
        );
        Sample {
            id: id.into(),
            images: Vec::new(),
            question: "q".into(),
            task: kind,
            boxes: Vec::new(),
            meta,
        }
    }

    fn set() -> Vec<Sample> {
        let closed = || Task::Closed { answer: true };
        let open = || Task::Open { answer: "a".into() };
        vec![
            sample("a", closed(), "cxr", &["x"]),
            sample("b", open(), "cxr", &["y"]),
            sample("c", closed(), "endoscopy", &["x", "y"]),
            sample("d", open(), "endoscopy", &[]),
        ]
    }

    fn ids(s: &[Sample]) -> Vec<&str> {
        s.iter().map(|s| s.id.as_str()).collect()
    }

    fn select(filter: &[&str], sample: Option<usize>, limit: Option<usize>) -> Selection {
        Selection {
            filter: filter.iter().map(|f| f.to_string()).collect(),
            sample,
            sample_seed: 0,
            limit,
        }
    }

    #[test]
    fn filters_combine_with_and_alternatives_with_or() {
        let mut s = set();
        let got = select(&["kind=closed,modality=cxr"], None, None)
            .apply(&mut s)
            .unwrap();
        assert_eq!(ids(&s), ["a"]);
        assert_eq!(got.left_out, ["b", "c", "d"].map(String::from).into());
        assert_eq!(
            got.note.as_deref(),
            Some("selected 1 of 4 samples: filter kind=closed, modality=cxr")
        );
        let mut s = set();
        select(&["modality=cxr|endoscopy", "kind=open"], None, None)
            .apply(&mut s)
            .unwrap();
        assert_eq!(ids(&s), ["b", "d"]);
    }

    #[test]
    fn list_meta_matches_any_element() {
        let mut s = set();
        select(&["tags=y"], None, None).apply(&mut s).unwrap();
        assert_eq!(ids(&s), ["b", "c"]);
    }

    #[test]
    fn unknown_keys_and_empty_results_are_errors_that_say_what_exists() {
        let err = select(&["knd=closed"], None, None)
            .apply(&mut set())
            .unwrap_err();
        assert!(err.to_string().contains("did you mean kind?"), "{err}");
        let err = select(&["kind=closd"], None, None)
            .apply(&mut set())
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "no sample matches the filter kind=closd; kind takes: closed, open"
        );
        assert!(matches!(
            "kind".parse::<Filter>(),
            Err(SelectError::Syntax(_))
        ));
    }

    #[test]
    fn a_seeded_sample_depends_on_ids_not_on_order() {
        let mut a = set();
        select(&[], Some(2), None).apply(&mut a).unwrap();
        let mut b = set();
        b.reverse();
        select(&[], Some(2), None).apply(&mut b).unwrap();
        let mut a_ids = ids(&a);
        let mut b_ids = ids(&b);
        assert_eq!(a_ids.len(), 2);
        a_ids.sort();
        b_ids.sort();
        assert_eq!(a_ids, b_ids);
        // Another seed draws another subset somewhere among a few seeds.
        let differs = (1..10).any(|seed| {
            let mut c = set();
            Selection {
                sample: Some(2),
                sample_seed: seed,
                ..Selection::default()
            }
            .apply(&mut c)
            .unwrap();
            let mut c_ids = ids(&c);
            c_ids.sort();
            c_ids != a_ids
        });
        assert!(differs);
    }

    #[test]
    fn limit_comes_last_and_nothing_selected_changes_nothing() {
        let mut s = set();
        select(&["kind=open"], None, Some(1)).apply(&mut s).unwrap();
        assert_eq!(ids(&s), ["b"]);
        let mut s = set();
        let got = Selection::default().apply(&mut s).unwrap();
        assert_eq!((s.len(), got.note), (4, None));
    }
}
