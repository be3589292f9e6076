//! Option order (circular evaluation): whether a model's choice follows the options or
//! their positions, from the clean records and the `option-rotate` records of the same
//! questions.
//!
//! - A question is *complete* when it was answered clean and under every rotation its
//!   options allow (`k` options: rotations 1..k); only complete questions count.
//! - `circular_accuracy`: the share of complete questions answered right under every
//!   order (VLMEvalKit's CircularEval). An unparsed answer is wrong.
//! - `changed`: the share of complete questions whose chosen option(s) — the option
//!   texts, not the letters — differ between orders.
//! - Position bias: over every record of the complete questions, how often each letter
//!   is chosen against how often it is right. Rotation moves the right answer through the
//!   letters, so a letter chosen far more often than it is right is a position preference.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::Scored;
use crate::perturb::options::ROTATE;
use crate::sample::option_letter;
use crate::score::extract::letters_of;

/// Circular evaluation for one question kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CircularRow {
    /// `single_choice` or `multi_choice`.
    pub kind: String,
    /// Complete questions.
    pub n: usize,
    /// Accuracy on the clean order, over the same questions.
    #[serde(serialize_with = "crate::score::stats::round6")]
    pub clean_accuracy: f64,
    /// Accuracy over every order, every record counted.
    #[serde(serialize_with = "crate::score::stats::round6")]
    pub mean_accuracy: f64,
    /// Right under every order.
    #[serde(serialize_with = "crate::score::stats::round6")]
    pub circular_accuracy: f64,
    /// The share of questions whose chosen option(s) change with the order.
    #[serde(serialize_with = "crate::score::stats::round6")]
    pub changed: f64,
}

/// How often one letter is chosen and how often it is right.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PositionRow {
    pub kind: String,
    pub letter: String,
    /// Records of complete questions (every order).
    pub n: usize,
    /// The share of records that chose this letter (a multi-choice record may choose
    /// several).
    #[serde(serialize_with = "crate::score::stats::round6")]
    pub chosen: f64,
    /// The share of records where this letter is right.
    #[serde(serialize_with = "crate::score::stats::round6")]
    pub correct: f64,
}

/// The option-order block of the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OptionOrder {
    pub circular: Vec<CircularRow>,
    pub position_bias: Vec<PositionRow>,
}

/// One complete question: right clean, right in every order, whether its choice changed,
/// and its records in every order.
struct Question<'a> {
    clean_right: bool,
    all_right: bool,
    changed: bool,
    records: Vec<&'a Scored>,
}

/// The option-order block; `None` when no `option-rotate` record was scored.
pub fn option_order(scored: &[Scored]) -> Option<OptionOrder> {
    // id -> its records by rotation (0: clean)
    let mut by_q: BTreeMap<&str, BTreeMap<u8, &Scored>> = BTreeMap::new();
    let mut any = false;
    for r in scored {
        let rotation = if r.condition.is_clean() {
            0
        } else if r.condition.perturbation == ROTATE.name {
            any = true;
            r.condition.severity
        } else {
            continue;
        };
        if r.options.len() < 2 {
            continue;
        }
        by_q.entry(r.id.as_str()).or_default().insert(rotation, r);
    }
    if !any {
        return None;
    }
    let mut kinds: BTreeMap<String, Vec<Question<'_>>> = BTreeMap::new();
    for recs in by_q.values() {
        let Some(clean) = recs.get(&0) else { continue };
        let k = clean.options.len();
        let rotations = k.min(usize::from(ROTATE.levels) + 1);
        if (0..rotations).any(|r| !recs.contains_key(&(r as u8))) {
            continue;
        }
        let records: Vec<&Scored> = (0..rotations)
            .filter_map(|r| recs.get(&(r as u8)).copied())
            .collect();
        let right = |r: &Scored| r.metrics.get("accuracy").is_some_and(|v| *v >= 1.0);
        let chosen: BTreeSet<Option<Vec<&str>>> = records.iter().map(|r| chosen_texts(r)).collect();
        kinds
            .entry(clean.kind.to_string())
            .or_default()
            .push(Question {
                clean_right: right(clean),
                all_right: records.iter().all(|r| right(r)),
                changed: chosen.len() > 1,
                records,
            });
    }
    let mut circular = Vec::new();
    let mut position_bias = Vec::new();
    for (kind, qs) in &kinds {
        let n = qs.len();
        let share = |f: fn(&Question<'_>) -> bool| {
            qs.iter().filter(|q| f(q)).count() as f64 / n.max(1) as f64
        };
        let all: Vec<&Scored> = qs.iter().flat_map(|q| q.records.iter().copied()).collect();
        let mean_accuracy = all
            .iter()
            .map(|r| r.metrics.get("accuracy").copied().unwrap_or(0.0))
            .sum::<f64>()
            / all.len().max(1) as f64;
        circular.push(CircularRow {
            kind: kind.clone(),
            n,
            clean_accuracy: share(|q| q.clean_right),
            mean_accuracy,
            circular_accuracy: share(|q| q.all_right),
            changed: share(|q| q.changed),
        });
        let max_k = all.iter().map(|r| r.options.len()).max().unwrap_or(0);
        let mut chosen = vec![0usize; max_k];
        let mut correct = vec![0usize; max_k];
        for r in &all {
            for i in r
                .extracted
                .as_deref()
                .and_then(letters_of)
                .unwrap_or_default()
            {
                if let Some(c) = chosen.get_mut(i) {
                    *c += 1;
                }
            }
            for i in r
                .reference
                .as_deref()
                .and_then(letters_of)
                .unwrap_or_default()
            {
                if let Some(c) = correct.get_mut(i) {
                    *c += 1;
                }
            }
        }
        let total = all.len().max(1) as f64;
        for i in 0..max_k {
            position_bias.push(PositionRow {
                kind: kind.clone(),
                letter: option_letter(i).unwrap_or('?').to_string(),
                n: all.len(),
                chosen: chosen[i] as f64 / total,
                correct: correct[i] as f64 / total,
            });
        }
    }
    Some(OptionOrder {
        circular,
        position_bias,
    })
}

