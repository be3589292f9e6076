//! The confidence of an answer: the probability the model gave it, for calibration
//! (docs/scoring.md, Calibration).
//!
//! ```text
//! response "The answer is B."   tokens "The"·" answer"·" is"·" B"·"."·<eos>
//! span of B = [14, 15)          → confidence = p(" B")            (scope: answer)
//! open answer "left lung"       → geometric mean of p over the tokens of the span
//! no span (option text, unparsed, box markup cut out) → geometric mean over all tokens
//!                                                                  (scope: response)
//! ```
//!
//! - From token probabilities (a decoder run, a served model's `logprobs`): the geometric
//!   mean of the probabilities of the tokens whose text overlaps the answer's span in the
//!   response. For a letter or a `yes`/`no` that is one token, this is that token's
//!   probability, the softmax at the step that emitted it.
//! - Given as one number (`confidence` in a predictions file): used as it is.

use serde::{Deserialize, Serialize};

use super::Scored;
use crate::store::TokenProb;

/// The per-sample metric whose value 1 makes an answer correct, by question kind: binary
/// correctness for calibration (token F1, the open headline, is graded, so open answers
/// use exact match).
pub const CORRECT_BY: [(&str, &str); 5] = [
    ("closed", "accuracy"),
    ("single_choice", "accuracy"),
    ("multi_choice", "accuracy"),
    ("open", "exact_match"),
    ("grounding", "acc@0.5"),
];

/// Whether a record's answer is right, by [`CORRECT_BY`]; `None` when its kind's metric
/// does not apply (a grounding question without boxes).
pub fn correct(r: &Scored) -> Option<bool> {
    let kind = r.kind.to_string();
    let metric = CORRECT_BY.iter().find(|(k, _)| *k == kind)?.1;
    r.metrics.get(metric).map(|&v| v >= 1.0 - 1e-9)
}

/// `(confidence, correct)` for a record that has both.
pub fn pair(r: &Scored) -> Option<(f64, bool)> {
    Some((r.confidence?, correct(r)?))
}

/// Where a prediction's confidence comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Confidence {
    /// One number in [0, 1], written by whoever made the predictions.
    Given(f64),
    /// Per-token probabilities with the end of each token's text in the response.
    Tokens(Vec<TokenProb>),
}

/// What a confidence was computed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// The tokens of the extracted answer.
    Answer,
    /// Every generated token: the answer had no place in the response.
    Response,
    /// Given by the predictions file.
    Given,
}

/// The confidence of an answer read at `span` (byte offsets in the response the tokens
/// spell), and what it covers. `None` without probabilities.
pub fn confidence(c: &Confidence, span: Option<(usize, usize)>) -> Option<(f64, Scope)> {
    match c {
        Confidence::Given(v) => Some((*v, Scope::Given)),
        Confidence::Tokens(t) => {
            if let Some((a, b)) = span {
                let mut start = 0;
                let mut over = Vec::new();
                for tok in t {
                    if start < b && tok.end > a {
                        over.push(tok.p);
                    }
                    start = start.max(tok.end);
                }
                if let Some(g) = geometric_mean(&over) {
                    return Some((g, Scope::Answer));
                }
            }
            let all: Vec<f64> = t.iter().map(|t| t.p).collect();
            geometric_mean(&all).map(|g| (g, Scope::Response))
        }
    }
}

/// `exp(mean(ln p))`; `None` for no values or a non-positive one.
pub fn geometric_mean(p: &[f64]) -> Option<f64> {
    if p.is_empty() || p.iter().any(|&v| v.is_nan() || v <= 0.0) {
        return None;
    }
    Some((p.iter().map(|v| v.ln()).sum::<f64>() / p.len() as f64).exp())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(v: &[(usize, f64)]) -> Confidence {
        Confidence::Tokens(v.iter().map(|&(end, p)| TokenProb { end, p }).collect())
    }

    #[test]
    fn the_answer_tokens_give_the_confidence() {
        // "The answer is B." as "The"|" answer"|" is"|" B"|"."|<eos>.
        let c = toks(&[
            (3, 0.9),
            (10, 0.8),
            (13, 0.7),
            (15, 0.6),
            (16, 0.5),
            (16, 0.4),
        ]);
        // "B" is byte 14: only the token " B" [13, 15) overlaps it.
        assert_eq!(confidence(&c, Some((14, 15))), Some((0.6, Scope::Answer)));
        // "is B" spans two tokens: their geometric mean sqrt(0.7 · 0.6).
        let (g, s) = confidence(&c, Some((11, 15))).unwrap();
        assert!((g - (0.7f64 * 0.6).sqrt()).abs() < 1e-12);
        assert_eq!(s, Scope::Answer);
        // No span: every token, the eos included: (0.9·0.8·0.7·0.6·0.5·0.4)^(1/6).
        let (g, s) = confidence(&c, None).unwrap();
        let want = (0.9f64 * 0.8 * 0.7 * 0.6 * 0.5 * 0.4).powf(1.0 / 6.0);
        assert!((g - want).abs() < 1e-12);
        assert_eq!(s, Scope::Response);
        // A span outside the tokens' text falls back to the whole response too.
        assert_eq!(
            confidence(&c, Some((40, 41))).map(|x| x.1),
            Some(Scope::Response)
        );
        assert_eq!(confidence(&toks(&[]), None), None);
        assert_eq!(
            confidence(&Confidence::Given(0.25), Some((0, 1))),
            Some((0.25, Scope::Given))
        );
    }
}
