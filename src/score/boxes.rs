//! Boxes in model responses: parsers tied to declared frames, optimal matching, and the
//! grounding metrics of docs/design.md §4.
//!
//! ```text
//! "No. <location> [[43, 35, 212, 156]]"       location_tag  frame: the caller's (GEMeX: pixels:224x224)
//! "[0.1, 0.2, 0.5, 0.6]", "[[..], [..]]"      json          frame: the caller's
//! "<|box_start|>(100,200),(500,600)<|box_end|>"  qwen_box   frame: grid:1000 (Qwen2-VL)
//! "polyp<loc_100><loc_200><loc_500><loc_600>"  florence_loc  1000 bins, value = (bin + 0.5) / 1000
//! "<loc0200><loc0100><loc0600><loc0500> polyp"  paligemma_loc  1024 bins, y first, value = bin / 1024
//! ```
//!
//! - [`find_boxes`] picks the syntax by its unambiguous markup, in the order of
//!   [`BoxSyntax::DETECTION_ORDER`], and reads every box written in that syntax. The model
//!   specific syntaxes carry their own frame; the generic ones (`<location>` and plain JSON
//!   lists) are read in the frame the caller declares (`--box-frame`). No frame is ever
//!   guessed from the numbers and no box is scored under two frames.
//! - A box written in the syntax but unusable (corners inverted, a bin out of range, an
//!   image index that does not exist) still counts as a predicted box: it matches nothing.
//! - Boxes refer to the image of the sample's first ground-truth box unless the response
//!   names one, JSON-style: `{"image": 1, "box": [x1, y1, x2, y2]}` (also `"bbox"`,
//!   `"bbox_2d"`). Boxes on different images never overlap.
//! - [`ground`] matches predictions to ground truth by the optimal one-to-one assignment
//!   (maximum total IoU, [`assign`]); the question's IoU is the matched sum over
//!   `max(#pred, #gt)`.

use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::geometry::{BBox, BoxError, BoxFrame};
use crate::sample::GtBox;

/// The box syntaxes medvqa reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BoxSyntax {
    /// Qwen2-VL: `<|box_start|>(x1,y1),(x2,y2)<|box_end|>` on a 0–1000 grid.
    QwenBox,
    /// Florence-2: four `<loc_N>` tokens, N in 0..=999 bins.
    FlorenceLoc,
    /// PaliGemma: four `<locNNNN>` tokens, y first, N in 0..=1023 of 1024 bins.
    PaligemmaLoc,
    /// GEMeX's training form: `<location> [[x1, y1, x2, y2], ...]`, in the caller's frame.
    LocationTag,
    /// JSON lists `[x1, y1, x2, y2]`, lists of them, or objects holding them, in the
    /// caller's frame.
    Json,
}

impl BoxSyntax {
    /// The order in which [`find_boxes`] looks for each syntax's markup: model-specific
    /// tokens first, bare JSON lists last because their brackets are the least specific.
    pub const DETECTION_ORDER: [BoxSyntax; 5] = [
        BoxSyntax::QwenBox,
        BoxSyntax::FlorenceLoc,
        BoxSyntax::PaligemmaLoc,
        BoxSyntax::LocationTag,
        BoxSyntax::Json,
    ];

    pub fn name(self) -> &'static str {
        match self {
            BoxSyntax::QwenBox => "qwen_box",
            BoxSyntax::FlorenceLoc => "florence_loc",
            BoxSyntax::PaligemmaLoc => "paligemma_loc",
            BoxSyntax::LocationTag => "location_tag",
            BoxSyntax::Json => "json",
        }
    }

    /// The frame this syntax declares for itself, or `None` for the generic syntaxes, which
    /// are read in the frame the caller names. Florence's half-bin centre is applied while
    /// parsing, so its numbers are then on a plain 1000 grid.
    pub fn declared_frame(self) -> Option<BoxFrame> {
        match self {
            BoxSyntax::QwenBox | BoxSyntax::FlorenceLoc => Some(BoxFrame::Grid(1000)),
            BoxSyntax::PaligemmaLoc => Some(BoxFrame::Grid(1024)),
            BoxSyntax::LocationTag | BoxSyntax::Json => None,
        }
    }
}