/// The option texts a record chose, sorted; `None` when its answer was not parsed.
fn chosen_texts(r: &Scored) -> Option<Vec<&str>> {
    let mut v: Vec<&str> = letters_of(r.extracted.as_deref()?)?
        .into_iter()
        .filter_map(|i| r.options.get(i).map(String::as_str))
        .collect();
    v.sort_unstable();
    Some(v)
}

/// One line per kind for the printed summary and the report formats.
pub fn option_order_line(o: &OptionOrder) -> Option<String> {
    let parts: Vec<String> = o
        .circular
        .iter()
        .map(|c| {
            format!(
                "{} circular accuracy {:.3} (clean {:.3}), {:.0}% change with the order (n={})",
                c.kind,
                c.circular_accuracy,
                c.clean_accuracy,
                100.0 * c.changed,
                c.n
            )
        })
        .collect();
    (!parts.is_empty()).then(|| format!("option order: {}", parts.join("; ")))
}

/// The Markdown section.
pub fn markdown(o: &mut String, x: &OptionOrder) {
    use std::fmt::Write as _;
    let f = super::fmt4;
    let _ = writeln!(
        o,
        "\n## Option order\n\nEach choice question asked in every cyclic rotation of its options (`option-rotate`); only questions answered in every order count. Circular accuracy: right in every order. Changed: the chosen option(s) differ between orders.\n"
    );
    let _ = writeln!(
        o,
        "| kind | n | clean accuracy | mean accuracy | circular accuracy | changed |"
    );
    let _ = writeln!(o, "|---|---:|---:|---:|---:|---:|");
    for c in &x.circular {
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} |",
            c.kind,
            c.n,
            f(c.clean_accuracy),
            f(c.mean_accuracy),
            f(c.circular_accuracy),
            f(c.changed)
        );
    }
    let _ = writeln!(
        o,
        "\nPosition bias: how often each letter is chosen against how often it is right, over every order.\n\n| kind | letter | n | chosen | right |\n|---|---|---:|---:|---:|"
    );
    for p in &x.position_bias {
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} |",
            p.kind,
            p.letter,
            p.n,
            f(p.chosen),
            f(p.correct)
        );
    }
}

/// The HTML section.
pub fn html(o: &mut String, x: &OptionOrder) {
    use std::fmt::Write as _;
    let esc = super::svg::esc;
    o.push_str(r#"<section id="option-order"><h2>Option order</h2><p class="note">Each choice question asked in every cyclic rotation of its options (option-rotate); only questions answered in every order count. Circular accuracy: right in every order. Changed: the chosen option(s) differ between orders.</p><table><tr><th>kind</th><th>n</th><th>clean accuracy</th><th>mean accuracy</th><th>circular accuracy</th><th>changed</th></tr>"#);
    for c in &x.circular {
        let _ = write!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td></tr>",
            esc(&c.kind),
            c.n,
            c.clean_accuracy,
            c.mean_accuracy,
            c.circular_accuracy,
            c.changed
        );
    }
    o.push_str(r#"</table><p class="note">Position bias: how often each letter is chosen against how often it is right, over every order.</p><table><tr><th>kind</th><th>letter</th><th>n</th><th>chosen</th><th>right</th></tr>"#);
    for p in &x.position_bias {
        let _ = write!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.3}</td><td>{:.3}</td></tr>",
            esc(&p.kind),
            esc(&p.letter),
            p.n,
            p.chosen,
            p.correct
        );
    }
    o.push_str("</table></section>");
}

/// `summary.csv` rows: scope `option_order` (metrics `clean_accuracy`, `mean_accuracy`,
/// `circular_accuracy`, `changed`; group = kind) and `position_bias` (metrics `chosen` and
/// `right`; dimension = kind, group = letter).
pub fn csv_rows(out: &mut String, x: &OptionOrder) {
    use std::fmt::Write as _;
    let (field, r6) = (super::csv::field, crate::score::stats::r6);
    for c in &x.circular {
        for (m, v) in [
            ("clean_accuracy", c.clean_accuracy),
            ("mean_accuracy", c.mean_accuracy),
            ("circular_accuracy", c.circular_accuracy),
            ("changed", c.changed),
        ] {
            let _ = writeln!(
                out,
                "option_order,kind,{},{},,{m},{},,,{},",
                field(&c.kind),
                ROTATE.name,
                r6(v),
                c.n
            );
        }
    }
    for p in &x.position_bias {
        for (m, v) in [("chosen", p.chosen), ("right", p.correct)] {
            let _ = writeln!(
                out,
                "position_bias,{},{},{},,{m},{},,,{},",
                field(&p.kind),
                field(&p.letter),
                ROTATE.name,
                r6(v),
                p.n
            );
        }
    }
}
