//! ROUGE-L F-measure exactly as Google's `rouge-score` computes it by default.
//!
//! ```text
//! RougeScorer(["rougeL"]).score(reference, prediction)["rougeL"].fmeasure == rouge_l(prediction, reference)
//! ```
//!
//! Defaults reproduced: no stemmer; the default tokenizer lowercases, turns every run of
//! characters outside `[a-z0-9]` into a separator and keeps the remaining runs as tokens;
//! the score is the longest common subsequence over tokens, F = 2PR / (P + R), and 0 when
//! either side has no tokens. The committed fixture `tests/fixtures/text_metrics/` checks
//! it against rouge-score to 1e-9.

/// rouge-score's default tokenizer (without stemming).
pub fn tokenize(text: &str) -> Vec<String> {
    let lower = text.to_lowercase();
    lower
        .split(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit()))
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

/// ROUGE-L F between a prediction and a reference.
pub fn rouge_l(prediction: &str, reference: &str) -> f64 {
    let target = tokenize(reference);
    let pred = tokenize(prediction);
    if target.is_empty() || pred.is_empty() {
        return 0.0;
    }
    let lcs = lcs_len(&target, &pred) as f64;
    let precision = lcs / pred.len() as f64;
    let recall = lcs / target.len() as f64;
    if precision + recall > 0.0 {
        2.0 * precision * recall / (precision + recall)
    } else {
        0.0
    }
}

/// Length of the longest common subsequence, one row of the table at a time.
fn lcs_len(a: &[String], b: &[String]) -> usize {
    let mut prev = vec![0usize; b.len() + 1];
    let mut cur = vec![0usize; b.len() + 1];
    for x in a {
        for (j, y) in b.iter().enumerate() {
            cur[j + 1] = if x == y {
                prev[j] + 1
            } else {
                prev[j + 1].max(cur[j])
            };
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizer_keeps_ascii_alphanumeric_runs_only() {
        assert_eq!(
            tokenize("Pink; RED-white 3cm!"),
            ["pink", "red", "white", "3cm"]
        );
        assert_eq!(tokenize("café"), ["caf"]);
        assert!(tokenize("—").is_empty());
    }

    #[test]
    fn lcs_f_measure() {
        // LCS of "a b c d" and "a c d e" is "a c d": P = R = 3/4.
        assert!((rouge_l("a c d e", "a b c d") - 0.75).abs() < 1e-12);
        assert_eq!(rouge_l("", "a"), 0.0);
        assert_eq!(rouge_l("x y", "a b"), 0.0);
        assert_eq!(rouge_l("Same words.", "same WORDS"), 1.0);
    }
}
