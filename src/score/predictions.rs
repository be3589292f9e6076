//! The predictions a user brings to `medvqa score`, and the rules for accepting them.
//!
//! ```text
//! {"id": "closed/row_1/1", "response": "Yes. <location> [[8, 19, 168, 142]]"}
//! {"id": "closed/row_1/1", "response": "No.", "perturbation": "gaussian-blur", "severity": 3}
//! ```
//!
//! - One JSON object per line, blank lines skipped; `id` (a string) and `response` (a
//!   string) are required; `perturbation` and `severity` are optional. Absent, or
//!   `"none"` with severity 0, means clean. A named perturbation needs a severity ≥ 1.
//!   Other fields are ignored, so a prediction store's lines can be scored as they are.
//! - Optional, for calibration: `confidence`, the probability the model gave its answer (a
//!   number in [0, 1]), or `token_probs` as a prediction store writes them
//!   (`[{"end": 3, "p": 0.91}, …]`: each generated token's probability and the byte offset
//!   in `response` where its text ends), from which the answer's confidence is derived
//!   (docs/scoring.md). `confidence` wins when both are given; a value out of range is
//!   rejected.
//! - A line that breaks these rules, an id the dataset does not have, and duplicates are
//!   [`Rejected`] with the reason, never dropped silently. Several records for one
//!   `(id, perturbation, severity)` with the same response (and confidence) keep one and
//!   reject the rest; with different responses or confidences all are rejected, since any
//!   choice would depend on the order of the file.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::confidence::Confidence;
use super::{CLEAN, Condition};
use crate::sample::Sample;
use crate::store::TokenProb;

/// One response to score.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    pub id: String,
    pub condition: Condition,
    pub response: String,
    /// The probability the model gave its answer, or the token probabilities to derive it
    /// from; `None` when the predictions carry none.
    pub confidence: Option<Confidence>,
    /// Where it came from (`file:line`), for messages.
    pub source: Option<String>,
}

impl Prediction {
    /// A clean prediction.
    pub fn clean(id: impl Into<String>, response: impl Into<String>) -> Prediction {
        Prediction {
            id: id.into(),
            condition: Condition::clean(),
            response: response.into(),
            confidence: None,
            source: None,
        }
    }
}

/// A prediction record that was not scored, and why.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Rejected {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub perturbation: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<u8>,
    pub reason: String,
    /// `file:line`; kept out of `report.json` (which must not depend on line order) and
    /// written to `rejected.jsonl` and stderr.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
}

impl Rejected {
    fn of(p: &Prediction, reason: impl Into<String>) -> Rejected {
        Rejected {
            id: Some(p.id.clone()),
            perturbation: Some(p.condition.perturbation.clone()),
            severity: Some(p.condition.severity),
            reason: reason.into(),
            location: p.source.clone(),
        }
    }

    /// The same without its location, for `report.json`.
    pub fn without_location(&self) -> Rejected {
        Rejected {
            location: None,
            ..self.clone()
        }
    }
}

/// Reads a predictions JSONL file. Bad lines come back as [`Rejected`]; only an unreadable
/// file is an error.
pub fn read_jsonl(path: &Path) -> std::io::Result<(Vec<Prediction>, Vec<Rejected>)> {
    let f = std::fs::File::open(path)?;
    let name = path.display().to_string();
    let mut preds = Vec::new();
    let mut rejected = Vec::new();
    let mut first = true;
    for (i, line) in BufReader::new(f).lines().enumerate() {
        let line = line?;
        // Editors on Windows start a UTF-8 file with a byte-order mark.
        let line = match line.strip_prefix('\u{feff}') {
            Some(rest) if i == 0 => rest.to_string(),
            _ => line,
        };
        if line.trim().is_empty() {
            continue;
        }
        if std::mem::take(&mut first) && line.trim_start().starts_with('[') {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "{name}:{}: a JSON array; predictions are JSON Lines: write one JSON object per line",
                    i + 1
                ),
            ));
        }
        let loc = format!("{name}:{}", i + 1);
        match parse_line(&line) {
            Ok(mut p) => {
                p.source = Some(loc);
                preds.push(p);
            }
            Err((id, reason)) => rejected.push(Rejected {
                id,
                perturbation: None,
                severity: None,
                reason,
                location: Some(loc),
            }),
        }
    }
    Ok((preds, rejected))
}

