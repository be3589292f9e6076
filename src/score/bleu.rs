//! BLEU-4 exactly as sacrebleu 2.x computes it by default, on a 0–1 scale.
//!
//! ```text
//! sacrebleu.corpus_bleu(hyps, [refs]).score / 100   ==  corpus(&stats)
//! sacrebleu.sentence_bleu(hyp, [ref]).score / 100   ==  sentence(&stats)
//! ```
//!
//! Defaults reproduced: the `13a` tokenizer (mteval-v13a, with sacrebleu's `rstrip` of each
//! segment first), case-sensitive, n-grams 1–4, one reference, `exp` smoothing (NIST
//! method 3), brevity penalty from summed lengths. [`corpus`] is `corpus_bleu`
//! (no effective order): the `bleu` metric of a group of samples. [`sentence`] is
//! `sentence_bleu` (effective order on): the per-sample value stored in `scored.jsonl`.
//! Both are computed from [`BleuStats`], the per-segment sufficient statistics, so that a
//! corpus score over any subset (a group, a bootstrap resample) is a sum and one formula.
//! `tests/fixtures/text_metrics/` checks both against sacrebleu to 1e-9. The one liberty:
//! values are capped at 1 (a perfect match is 1.0000000000000004 in sacrebleu's float
//! arithmetic).

use std::collections::HashMap;

use super::text::py_split;

pub const MAX_ORDER: usize = 4;

/// sacrebleu's `my_log(0)`: a floor instead of minus infinity.
const LOG_ZERO: f64 = -9_999_999_999.0;

/// Per-segment sufficient statistics, in sacrebleu's order: hypothesis length, reference
/// length, matched n-grams for n = 1..4, hypothesis n-grams for n = 1..4.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct BleuStats {
    pub sys_len: f64,
    pub ref_len: f64,
    pub correct: [f64; MAX_ORDER],
    pub total: [f64; MAX_ORDER],
}

impl BleuStats {
    /// The statistics of one hypothesis against one reference, both raw text.
    pub fn of(hypothesis: &str, reference: &str) -> BleuStats {
        let hyp = tokenize_13a(hypothesis.trim_end_matches(super::text::is_py_whitespace));
        let rf = tokenize_13a(reference.trim_end_matches(super::text::is_py_whitespace));
        let hyp: Vec<&str> = py_split(&hyp).collect();
        let rf: Vec<&str> = py_split(&rf).collect();
        let ref_ngrams = ngrams(&rf);
        let mut s = BleuStats {
            sys_len: hyp.len() as f64,
            ref_len: rf.len() as f64,
            ..BleuStats::default()
        };
        for (gram, count) in ngrams(&hyp) {
            let n = gram.len() - 1;
            s.total[n] += count as f64;
            if let Some(&r) = ref_ngrams.get(&gram) {
                s.correct[n] += count.min(r) as f64;
            }
        }
        s
    }

    /// As a flat list, for `scored.jsonl`.
    pub fn to_vec(self) -> Vec<f64> {
        let mut v = vec![self.sys_len, self.ref_len];
        v.extend(self.correct);
        v.extend(self.total);
        v
    }

    /// The inverse of [`BleuStats::to_vec`]; `None` if the length is wrong.
    pub fn from_slice(v: &[f64]) -> Option<BleuStats> {
        if v.len() != 2 + 2 * MAX_ORDER {
            return None;
        }
        let mut s = BleuStats {
            sys_len: v[0],
            ref_len: v[1],
            ..BleuStats::default()
        };
        s.correct.copy_from_slice(&v[2..2 + MAX_ORDER]);
        s.total.copy_from_slice(&v[2 + MAX_ORDER..]);
        Some(s)
    }

    pub fn add(&mut self, o: &BleuStats) {
        self.sys_len += o.sys_len;
        self.ref_len += o.ref_len;
        for n in 0..MAX_ORDER {
            self.correct[n] += o.correct[n];
            self.total[n] += o.total[n];
        }
    }
}

fn ngrams<'a>(tokens: &[&'a str]) -> HashMap<Vec<&'a str>, usize> {
    let mut m: HashMap<Vec<&'a str>, usize> = HashMap::new();
    for n in 1..=MAX_ORDER {
        if tokens.len() < n {
            break;
        }
        for w in tokens.windows(n) {
            *m.entry(w.to_vec()).or_default() += 1;
        }
    }
    m
}

/// `sacrebleu.corpus_bleu` on summed statistics, divided by 100.
pub fn corpus(stats: &BleuStats) -> f64 {
    compute(stats, false)
}

/// `sacrebleu.sentence_bleu` (effective order) on one segment's statistics, divided by 100.
pub fn sentence(stats: &BleuStats) -> f64 {
    compute(stats, true)
}

