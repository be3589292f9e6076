//! Answer extraction: the documented cascade of docs/design.md §5. Every prediction records the
//! [`Rule`] that fired; `unparsed` is an outcome of its own, never a guess.
//!
//! ```text
//! "Reasoning: A is unlikely, C fits.\nAnswer: C"   single_choice → C   (answer_marker)
//! "\boxed{B}"                                       single_choice → B   (boxed)
//! "The answer is (b)."                              single_choice → B   (letter)
//! "A and C"                                         multi_choice  → A,C (letter_list)
//! "Notice the effusion; no pneumothorax."           closed        → no  (yes_no)
//! ```
//!
//! Before the cascade, the *answer region* is cut from the response: `<think>…</think>`
//! blocks are dropped, and when the response has an `<answer>` tag (GEMeX's training form
//! `<answer> B <reason> … <location> …`, or `<answer>…</answer>`) only the tag's content
//! is read. Box markup is removed earlier by the scorer, for samples scored on boxes.
//!
//! Choice questions (single and multi):
//! 1. `boxed`: the last `\boxed{…}` holds the letter(s).
//! 2. `answer_marker`: the line after the last `Answer:` / `Final answer:` (any case, `*`
//!    and brackets allowed around) holds them.
//! 3. `letter` (single) / `letter_list` (multi): the letters standing alone in the text.
//!    Single: exactly one distinct letter. Multi: every letter mentioned lies in one list
//!    written `A, C`, `A and C`, `A & C`, `A/C`, `(A) (C)`, ….
//! 4. `option_text`: the option texts contained in the response (normalised, whole words;
//!    an option inside a longer matched option does not count). Single: exactly one.
//!    Multi: at least one.
//! 5. `unparsed`.
//!
//! What counts as a letter: an option letter (A… up to the number of options) that is a
//! word on its own. Lowercase letters count only in brackets `(b)`, after a marker, or in
//! `\boxed{}`; uppercase also bare or as `B.`, `B)`, `B:`. Hyphens and apostrophes join
//! words, so `B-cell` and `A's` hold no letter. A bare `A` or `I` followed by a lowercase
//! word is read as the article or pronoun ("A small nodule", "I think"), unless that word
//! is `and`, `or`, `is` or `was`.
//!
//! Closed (yes/no): `boxed`, then `answer_marker`, then `yes_no`: the first word-bounded
//! `yes` or `no` in any case ("notice" and "not" are not "no").
//!
//! Open: `open_text`, the answer region trimmed; an empty one is `unparsed`.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::text::normalize;
use crate::sample::{Task, option_letter};

/// The rule of the cascade that produced an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    Boxed,
    AnswerMarker,
    Letter,
    LetterList,
    OptionText,
    YesNo,
    OpenText,
    Unparsed,
}

impl Rule {
    pub const ALL: [Rule; 8] = [
        Rule::Boxed,
        Rule::AnswerMarker,
        Rule::Letter,
        Rule::LetterList,
        Rule::OptionText,
        Rule::YesNo,
        Rule::OpenText,
        Rule::Unparsed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Rule::Boxed => "boxed",
            Rule::AnswerMarker => "answer_marker",
            Rule::Letter => "letter",
            Rule::LetterList => "letter_list",
            Rule::OptionText => "option_text",
            Rule::YesNo => "yes_no",
            Rule::OpenText => "open_text",
            Rule::Unparsed => "unparsed",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A parsed answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    YesNo(bool),
    /// Option indices, sorted, without repeats (one for single choice).
    Letters(Vec<usize>),
    Text(String),
}

impl Answer {
    /// The manifest's spelling: `yes`/`no`, `B`, `A, C`, or the text.
    pub fn display(&self) -> String {
        match self {
            Answer::YesNo(b) => if *b { "yes" } else { "no" }.to_string(),
            Answer::Letters(v) => v
                .iter()
                .filter_map(|&i| option_letter(i))
                .map(String::from)
                .collect::<Vec<_>>()
                .join(", "),
            Answer::Text(t) => t.clone(),
        }
    }