/// One box as written: corners `[x1, y1, x2, y2]` in the syntax's frame (PaliGemma's
/// y-first order already swapped), or `None` when the markup was there but the numbers
/// were not usable.
#[derive(Debug, Clone, PartialEq)]
pub struct RawBox {
    pub image: Option<usize>,
    pub coords: Option<[f64; 4]>,
}

/// Every box of the first syntax found in a response.
#[derive(Debug, Clone, PartialEq)]
pub struct RawBoxes {
    pub syntax: BoxSyntax,
    pub boxes: Vec<RawBox>,
    /// Byte ranges of the response the boxes were written in; removed from the answer text.
    pub spans: Vec<Range<usize>>,
}

/// Finds the boxes in a response, or `None` when it holds no box markup at all.
pub fn find_boxes(response: &str) -> Option<RawBoxes> {
    BoxSyntax::DETECTION_ORDER.into_iter().find_map(|syntax| {
        let (boxes, spans) = match syntax {
            BoxSyntax::QwenBox => qwen(response),
            BoxSyntax::FlorenceLoc => loc_runs(response, LocKind::Florence),
            BoxSyntax::PaligemmaLoc => loc_runs(response, LocKind::PaliGemma),
            BoxSyntax::LocationTag => location_tag(response),
            BoxSyntax::Json => json_lists(response, 0..response.len()),
        };
        (!boxes.is_empty()).then_some(RawBoxes {
            syntax,
            boxes,
            spans,
        })
    })
}

/// The response with the given byte ranges cut out (ranges may be unsorted).
pub fn strip_spans(response: &str, spans: &[Range<usize>]) -> String {
    let mut sorted: Vec<&Range<usize>> = spans.iter().collect();
    sorted.sort_by_key(|r| r.start);
    let mut out = String::with_capacity(response.len());
    let mut at = 0;
    for r in sorted {
        if r.start >= at {
            out.push_str(&response[at..r.start]);
            out.push(' ');
            at = r.end;
        }
    }
    out.push_str(&response[at..]);
    out
}

/// A predicted box ready to match: normalised, on a known image; `None` if unusable.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PredBox {
    pub image: usize,
    pub bbox: Option<BBox>,
}

/// Why a box could not be normalised for reasons outside the response: the frame needs an
/// image size nobody could read.
#[derive(Debug, thiserror::Error)]
#[error("box on image {image}: {source}")]
pub struct FrameError {
    pub image: usize,
    #[source]
    pub source: BoxError,
}

/// Converts raw boxes to normalised predictions. `frame` is the caller's frame for the
/// generic syntaxes; `image_size(i)` gives image `i`'s `(width, height)` for the `pixels`
/// frame. A box whose numbers are unusable becomes `bbox: None`; a missing image size is
/// an error, because it is not the model's fault.
pub fn normalize_boxes(
    raw: &RawBoxes,
    frame: BoxFrame,
    default_image: usize,
    n_images: usize,
    image_size: &dyn Fn(usize) -> Option<(u32, u32)>,
) -> Result<Vec<PredBox>, FrameError> {
    let frame = raw.syntax.declared_frame().unwrap_or(frame);
    let mut out = Vec::with_capacity(raw.boxes.len());
    for b in &raw.boxes {
        let image = b.image.unwrap_or(default_image);
        let bbox = match b.coords {
            Some(c) if image < n_images => {
                let size = if frame.needs_image_size() {
                    Some(image_size(image).ok_or(FrameError {
                        image,
                        source: BoxError::NeedsImageSize { frame },
                    })?)
                } else {
                    None
                };
                match frame.normalize(c, size) {
                    Ok(b) => Some(b),
                    Err(BoxError::NeedsImageSize { frame }) => {
                        return Err(FrameError {
                            image,
                            source: BoxError::NeedsImageSize { frame },
                        });
                    }
                    Err(_) => None,
                }
            }
            _ => None,
        };
        out.push(PredBox { image, bbox });
    }
    Ok(out)
}

/// The grounding outcome of one question.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Grounding {
    /// Sum of matched IoUs over `max(#pred, #gt)`; 0 when nothing was predicted.
    pub iou: f64,
    pub n_pred: usize,
    pub n_gt: usize,
    /// Ground-truth boxes whose matched prediction has IoU ≥ 0.5.
    pub gt_hits_at_05: usize,
}