/// sacrebleu's `BLEU.compute_bleu` with `smooth_method="exp"`, operation for operation so
/// that the floating-point result is the same.
fn compute(s: &BleuStats, effective_order: bool) -> f64 {
    let bp = if s.sys_len < s.ref_len {
        if s.sys_len > 0.0 {
            (1.0 - s.ref_len / s.sys_len).exp()
        } else {
            0.0
        }
    } else {
        1.0
    };
    if s.correct.iter().all(|&c| c == 0.0) {
        return 0.0;
    }
    let mut precisions = [0.0f64; MAX_ORDER];
    let mut smooth_mteval = 1.0f64;
    let mut eff_order = MAX_ORDER;
    for (n, prec) in precisions.iter_mut().enumerate() {
        if s.total[n] == 0.0 {
            break;
        }
        if effective_order {
            eff_order = n + 1;
        }
        if s.correct[n] == 0.0 {
            smooth_mteval *= 2.0;
            *prec = 100.0 / (smooth_mteval * s.total[n]);
        } else {
            *prec = 100.0 * s.correct[n] / s.total[n];
        }
    }
    let mut sum = 0.0f64;
    for &p in &precisions[..eff_order] {
        sum += if p == 0.0 { LOG_ZERO } else { p.ln() };
    }
    // sacrebleu gives 100.00000000000004 for a perfect match (exp of a sum of logs); the
    // clamp keeps the value a score in [0, 1] and moves it by less than 1e-15.
    (bp * (sum / eff_order as f64).exp() / 100.0).min(1.0)
}

/// sacrebleu's `Tokenizer13a`: the mteval-v13a tokenisation used by WMT.
pub fn tokenize_13a(line: &str) -> String {
    let mut line = line
        .replace("<skipped>", "")
        .replace("-\n", "")
        .replace('\n', " ");
    if line.contains('&') {
        line = line
            .replace("&quot;", "\"")
            .replace("&amp;", "&")
            .replace("&lt;", "<")
            .replace("&gt;", ">");
    }
    let padded: Vec<char> = format!(" {line} ").chars().collect();
    let step1 = pad_symbols(&padded);
    let step2 = split_pairs(
        &step1,
        |a, b| !a.is_ascii_digit() && is_period_comma(b),
        |a, b| [Some(a), Some(' '), Some(b), Some(' ')],
    );
    let step3 = split_pairs(
        &step2,
        |a, b| is_period_comma(a) && !b.is_ascii_digit(),
        |a, b| [Some(' '), Some(a), Some(' '), Some(b)],
    );
    let step4 = split_pairs(
        &step3,
        |a, b| a.is_ascii_digit() && b == '-',
        |a, b| [Some(a), Some(' '), Some(b), Some(' ')],
    );
    let s: String = step4.into_iter().collect();
    py_split(&s).collect::<Vec<_>>().join(" ")
}

fn is_period_comma(c: char) -> bool {
    c == '.' || c == ','
}

/// `re.sub(r'([\{-\~\[-\` -\&\(-\+\:-\@\/])', r' \1 ', line)`.
fn pad_symbols(s: &[char]) -> Vec<char> {
    let mut out = Vec::with_capacity(s.len() * 2);
    for &c in s {
        let sym = matches!(c, '{'..='~' | '['..='`' | ' '..='&' | '('..='+' | ':'..='@' | '/');
        if sym {
            out.extend([' ', c, ' ']);
        } else {
            out.push(c);
        }
    }
    out
}

/// `re.sub` of a two-character pattern: leftmost, non-overlapping matches, scanned left to
/// right exactly as Python's regex engine does for a fixed-width pattern.
fn split_pairs(
    s: &[char],
    hit: impl Fn(char, char) -> bool,
    repl: impl Fn(char, char) -> [Option<char>; 4],
) -> Vec<char> {
    let mut out = Vec::with_capacity(s.len() + 8);
    let mut i = 0;
    while i < s.len() {
        if i + 1 < s.len() && hit(s[i], s[i + 1]) {
            out.extend(repl(s[i], s[i + 1]).into_iter().flatten());
            i += 2;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizer_13a_splits_like_mteval() {
        assert_eq!(tokenize_13a("Hello, world!"), "Hello , world !");
        // Periods and commas between digits stay; a dash after a digit splits.
        assert_eq!(tokenize_13a("1,000.5 cm 3-4"), "1,000.5 cm 3 - 4");
        assert_eq!(tokenize_13a("end."), "end .");
        assert_eq!(tokenize_13a("a &amp; b"), "a & b");
        // The apostrophe is outside mteval's symbol ranges.
        assert_eq!(tokenize_13a("don't"), "don't");
    }

    #[test]
    fn identical_sentences_score_one() {
        let s = BleuStats::of("the polyp was removed today", "the polyp was removed today");
        assert!((sentence(&s) - 1.0).abs() < 1e-12);
        assert!((corpus(&s) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn no_match_and_empty_hypothesis_score_zero() {
        assert_eq!(sentence(&BleuStats::of("alpha beta", "gamma delta")), 0.0);
        assert_eq!(sentence(&BleuStats::of("", "gamma delta")), 0.0);
    }

    #[test]
    fn stats_round_trip_through_a_flat_list() {
        let s = BleuStats::of("a b c d e", "a b c x e");
        assert_eq!(BleuStats::from_slice(&s.to_vec()), Some(s));
        assert_eq!(BleuStats::from_slice(&[1.0]), None);
    }
}