    /// What "the same answer" means for flip rates: texts compare after normalisation.
    pub fn canonical(&self) -> String {
        match self {
            Answer::Text(t) => normalize(t),
            other => other.display(),
        }
    }
}

/// The option indices of a letters answer as [`Answer::display`] writes it (`B`, `A, C`);
/// `None` for anything else.
pub fn letters_of(display: &str) -> Option<Vec<usize>> {
    display
        .split(',')
        .map(|l| {
            let mut c = l.trim().chars();
            match (c.next(), c.next()) {
                (Some(ch @ 'A'..='Z'), None) => Some(usize::from(ch as u8 - b'A')),
                _ => None,
            }
        })
        .collect()
}

/// The outcome of the cascade.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extraction {
    pub answer: Option<Answer>,
    pub rule: Rule,
    /// Whether the answer was read from an `<answer>` tag.
    pub answer_tag: bool,
    /// Where the answer was read, as byte offsets `[start, end)` in the response given to
    /// [`extract`]: the `yes`/`no` word, the option letter (a letter list from its first
    /// letter to its last), the trimmed open answer. `None` when the answer was matched by
    /// option text (normalised, so it has no place in the raw response) or not found.
    pub span: Option<(usize, usize)>,
}

impl Extraction {
    fn found(answer: Answer, rule: Rule, answer_tag: bool) -> Extraction {
        Extraction {
            answer: Some(answer),
            rule,
            answer_tag,
            span: None,
        }
    }
    fn unparsed(answer_tag: bool) -> Extraction {
        Extraction {
            answer: None,
            rule: Rule::Unparsed,
            answer_tag,
            span: None,
        }
    }
    /// The same, read at `[start, end)` of `part`, a slice of `whole`: the span in `whole`.
    fn at(mut self, whole: &str, part: &str, (start, end): (usize, usize)) -> Extraction {
        let base = offset(whole, part);
        self.span = Some((base + start, base + end));
        self
    }
}

/// Where `part`, a subslice of `whole`, starts in it.
fn offset(whole: &str, part: &str) -> usize {
    (part.as_ptr() as usize).saturating_sub(whole.as_ptr() as usize)
}

/// Runs the cascade for the task's kind on a response (box markup already removed).
pub fn extract(task: &Task, response: &str) -> Extraction {
    let (region, tag) = answer_region(response);
    let mut e = match task {
        Task::Closed { .. } => closed(region, tag),
        Task::SingleChoice { options, .. } => choice(region, options, false, tag),
        Task::MultiChoice { options, .. } => choice(region, options, true, tag),
        Task::Open { .. } | Task::Grounding { .. } => {
            let t = region.trim();
            if t.is_empty() {
                Extraction::unparsed(tag)
            } else {
                Extraction::found(Answer::Text(t.to_string()), Rule::OpenText, tag).at(
                    region,
                    t,
                    (0, t.len()),
                )
            }
        }
    };
    // The cases above give spans in the region; the caller wants them in the response.
    let base = offset(response, region);
    e.span = e.span.map(|(a, b)| (a + base, b + base));
    e
}

/// Drops `<think>` blocks and narrows to the last `<answer>` tag's content, if any.
pub fn answer_region(response: &str) -> (&str, bool) {
    let mut s = response;
    if let Some(i) = s.rfind("</think>") {
        s = &s[i + "</think>".len()..];
    }
    let Some(i) = s.rfind("<answer>") else {
        return (s, false);
    };
    let body = &s[i + "<answer>".len()..];
    let end = ["</answer>", "<reason>", "<location>", "<answer>"]
        .iter()
        .filter_map(|t| body.find(t))
        .min()
        .unwrap_or(body.len());
    (&body[..end], true)
}

fn closed(text: &str, tag: bool) -> Extraction {
    if let Some(inner) = last_boxed(text)
        && let Some((b, span)) = yes_no_at(inner)
    {
        return Extraction::found(Answer::YesNo(b), Rule::Boxed, tag).at(text, inner, span);
    }
    if let Some(t) = marker_tail(text)
        && let Some((b, span)) = yes_no_at(t)
    {
        return Extraction::found(Answer::YesNo(b), Rule::AnswerMarker, tag).at(text, t, span);
    }
    match yes_no_at(text) {
        Some((b, span)) => {
            Extraction::found(Answer::YesNo(b), Rule::YesNo, tag).at(text, text, span)
        }
        None => Extraction::unparsed(tag),
    }
}

/// The first `yes` or `no` that is a whole word (letters, digits and `_` are word
/// characters, as `\b` in a regex).
pub fn first_yes_no(text: &str) -> Option<bool> {
    yes_no_at(text).map(|(b, _)| b)
}