/// Scores predicted boxes against ground truth (docs/design.md §4).
pub fn ground(pred: &[PredBox], gt: &[GtBox]) -> Grounding {
    let n_pred = pred.len();
    let n_gt = gt.len();
    let denom = n_pred.max(n_gt);
    if n_pred == 0 || n_gt == 0 {
        return Grounding {
            iou: 0.0,
            n_pred,
            n_gt,
            gt_hits_at_05: 0,
        };
    }
    let w: Vec<Vec<f64>> = pred
        .iter()
        .map(|p| {
            gt.iter()
                .map(|g| match p.bbox {
                    Some(b) if p.image == g.image => b.iou(&g.bbox),
                    _ => 0.0,
                })
                .collect()
        })
        .collect();
    let pairs = assign(&w);
    let mut sum = 0.0;
    let mut hits = 0;
    for &(i, j) in &pairs {
        sum += w[i][j];
        if w[i][j] >= 0.5 {
            hits += 1;
        }
    }
    Grounding {
        iou: sum / denom as f64,
        n_pred,
        n_gt,
        gt_hits_at_05: hits,
    }
}

/// The one-to-one assignment of rows to columns with the largest total weight (Hungarian
/// algorithm, O(n²m) for n ≤ m). Returns `(row, col)` pairs, `min(rows, cols)` of them.
/// Weights must be finite.
pub fn assign(w: &[Vec<f64>]) -> Vec<(usize, usize)> {
    let rows = w.len();
    let cols = w.first().map_or(0, Vec::len);
    if rows == 0 || cols == 0 {
        return Vec::new();
    }
    if rows > cols {
        let t: Vec<Vec<f64>> = (0..cols)
            .map(|j| (0..rows).map(|i| w[i][j]).collect())
            .collect();
        return assign(&t).into_iter().map(|(j, i)| (i, j)).collect();
    }
    // Minimise cost = -weight with potentials (1-based arrays, column 0 is the virtual one).
    let (n, m) = (rows, cols);
    let cost = |i: usize, j: usize| -w[i - 1][j - 1];
    let mut u = vec![0.0f64; n + 1];
    let mut v = vec![0.0f64; m + 1];
    let mut p = vec![0usize; m + 1];
    let mut way = vec![0usize; m + 1];
    for i in 1..=n {
        p[0] = i;
        let mut j0 = 0usize;
        let mut minv = vec![f64::INFINITY; m + 1];
        let mut used = vec![false; m + 1];
        loop {
            used[j0] = true;
            let i0 = p[j0];
            let mut delta = f64::INFINITY;
            let mut j1 = 0usize;
            for j in 1..=m {
                if !used[j] {
                    let cur = cost(i0, j) - u[i0] - v[j];
                    if cur < minv[j] {
                        minv[j] = cur;
                        way[j] = j0;
                    }
                    if minv[j] < delta {
                        delta = minv[j];
                        j1 = j;
                    }
                }
            }
            for j in 0..=m {
                if used[j] {
                    u[p[j]] += delta;
                    v[j] -= delta;
                } else {
                    minv[j] -= delta;
                }
            }
            j0 = j1;
            if p[j0] == 0 {
                break;
            }
        }
        loop {
            let j1 = way[j0];
            p[j0] = p[j1];
            j0 = j1;
            if j0 == 0 {
                break;
            }
        }
    }
    let mut out: Vec<(usize, usize)> = (1..=m)
        .filter(|&j| p[j] != 0)
        .map(|j| (p[j] - 1, j - 1))
        .collect();
    out.sort_unstable();
    out
}

// ---------------------------------------------------------------------------------------
// Parsers. Each returns the boxes it read and the byte spans it read them from.

type Parsed = (Vec<RawBox>, Vec<Range<usize>>);

const QWEN_START: &str = "<|box_start|>";
const QWEN_END: &str = "<|box_end|>";

fn qwen(s: &str) -> Parsed {
    let mut boxes = Vec::new();
    let mut spans = Vec::new();
    let mut at = 0;
    while let Some(off) = s[at..].find(QWEN_START) {
        let start = at + off;
        let body_start = start + QWEN_START.len();
        let Some(end_off) = s[body_start..].find(QWEN_END) else {
            break;
        };
        let body = &s[body_start..body_start + end_off];
        let end = body_start + end_off + QWEN_END.len();
        boxes.push(RawBox {
            image: None,
            coords: qwen_body(body),
        });
        spans.push(start..end);
        at = end;
    }
    (boxes, spans)
}