/// Parses one line; on error returns the id if it could be read, and the reason.
pub fn parse_line(line: &str) -> Result<Prediction, (Option<String>, String)> {
    let v: Value =
        serde_json::from_str(line).map_err(|e| (None, format!("not valid JSON: {e}")))?;
    let Value::Object(o) = v else {
        return Err((None, "not a JSON object".to_string()));
    };
    let id = match o.get("id") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::String(_)) => return Err((None, "empty id".to_string())),
        Some(other) => return Err((None, format!("id must be a string, got {other}"))),
        None => return Err((None, "no id".to_string())),
    };
    let bad = |reason: String| (Some(id.clone()), reason);
    let response = match o.get("response") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => return Err(bad("no response".to_string())),
        Some(other) => return Err(bad(format!("response must be a string, got {other}"))),
    };
    let perturbation = match o.get("perturbation") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
        Some(other) => {
            return Err(bad(format!(
                "perturbation must be a non-empty string, got {other}"
            )));
        }
    };
    let severity = match o.get("severity") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => match n.as_u64().and_then(|v| u8::try_from(v).ok()) {
            Some(s) => Some(s),
            None => return Err(bad(format!("severity must be an integer 0-255, got {n}"))),
        },
        Some(other) => return Err(bad(format!("severity must be an integer, got {other}"))),
    };
    let condition = match (perturbation, severity) {
        (None, None | Some(0)) => Condition::clean(),
        (Some(p), None | Some(0)) if p == CLEAN => Condition::clean(),
        (None, Some(s)) => {
            return Err(bad(format!(
                "severity {s} without a perturbation; clean predictions have severity 0"
            )));
        }
        (Some(p), Some(s)) if p == CLEAN => {
            return Err(bad(format!(
                "perturbation \"none\" with severity {s}; clean predictions have severity 0"
            )));
        }
        (Some(p), None | Some(0)) => {
            return Err(bad(format!(
                "perturbation {p:?} needs a severity of 1 or more"
            )));
        }
        (Some(p), Some(s)) => Condition::new(p, s),
    };
    let confidence = match (o.get("confidence"), o.get("token_probs")) {
        (Some(v), _) if !v.is_null() => match v.as_f64() {
            Some(c) if (0.0..=1.0).contains(&c) => Some(Confidence::Given(c)),
            _ => {
                return Err(bad(format!(
                    "confidence must be a number in [0, 1], got {v}"
                )));
            }
        },
        (_, Some(v)) if !v.is_null() => match serde_json::from_value::<Vec<TokenProb>>(v.clone()) {
            Ok(t) if valid_tokens(&t, response.len()) => Some(Confidence::Tokens(t)),
            _ => {
                return Err(bad(
                    "token_probs must be a list of {end, p} with p in (0, 1] and ends \
                         rising within the response"
                        .to_string(),
                ));
            }
        },
        _ => None,
    };
    Ok(Prediction {
        id,
        condition,
        response,
        confidence,
        source: None,
    })
}

/// Whether token probabilities can stand for a response of `len` bytes: each `p` in
/// (0, 1], ends never moving back and within the response.
pub fn valid_tokens(t: &[TokenProb], len: usize) -> bool {
    let mut last = 0;
    t.iter().all(|tok| {
        let ok = tok.p > 0.0 && tok.p <= 1.0 && tok.end >= last && tok.end <= len;
        last = tok.end;
        ok
    })
}

