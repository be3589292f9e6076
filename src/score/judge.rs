//! The `judge` metric: an LLM's verdict on an open answer, given the question, the reference
//! and the response. The scorer only defines the contract ([`Judge`]) and how verdicts become
//! the metric and the agreement table; the client that asks a served model, its prompt and
//! its cache live in `run::judge`.
//!
//! - A verdict is `correct` (1), `incorrect` (0) or `unparsed` (the judge's reply was not the
//!   JSON it was asked for). Unparsed is never a guess: it gets no `judge` value, is counted,
//!   and shows in `scored.jsonl` as such.
//! - A request that fails (after the client's retries) is a scoring failure of that record,
//!   listed with its reason; the record keeps its other metrics.

use serde::{Deserialize, Serialize};

/// What a judge was asked about one record.
#[derive(Debug, Clone, Copy)]
pub struct JudgeItem<'a> {
    pub question: &'a str,
    pub reference: &'a str,
    pub response: &'a str,
}

/// A judge's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Correct,
    Incorrect,
    Unparsed,
}

impl Verdict {
    /// The metric value: 1, 0, or none for an unparsed verdict.
    pub fn value(self) -> Option<f64> {
        match self {
            Verdict::Correct => Some(1.0),
            Verdict::Incorrect => Some(0.0),
            Verdict::Unparsed => None,
        }
    }

    /// Reads a judge's reply: the first JSON object in it (code fences and words around it
    /// allowed) with a boolean `correct`. Anything else is unparsed.
    pub fn parse(reply: &str) -> Verdict {
        let (Some(start), Some(end)) = (reply.find('{'), reply.rfind('}')) else {
            return Verdict::Unparsed;
        };
        if end < start {
            return Verdict::Unparsed;
        }
        match serde_json::from_str::<serde_json::Value>(&reply[start..=end])
            .ok()
            .and_then(|v| v.get("correct").and_then(serde_json::Value::as_bool))
        {
            Some(true) => Verdict::Correct,
            Some(false) => Verdict::Incorrect,
            None => Verdict::Unparsed,
        }
    }
}

/// Gives verdicts; result `i` is for `items[i]`, or why none could be had.
pub trait Judge: Sync {
    fn verdicts(&self, items: &[JudgeItem<'_>]) -> Vec<Result<Verdict, String>>;
}

/// How the judge agrees with one string metric on the records both scored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Agreement {
    /// The metric compared, and its rule (`exact_match`, `token_f1 >= 0.5`).
    pub metric: String,
    pub n: usize,
    /// Both say right; the judge only; the metric only; both say wrong.
    pub both_correct: usize,
    pub judge_only: usize,
    pub metric_only: usize,
    pub both_incorrect: usize,
    /// The share of records where they agree.
    #[serde(serialize_with = "crate::score::stats::round6")]
    pub agreement: f64,
    /// Cohen's kappa; `null` when it is undefined (one side constant).
    pub kappa: Option<f64>,
}

/// The judge against exact match and token F1 ≥ 0.5, over open records with a parsed
/// verdict, plus how many verdicts were unparsed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JudgeAgreement {
    pub judged: usize,
    pub unparsed: usize,
    pub rows: Vec<Agreement>,
}

/// The agreement table from scored records; `None` when no record has a verdict.
pub fn agreement(scored: &[super::Scored]) -> Option<JudgeAgreement> {
    let with: Vec<&super::Scored> = scored.iter().filter(|s| s.judge.is_some()).collect();
    if with.is_empty() {
        return None;
    }
    let unparsed = with
        .iter()
        .filter(|s| s.judge == Some(Verdict::Unparsed))
        .count();
    let rows = [
        ("exact_match", "exact_match", 1.0),
        ("token_f1 >= 0.5", "token_f1", 0.5),
    ]
    .into_iter()
    .map(|(label, key, at)| {
        let mut t = [0usize; 4];
        for s in &with {
            let (Some(j), Some(m)) = (
                s.judge.and_then(Verdict::value),
                s.metrics.get(key).copied(),
            ) else {
                continue;
            };
            let (j, m) = (j >= 0.5, m >= at);
            t[match (j, m) {
                (true, true) => 0,
                (true, false) => 1,
                (false, true) => 2,
                (false, false) => 3,
            }] += 1;
        }
        let n: usize = t.iter().sum();
        let nf = n.max(1) as f64;
        let agree = (t[0] + t[3]) as f64 / nf;
        let pj = (t[0] + t[1]) as f64 / nf;
        let pm = (t[0] + t[2]) as f64 / nf;
        let chance = pj * pm + (1.0 - pj) * (1.0 - pm);
        let kappa = (n > 0 && chance < 1.0)
            .then(|| ((agree - chance) / (1.0 - chance) * 1e6).round() / 1e6);
        Agreement {
            metric: label.to_string(),
            n,
            both_correct: t[0],
            judge_only: t[1],
            metric_only: t[2],
            both_incorrect: t[3],
            agreement: if n == 0 { 0.0 } else { agree },
            kappa,
        }
    })
    .collect();
    Some(JudgeAgreement {
        judged: with.len(),
        unparsed,
        rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stub() -> crate::score::Scored {
        serde_json::from_value(serde_json::json!({
            "id": "q", "perturbation": "clean", "severity": 0, "kind": "open",
            "response": "r", "extracted": null, "rule": null,
            "unparsed_answer": false, "unparsed_boxes": false, "metrics": {}
        }))
        .unwrap()
    }

    #[test]
    fn verdicts_are_read_from_json_only() {
        assert_eq!(Verdict::parse(r#"{"correct": true}"#), Verdict::Correct);
        assert_eq!(
            Verdict::parse("```json\n{\"correct\": false, \"reason\": \"other organ\"}\n```"),
            Verdict::Incorrect
        );
        for bad in [
            "yes",
            "{\"correct\": \"yes\"}",
            "{correct: true}",
            "",
            "} {",
        ] {
            assert_eq!(Verdict::parse(bad), Verdict::Unparsed, "{bad}");
        }
    }

    #[test]
    fn kappa_follows_cohen() {
        // 20 records: both right 8, judge only 2, metric only 1, both wrong 9.
        // agreement 0.85; p_judge 0.5, p_metric 0.45; chance 0.5; kappa 0.7.
        let mut scored = Vec::new();
        for (j, m, n) in [
            (true, 1.0, 8),
            (true, 0.0, 2),
            (false, 1.0, 1),
            (false, 0.0, 9),
        ] {
            for _ in 0..n {
                let mut s = stub();
                s.judge = Some(if j {
                    Verdict::Correct
                } else {
                    Verdict::Incorrect
                });
                s.metrics.insert("exact_match", m);
                s.metrics.insert("token_f1", m);
                scored.push(s);
            }
        }
        let mut u = stub();
        u.judge = Some(Verdict::Unparsed);
        scored.push(u);
        let a = agreement(&scored).unwrap();
        assert_eq!((a.judged, a.unparsed), (21, 1));
        let em = &a.rows[0];
        assert_eq!(
            (
                em.n,
                em.both_correct,
                em.judge_only,
                em.metric_only,
                em.both_incorrect
            ),
            (20, 8, 2, 1, 9)
        );
        assert!((em.agreement - 0.85).abs() < 1e-12);
        assert_eq!(em.kappa, Some(0.7));
        assert!(agreement(&[stub()]).is_none());
    }
}