/// `(x1,y1),(x2,y2)`, whitespace allowed.
fn qwen_body(body: &str) -> Option<[f64; 4]> {
    let cleaned: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    let inner = cleaned.strip_prefix('(')?.strip_suffix(')')?;
    let (a, b) = inner.split_once("),(")?;
    let (x1, y1) = a.split_once(',')?;
    let (x2, y2) = b.split_once(',')?;
    Some([num(x1)?, num(y1)?, num(x2)?, num(y2)?])
}

fn num(s: &str) -> Option<f64> {
    let v: f64 = s.trim().parse().ok()?;
    v.is_finite().then_some(v)
}

#[derive(Clone, Copy, PartialEq)]
enum LocKind {
    /// `<loc_N>`, any number of digits, N ≤ 999.
    Florence,
    /// `<locNNNN>`, exactly four digits, N ≤ 1023, y first.
    PaliGemma,
}

/// Reads one loc token at byte `i`: `(value, end)`.
fn loc_token(s: &str, i: usize, kind: LocKind) -> Option<(u32, usize)> {
    let rest = s.get(i..)?;
    let prefix = match kind {
        LocKind::Florence => "<loc_",
        LocKind::PaliGemma => "<loc",
    };
    let digits_start = rest.strip_prefix(prefix)?;
    let n_digits = digits_start.bytes().take_while(u8::is_ascii_digit).count();
    let ok_len = match kind {
        LocKind::Florence => (1..=6).contains(&n_digits),
        LocKind::PaliGemma => n_digits == 4,
    };
    if !ok_len || digits_start.as_bytes().get(n_digits) != Some(&b'>') {
        return None;
    }
    let v: u32 = digits_start[..n_digits].parse().ok()?;
    Some((v, i + prefix.len() + n_digits + 1))
}

/// Runs of consecutive loc tokens (whitespace allowed between), cut into boxes of four.
/// A run whose length is not a multiple of four ends in one unusable box.
fn loc_runs(s: &str, kind: LocKind) -> Parsed {
    let mut boxes = Vec::new();
    let mut spans = Vec::new();
    let mut i = 0;
    while let Some(off) = s[i..].find("<loc") {
        let start = i + off;
        let mut vals = Vec::new();
        let mut end = start;
        let mut j = start;
        while let Some((v, e)) = loc_token(s, j, kind) {
            vals.push(v);
            end = e;
            j = e + s[e..].len() - s[e..].trim_start().len();
        }
        if vals.is_empty() {
            i = start + 4;
            continue;
        }
        for chunk in vals.chunks(4) {
            boxes.push(RawBox {
                image: None,
                coords: loc_box(chunk, kind),
            });
        }
        spans.push(start..end);
        i = end;
    }
    (boxes, spans)
}

fn loc_box(chunk: &[u32], kind: LocKind) -> Option<[f64; 4]> {
    let [a, b, c, d]: [u32; 4] = chunk.try_into().ok()?;
    match kind {
        LocKind::Florence => {
            if [a, b, c, d].iter().any(|&v| v > 999) {
                return None;
            }
            // Florence-2's dequantisation: the centre of each bin.
            let f = |v: u32| v as f64 + 0.5;
            Some([f(a), f(b), f(c), f(d)])
        }
        LocKind::PaliGemma => {
            if [a, b, c, d].iter().any(|&v| v > 1023) {
                return None;
            }
            Some([b as f64, a as f64, d as f64, c as f64])
        }
    }
}

const LOCATION_TAG: &str = "<location>";

/// `<location>` followed by a bracketed list; the list is read as JSON boxes.
fn location_tag(s: &str) -> Parsed {
    let mut boxes = Vec::new();
    let mut spans = Vec::new();
    let mut at = 0;
    while let Some(off) = s[at..].find(LOCATION_TAG) {
        let start = at + off;
        let after = start + LOCATION_TAG.len();
        let ws = s[after..].len() - s[after..].trim_start().len();
        let open = after + ws;
        let end = if s[open..].starts_with('[') {
            matching_bracket(s, open).map_or(s.len(), |c| c + 1)
        } else {
            after
        };
        let (b, _) = json_lists(s, open..end);
        if b.is_empty() {
            // A tag with nothing usable after it is still a box the model tried to give.
            boxes.push(RawBox {
                image: None,
                coords: None,
            });
        } else {
            boxes.extend(b);
        }
        spans.push(start..end);
        at = end.max(after);
    }
    (boxes, spans)
}