/// Splits predictions into those to score and those refused (module docs). The accepted
/// list is sorted by `(id, condition)`; the rejected list is sorted too.
pub fn accept(
    predictions: &[Prediction],
    samples: &HashMap<&str, &Sample>,
) -> (Vec<Prediction>, Vec<Rejected>) {
    let mut groups: BTreeMap<(&str, &Condition), Vec<&Prediction>> = BTreeMap::new();
    let mut rejected = Vec::new();
    for p in predictions {
        if samples.contains_key(p.id.as_str()) {
            groups
                .entry((p.id.as_str(), &p.condition))
                .or_default()
                .push(p);
        } else {
            rejected.push(Rejected::of(
                p,
                "unknown id: the dataset has no such sample",
            ));
        }
    }
    let mut accepted = Vec::with_capacity(groups.len());
    for (_, group) in groups {
        let first = group[0];
        if group.len() == 1 {
            accepted.push(first.clone());
        } else if group
            .iter()
            .all(|p| p.response == first.response && p.confidence == first.confidence)
        {
            accepted.push(first.clone());
            for p in &group[1..] {
                rejected.push(Rejected::of(
                    p,
                    format!(
                        "duplicate: {} records with the same response for this id and condition; one was scored",
                        group.len()
                    ),
                ));
            }
        } else {
            for p in &group {
                rejected.push(Rejected::of(
                    p,
                    format!(
                        "conflicting duplicates: {} records with different responses (or confidences) for this id and condition; none was scored",
                        group.len()
                    ),
                ));
            }
        }
    }
    rejected.sort();
    (accepted, rejected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bom_is_read_and_a_json_array_gets_one_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let bom = dir.path().join("bom.jsonl");
        std::fs::write(&bom, "\u{feff}{\"id\": \"q1\", \"response\": \"yes\"}\n").unwrap();
        let (preds, rejected) = read_jsonl(&bom).unwrap();
        assert_eq!((preds.len(), rejected.len()), (1, 0));
        let array = dir.path().join("array.json");
        std::fs::write(
            &array,
            "[\n  {\"id\": \"q1\", \"response\": \"yes\"},\n  {\"id\": \"q2\", \"response\": \"no\"}\n]\n",
        )
        .unwrap();
        let err = read_jsonl(&array).unwrap_err().to_string();
        assert!(err.contains("write one JSON object per line"), "{err}");
    }

    #[test]
    fn clean_and_perturbed_lines_parse() {
        let p = parse_line(r#"{"id": "q1", "response": "yes", "extra": 1}"#).unwrap();
        assert_eq!(p.condition, Condition::clean());
        let p = parse_line(r#"{"id":"q1","response":"no","perturbation":"blur","severity":3}"#)
            .unwrap();
        assert_eq!(p.condition, Condition::new("blur", 3));
        let p =
            parse_line(r#"{"id":"q1","response":"","perturbation":"none","severity":0}"#).unwrap();
        assert!(p.condition.is_clean());
    }

    #[test]
    fn a_confidence_is_read_and_checked() {
        let p = parse_line(r#"{"id": "q1", "response": "yes", "confidence": 0.75}"#).unwrap();
        assert_eq!(p.confidence, Some(Confidence::Given(0.75)));
        let p =
            parse_line(r#"{"id": "q1", "response": "yes", "token_probs": [{"end": 3, "p": 0.5}]}"#)
                .unwrap();
        assert_eq!(
            p.confidence,
            Some(Confidence::Tokens(vec![TokenProb { end: 3, p: 0.5 }]))
        );
        for line in [
            r#"{"id": "q1", "response": "yes", "confidence": 1.5}"#,
            r#"{"id": "q1", "response": "yes", "confidence": -0.1}"#,
            r#"{"id": "q1", "response": "yes", "confidence": "high"}"#,
            r#"{"id": "q1", "response": "yes", "token_probs": [{"end": 9, "p": 0.5}]}"#,
            r#"{"id": "q1", "response": "yes", "token_probs": [{"end": 1, "p": 0}]}"#,
            r#"{"id": "q1", "response": "yes", "token_probs": "x"}"#,
        ] {
            let (id, why) = parse_line(line).unwrap_err();
            assert_eq!(id.as_deref(), Some("q1"));
            assert!(
                why.contains("confidence") || why.contains("token_probs"),
                "{why}"
            );
        }
    }

    #[test]
    fn duplicates_that_differ_only_in_confidence_conflict() {
        let sample = crate::score::tests::battery()
            .into_iter()
            .find(|s| s.id == "closed")
            .unwrap();
        let samples: HashMap<&str, &Sample> = [("closed", &sample)].into_iter().collect();
        let mut a = Prediction::clean("closed", "yes");
        a.confidence = Some(Confidence::Given(0.9));
        let mut b = a.clone();
        b.confidence = Some(Confidence::Given(0.2));
        let (ok, rejected) = accept(&[a.clone(), b], &samples);
        assert!(ok.is_empty());
        assert_eq!(rejected.len(), 2);
        assert!(rejected[0].reason.contains("conflicting"));
        let (ok, rejected) = accept(&[a.clone(), a], &samples);
        assert_eq!((ok.len(), rejected.len()), (1, 1));
    }

    #[test]
    fn bad_lines_say_why() {
        for (line, why) in [
            ("not json", "not valid JSON"),
            (r#"{"response": "x"}"#, "no id"),
            (r#"{"id": 3, "response": "x"}"#, "id must be a string"),
            (r#"{"id": "q", "response": null}"#, "no response"),
            (
                r#"{"id": "q", "response": "x", "severity": 2}"#,
                "without a perturbation",
            ),
            (
                r#"{"id": "q", "response": "x", "perturbation": "blur"}"#,
                "needs a severity",
            ),
            (
                r#"{"id": "q", "response": "x", "perturbation": "none", "severity": 1}"#,
                "clean predictions",
            ),
            (
                r#"{"id": "q", "response": "x", "perturbation": "blur", "severity": 300}"#,
                "0-255",
            ),
        ] {
            let err = parse_line(line).unwrap_err();
            assert!(err.1.contains(why), "{line}: {}", err.1);
        }
    }
}
