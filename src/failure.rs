//! Per-sample failures: recorded with their reason, counted in every report, never dropped.
//!
//! A bad row or a corrupt image fails that sample and nothing else. Each stage turns its
//! typed error into a [`Failure`] with [`Failure::new`], which renders the whole `source()`
//! chain into `reason` so that the cause survives into `report.json`.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The pipeline stage where a sample failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Reading the dataset row.
    Load,
    /// Reading or decoding an image.
    Decode,
    /// Applying a perturbation.
    Perturb,
    /// Preprocessing, prompting or running the model.
    Infer,
    /// Scoring the response.
    Score,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::Load => "load",
            Stage::Decode => "decode",
            Stage::Perturb => "perturb",
            Stage::Infer => "infer",
            Stage::Score => "score",
        })
    }
}

/// One sample (or one unreadable row, which has no id yet) that could not be processed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    pub stage: Stage,
    /// The sample id, when the row got far enough to have one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Where in the input: `file:line` for text files, `file#row N` for parquet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    pub reason: String,
}

impl Failure {
    /// A failure whose reason is `err` followed by each of its sources.
    pub fn new(stage: Stage, err: &(dyn std::error::Error + 'static)) -> Failure {
        Failure {
            stage,
            id: None,
            location: None,
            reason: error_chain(err),
        }
    }

    pub fn with_id(mut self, id: impl Into<String>) -> Failure {
        self.id = Some(id.into());
        self
    }

    pub fn at(mut self, location: impl Into<String>) -> Failure {
        self.location = Some(location.into());
        self
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}]", self.stage)?;
        if let Some(loc) = &self.location {
            write!(f, " {loc}")?;
        }
        if let Some(id) = &self.id {
            write!(f, " {id}")?;
        }
        write!(f, ": {}", self.reason)
    }
}

/// `err: source: source …` on one line.
/// The message a caught panic carried (`catch_unwind`'s payload), for a failure record.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".to_string())
}

pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let s = e.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = e.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("row 3 is bad")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn reason_keeps_the_source_chain() {
        let e = Outer(std::io::Error::other("disk on fire"));
        let f = Failure::new(Stage::Load, &e).with_id("q1").at("m.jsonl:3");
        assert_eq!(f.reason, "row 3 is bad: disk on fire");
        assert_eq!(
            f.to_string(),
            "[load] m.jsonl:3 q1: row 3 is bad: disk on fire"
        );
    }
}