/// [`first_yes_no`] with the word's byte span.
fn yes_no_at(text: &str) -> Option<(bool, (usize, usize))> {
    for (at, word) in words(text, |c| c.is_alphanumeric() || c == '_') {
        let span = (at, at + word.len());
        if word.eq_ignore_ascii_case("yes") {
            return Some((true, span));
        }
        if word.eq_ignore_ascii_case("no") {
            return Some((false, span));
        }
    }
    None
}

/// Maximal runs of word characters, with their byte offsets.
fn words(text: &str, is_word: impl Fn(char) -> bool) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        if is_word(c) {
            start.get_or_insert(i);
        } else if let Some(s) = start.take() {
            out.push((s, &text[s..i]));
        }
    }
    if let Some(s) = start {
        out.push((s, &text[s..]));
    }
    out
}

fn choice(text: &str, options: &[String], multi: bool, tag: bool) -> Extraction {
    let n = options.len();
    let pick = |set: Vec<usize>, rule: Rule| -> Option<Extraction> {
        let ok = if multi {
            !set.is_empty()
        } else {
            set.len() == 1
        };
        ok.then(|| Extraction::found(Answer::Letters(set), rule, tag))
    };
    let pick_at = |part: &str, lenient: bool, rule: Rule| -> Option<Extraction> {
        let (set, span) = letters_in(part, n, lenient)?;
        pick(set, rule).map(|e| e.at(text, part, span))
    };
    if let Some(inner) = last_boxed(text)
        && let Some(e) = pick_at(inner, true, Rule::Boxed)
    {
        return e;
    }
    if let Some(t) = marker_tail(text)
        && let Some(e) = pick_at(t, true, Rule::AnswerMarker)
    {
        return e;
    }
    let rule = if multi {
        Rule::LetterList
    } else {
        Rule::Letter
    };
    if let Some(e) = pick_at(text, false, rule) {
        return e;
    }
    let matched = option_texts(text, options);
    if let Some(e) = pick(matched, Rule::OptionText) {
        return e;
    }
    Extraction::unparsed(tag)
}

/// The content of the last `\boxed{…}` (braces balanced).
fn last_boxed(text: &str) -> Option<&str> {
    let i = text.rfind("\\boxed{")?;
    let body_start = i + "\\boxed{".len();
    let mut depth = 1usize;
    for (k, c) in text[body_start..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(&text[body_start..body_start + k]);
                }
            }
            _ => {}
        }
    }
    None
}

/// The rest of the line after the last `answer:` marker (any case; `Final answer:` ends in
/// it too); if that is blank, the next non-blank line.
fn marker_tail(text: &str) -> Option<&str> {
    let lower = text.to_ascii_lowercase();
    let mut best = None;
    let mut from = 0;
    while let Some(off) = lower[from..].find("answer") {
        let at = from + off;
        let after = at + "answer".len();
        // The word must start at a boundary ("reanswer" is not a marker).
        let boundary = lower[..at]
            .chars()
            .next_back()
            .is_none_or(|c| !c.is_alphanumeric());
        let rest = &lower[after..];
        // Allow `**Answer**:` and `Answer :` as well as `Answer:`.
        let skip = rest.len() - rest.trim_start_matches(['*', ' ', '_']).len();
        let rest2 = &rest[skip..];
        if boundary && (rest2.starts_with(':') || rest2.starts_with('：')) {
            let colon = if rest2.starts_with(':') {
                1
            } else {
                '：'.len_utf8()
            };
            best = Some(after + skip + colon);
        }
        from = after;
    }
    let start = best?;
    let tail = &text[start..];
    let mut lines = tail.split('\n');
    let first = lines.next().unwrap_or("");
    if !first
        .trim_matches(|c: char| c.is_whitespace() || c == '*')
        .is_empty()
    {
        return Some(first);
    }
    lines.find(|l| !l.trim().is_empty())
}

/// One letter mention: its option index and whether it is written in an unambiguous form.
#[derive(Debug, Clone, Copy)]
struct LetterTok {
    index: usize,
    start: usize,
    end: usize,
}

/// Word characters for letter detection: hyphens and apostrophes join words.
fn is_letter_word_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '-' | '\'' | '’')
}