/// The byte index of the `]` that closes the `[` at `open`.
fn matching_bracket(s: &str, open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (i, c) in s[open..].char_indices() {
        match c {
            '[' => depth += 1,
            ']' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(open + i);
                }
            }
            _ => {}
        }
    }
    None
}

/// Every `[n, n, n, n]` list inside `range`, with an `"image": N` from an enclosing JSON
/// object if there is one. Spans cover whole bracketed groups of boxes (or the enclosing
/// object) so that stripping them leaves the prose.
fn json_lists(s: &str, range: Range<usize>) -> Parsed {
    let bytes = s.as_bytes();
    let mut boxes = Vec::new();
    let mut spans = Vec::new();
    let mut i = range.start;
    while i < range.end {
        if bytes[i] == b'['
            && let Some((end, found)) = box_group(s, i, range.end)
        {
            let (span, image) = match enclosing_object(s, i, range.clone()) {
                Some(obj) => {
                    let image = object_image(&s[obj.clone()]);
                    (obj, image)
                }
                None => (i..end, None),
            };
            boxes.extend(found.into_iter().map(|coords| RawBox {
                image,
                coords: Some(coords),
            }));
            i = span.end.max(end);
            spans.push(span);
            continue;
        }
        i += 1;
    }
    (boxes, spans)
}

/// At `[`: a 4-number list, or a list whose items are all such lists (nested any depth).
/// Returns the end (one past `]`) and the boxes.
fn box_group(s: &str, open: usize, limit: usize) -> Option<(usize, Vec<[f64; 4]>)> {
    let close = matching_bracket(s, open)?;
    if close >= limit {
        return None;
    }
    let inner = &s[open + 1..close];
    if !inner.contains('[') {
        let nums: Vec<&str> = inner.split(',').collect();
        if nums.len() != 4 {
            return None;
        }
        let mut v = [0.0; 4];
        for (k, t) in nums.iter().enumerate() {
            v[k] = json_number(t.trim())?;
        }
        return Some((close + 1, vec![v]));
    }
    let mut out = Vec::new();
    let mut j = open + 1;
    loop {
        j += s[j..close].len() - s[j..close].trim_start().len();
        if j >= close {
            break;
        }
        if s.as_bytes()[j] != b'[' {
            return None;
        }
        let (end, b) = box_group(s, j, close)?;
        out.extend(b);
        j = end;
        j += s[j..close].len() - s[j..close].trim_start().len();
        if j < close {
            if s.as_bytes()[j] != b',' {
                return None;
            }
            j += 1;
        }
    }
    (!out.is_empty()).then_some((close + 1, out))
}

/// A JSON number (no `inf`, `nan`, hex, or leading `+`).
fn json_number(t: &str) -> Option<f64> {
    let ok = !t.is_empty()
        && t.chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '-' | '.' | 'e' | 'E' | '+'))
        && !t.starts_with('+');
    if !ok {
        return None;
    }
    num(t)
}

/// The `{…}` that directly encloses byte `at`, within `range`, if any.
fn enclosing_object(s: &str, at: usize, range: Range<usize>) -> Option<Range<usize>> {
    let bytes = s.as_bytes();
    let mut depth = 0i32;
    let mut open = None;
    for i in (range.start..at).rev() {
        match bytes[i] {
            b'}' => depth += 1,
            b'{' if depth == 0 => {
                open = Some(i);
                break;
            }
            b'{' => depth -= 1,
            _ => {}
        }
    }
    let open = open?;
    let mut depth = 0i32;
    for (i, &b) in bytes.iter().enumerate().take(range.end).skip(open) {
        match b {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(open..i + 1);
                }
            }
            _ => {}
        }
    }
    None
}

/// `"image": N` inside a JSON object's text.
fn object_image(obj: &str) -> Option<usize> {
    let k = obj.find("\"image\"")?;
    let rest = obj[k + "\"image\"".len()..]
        .trim_start()
        .strip_prefix(':')?;
    let rest = rest.trim_start();
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests;
