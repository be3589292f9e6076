//! Open-answer text metrics: SQuAD-style normalisation, exact match and token F1.
//!
//! ```text
//! normalize("The  Polyp, removed.")  == "polyp removed"
//! exact_match("A polyp.", "polyp")   == 1.0
//! token_f1("small red polyp", "red polyp") == 0.8
//! ```
//!
//! The definitions are those of the SQuAD v2.0 evaluation script, which most VQA papers
//! reuse: lowercase; drop ASCII punctuation (Python's `string.punctuation`); drop the
//! articles `a`, `an`, `the` as whole words; collapse whitespace. Token F1 is the harmonic
//! mean of token precision and recall over the multiset of normalised tokens; when either
//! side has no tokens it is 1 if both are empty and 0 otherwise. The committed fixture
//! `tests/fixtures/text_metrics/` checks both against the Python definitions.

use std::collections::HashMap;

/// Whether Python's `str.split()` treats `c` as whitespace: Unicode `White_Space` plus the
/// ASCII information separators U+001C..U+001F, which Python counts and Rust does not.
pub fn is_py_whitespace(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `s.split()` with no arguments.
pub fn py_split(s: &str) -> impl Iterator<Item = &str> {
    s.split(is_py_whitespace).filter(|t| !t.is_empty())
}

/// SQuAD's `normalize_answer`: lowercase, drop ASCII punctuation, drop articles, collapse
/// whitespace.
pub fn normalize(s: &str) -> String {
    let lower = s.to_lowercase();
    let no_punct: String = lower
        .chars()
        .filter(|c| !c.is_ascii_punctuation())
        .collect();
    py_split(&remove_articles(&no_punct))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Python's `re.sub(r"\b(a|an|the)\b", " ", s)`: a match is exactly a maximal run of word
/// characters (alphanumerics and `_`) that spells an article.
fn remove_articles(s: &str) -> String {
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    let mut out = String::with_capacity(s.len());
    let mut run_start: Option<usize> = None;
    let flush = |out: &mut String, run: &str| {
        if matches!(run, "a" | "an" | "the") {
            out.push(' ');
        } else {
            out.push_str(run);
        }
    };
    for (i, c) in s.char_indices() {
        if is_word(c) {
            run_start.get_or_insert(i);
        } else {
            if let Some(st) = run_start.take() {
                flush(&mut out, &s[st..i]);
            }
            out.push(c);
        }
    }
    if let Some(st) = run_start {
        flush(&mut out, &s[st..]);
    }
    out
}

/// 1.0 when the normalised texts are equal, else 0.0.
pub fn exact_match(prediction: &str, reference: &str) -> f64 {
    if normalize(prediction) == normalize(reference) {
        1.0
    } else {
        0.0
    }
}

/// SQuAD v2.0 token F1 over normalised tokens.
pub fn token_f1(prediction: &str, reference: &str) -> f64 {
    let p = normalize(prediction);
    let r = normalize(reference);
    let pt: Vec<&str> = py_split(&p).collect();
    let rt: Vec<&str> = py_split(&r).collect();
    if pt.is_empty() || rt.is_empty() {
        return if pt == rt { 1.0 } else { 0.0 };
    }
    let mut counts: HashMap<&str, i64> = HashMap::new();
    for t in &rt {
        *counts.entry(t).or_default() += 1;
    }
    let mut same = 0i64;
    for t in &pt {
        if let Some(c) = counts.get_mut(t)
            && *c > 0
        {
            *c -= 1;
            same += 1;
        }
    }
    if same == 0 {
        return 0.0;
    }
    let precision = same as f64 / pt.len() as f64;
    let recall = same as f64 / rt.len() as f64;
    (2.0 * precision * recall) / (precision + recall)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_drops_case_punctuation_articles_and_spacing() {
        assert_eq!(normalize("The  Polyp, removed."), "polyp removed");
        assert_eq!(normalize("an apple a day"), "apple day");
        // Articles only as whole words: "theater" and "another" stay.
        assert_eq!(normalize("Another theater"), "another theater");
        // Non-ASCII punctuation is not in Python's string.punctuation, so it stays.
        assert_eq!(normalize("pink–red ‘x’"), "pink–red ‘x’");
        assert_eq!(normalize(""), "");
    }

    #[test]
    fn exact_match_is_on_normalised_text() {
        assert_eq!(exact_match("A polyp.", "polyp"), 1.0);
        assert_eq!(exact_match("polyps", "polyp"), 0.0);
    }

    #[test]
    fn token_f1_counts_multisets() {
        assert!((token_f1("small red polyp", "red polyp") - 0.8).abs() < 1e-12);
        // "red red" against "red": one shared token, precision 1/2, recall 1.
        assert!((token_f1("red red", "red") - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(token_f1("", ""), 1.0);
        assert_eq!(token_f1("the", "polyp"), 0.0);
        assert_eq!(token_f1("x", "y"), 0.0);
    }

    #[test]
    fn python_whitespace_includes_information_separators() {
        assert_eq!(
            py_split("a\u{1f}b  c\n").collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
    }
}