/// The letters standing alone in `text` (see the module docs). `lenient` admits lowercase
/// letters in bare forms, for marker tails and `\boxed{}`.
fn letter_tokens(text: &str, n: usize, lenient: bool) -> Vec<LetterTok> {
    let mut out = Vec::new();
    let ws = words(text, is_letter_word_char);
    for (k, &(start, w)) in ws.iter().enumerate() {
        let mut chars = w.chars();
        let (Some(c), None) = (chars.next(), chars.next()) else {
            continue;
        };
        if !c.is_ascii_alphabetic() {
            continue;
        }
        let index = (c.to_ascii_uppercase() as u8 - b'A') as usize;
        if index >= n {
            continue;
        }
        let end = start + 1;
        let before = text[..start].chars().next_back();
        let after = text[end..].chars().next();
        let bracketed = matches!(before, Some('(' | '[')) && matches!(after, Some(')' | ']'));
        if c.is_ascii_lowercase() && !bracketed && !lenient {
            continue;
        }
        if !bracketed && matches!(c, 'A' | 'a' | 'I' | 'i') && reads_as_word(text, end, &ws, k) {
            continue;
        }
        out.push(LetterTok { index, start, end });
    }
    out
}

/// Whether the single letter ending at `end` is followed by a space and a lowercase word
/// other than a list joiner or a copula: the article "A", the pronoun "I".
fn reads_as_word(text: &str, end: usize, ws: &[(usize, &str)], k: usize) -> bool {
    let Some(&(next_start, next)) = ws.get(k + 1) else {
        return false;
    };
    let between = &text[end..next_start];
    if between != " " {
        return false;
    }
    let lower_start = next.chars().next().is_some_and(char::is_lowercase);
    lower_start && !matches!(next, "and" | "or" | "is" | "was")
}

/// The letter set a text gives, if its mentions are consistent: all letters mentioned lie
/// in one list (a run of letters joined only by separators), with that list's span from
/// its first letter to its last. `None` if there is no letter or the mentions are
/// scattered over several lists.
fn letters_in(text: &str, n: usize, lenient: bool) -> Option<(Vec<usize>, (usize, usize))> {
    let toks = letter_tokens(text, n, lenient);
    let first = toks.first()?;
    let mut all: Vec<usize> = toks.iter().map(|t| t.index).collect();
    all.sort_unstable();
    all.dedup();
    // Runs of tokens separated only by list separators, with their spans.
    let mut runs: Vec<(Vec<usize>, (usize, usize))> =
        vec![(vec![first.index], (first.start, first.end))];
    for w in toks.windows(2) {
        if is_separator(&text[w[0].end..w[1].start]) {
            if let Some(r) = runs.last_mut() {
                r.0.push(w[1].index);
                r.1.1 = w[1].end;
            }
        } else {
            runs.push((vec![w[1].index], (w[1].start, w[1].end)));
        }
    }
    runs.into_iter().find_map(|(mut r, span)| {
        r.sort_unstable();
        r.dedup();
        (r == all).then_some((r, span))
    })
}

/// Text between two letters of one list: whitespace, brackets, `,` `;` `&` `/` `+` `.`
/// `)` and the word `and`.
fn is_separator(between: &str) -> bool {
    let stripped: String = between
        .chars()
        .filter(|c| {
            !c.is_whitespace()
                && !matches!(
                    c,
                    ',' | ';' | '&' | '/' | '+' | '(' | ')' | '[' | ']' | '.' | ':'
                )
        })
        .collect();
    stripped.is_empty() || stripped.eq_ignore_ascii_case("and")
}

/// The options whose text the response contains, longest first, each occurrence consumed
/// so that a shorter option inside a longer one does not match again.
fn option_texts(text: &str, options: &[String]) -> Vec<usize> {
    let mut hay = format!(" {} ", normalize(text));
    let mut order: Vec<(usize, String)> = options
        .iter()
        .enumerate()
        .map(|(i, o)| (i, normalize(option_body(i, o))))
        .filter(|(_, o)| !o.is_empty())
        .collect();
    order.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(&b.0)));
    let mut found = Vec::new();
    for (i, o) in order {
        let needle = format!(" {o} ");
        if hay.contains(&needle) {
            found.push(i);
            hay = hay.replace(&needle, " | ");
        }
    }
    found.sort_unstable();
    found
}

/// An option's text without a label of its own letter (`A: Left lung` → `Left lung`).
fn option_body(i: usize, o: &str) -> &str {
    let t = o.trim_start();
    let Some(letter) = option_letter(i) else {
        return o;
    };
    let mut chars = t.chars();
    if chars.next() == Some(letter) {
        let rest = chars.as_str();
        for sep in [':', '.', ')'] {
            if let Some(r) = rest.strip_prefix(sep) {
                return r.trim_start();
            }
        }
    }
    o
}

#[cfg(test)]
mod tests;
