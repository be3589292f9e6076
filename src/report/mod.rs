//! Reports of a scored run (docs/design.md §7): `report.json`, `summary.csv`, `report.md` and a
//! self-contained `report.html`, plus `scored.jsonl`, `rejected.jsonl` and `timing.json`.
//!
//! ```text
//! let report = report::build(&samples, &runs, header, &BuildOptions::default());
//! report::write_reports(dir, &report, &thumbnails)?;   // json, csv, md, html
//! report::write_records(dir, &runs)?;                  // scored.jsonl, rejected.jsonl
//! report::write_timing(dir, &timing)?;                 // timing.json
//! ```
//!
//! - `report.json` is a pure function of the samples, the scored records and the header:
//!   maps are ordered, floats are rounded to 6 decimals, bootstrap streams are seeded, and
//!   wall-clock time goes to `timing.json`. Reruns give identical bytes, whatever the order
//!   of the prediction file.
//! - Headline numbers (`overall`, `by`) are over clean predictions; the `robustness` list
//!   has one row per perturbation and severity.
//! - `report.html` needs no network and no script: inline CSS, inline SVG charts, and
//!   thumbnails as PNG data URIs, which the caller supplies through [`Thumbnails`] (the
//!   dataset's images for `medvqa score`, the perturbed images for `medvqa eval`).

pub mod analyses;
pub mod calibration;
pub mod csv;
pub mod html;
pub mod json;
pub mod markdown;
pub mod option_order;
pub mod svg;

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::failure::Failure;
use crate::geometry::BBox;
use crate::sample::{QuestionKind, Sample};
use crate::score::robustness::{self, ConditionRow};
use crate::score::stats::{Bootstrap, round6_opt};
use crate::score::{
    Condition, GroundingScope, METRICS, MetricSummary, Rejected, RunScores, Scored, Unparsed,
    summarize,
};

/// The version of `report.json`'s layout.
pub const REPORT_VERSION: u32 = 1;

/// Which dataset a report is about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetInfo {
    /// The spec as given, e.g. `gemex:data/gemex`.
    pub spec: String,
    pub name: String,
    pub format: String,
    /// The frame the dataset declares for its ground-truth boxes.
    pub source_box_frame: String,
}

/// What a report says about how it was made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub dataset: DatasetInfo,
    /// The model's name, when the caller knows it.
    pub model: Option<String>,
    /// The frame predicted boxes in the generic syntaxes were read in.
    pub box_frame: String,
    pub grounding_scope: GroundingScope,
    pub medvqa_version: String,
    pub bootstrap: Bootstrap,
    /// What the bootstrap resamples together (`image`, `meta.video_id`, `none`); set by the
    /// run layer when it gives the records their clusters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// Meta keys broken down under `by`, besides kind, modality and n_images.
    pub by_meta: Vec<String>,
    /// Free-form notes from the caller (e.g. "answers are random: fixture model").
    pub notes: Vec<String>,
}

impl Header {
    /// A header with this build's version and default bootstrap settings.
    pub fn new(dataset: DatasetInfo, box_frame: String, grounding_scope: GroundingScope) -> Header {
        Header {
            dataset,
            model: None,
            box_frame,
            grounding_scope,
            medvqa_version: env!("CARGO_PKG_VERSION").to_string(),
            bootstrap: Bootstrap::default(),
            cluster: None,
            by_meta: Vec::new(),
            notes: Vec::new(),
        }
    }
}

/// Counts of what went in and what came out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Samples in the dataset (after loading).
    pub samples: usize,
    /// Prediction records accepted and scored, over all conditions.
    pub scored: usize,
    /// Clean predictions scored (the headline numbers are over these).
    pub scored_clean: usize,
    pub rejected: usize,
    pub failures: usize,
    /// Sample × condition pairs with no prediction.
    pub missing: usize,
}

/// A counted list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Listed<T> {
    pub count: usize,
    pub items: Vec<T>,
}

/// Samples without a prediction under one condition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Missing {
    pub count: usize,
    /// The first ids, sorted (at most [`MISSING_IDS_LISTED`]).
    pub ids: Vec<String>,
}

/// How many missing ids a report lists per condition.
pub const MISSING_IDS_LISTED: usize = 50;

/// Unparsed counts over clean predictions, overall and by kind.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UnparsedReport {
    pub answer: usize,
    pub boxes: usize,
    pub by_kind: BTreeMap<String, Unparsed>,
}

/// A box drawn on an example's thumbnail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExampleBox {
    pub image: usize,
    #[serde(rename = "box")]
    pub bbox: BBox,
}

/// One example of a wrong answer, for the report's table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Example {
    pub id: String,
    #[serde(flatten)]
    pub condition: Condition,
    pub kind: QuestionKind,
    pub question: String,
    pub expected: Option<String>,
    /// The response, cut at [`EXAMPLE_RESPONSE_CHARS`] characters.
    pub response: String,
    pub parsed: Option<String>,
    pub rule: Option<String>,
    #[serde(serialize_with = "round6_opt")]
    pub iou: Option<f64>,
    /// Why it is listed: `unparsed`, `wrong answer`, `flipped from clean`, `IoU below 0.5`.
    pub why: String,
    pub gt_boxes: Vec<ExampleBox>,
    pub pred_boxes: Vec<ExampleBox>,
}

/// How much of a response an example shows.
pub const EXAMPLE_RESPONSE_CHARS: usize = 300;

/// `report.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub medvqa_report: u32,
    pub header: Header,
    pub counts: Counts,
    /// Metric name → summary, over clean predictions.
    pub overall: BTreeMap<String, MetricSummary>,
    /// `by.<dimension>.<group>.<metric>`: dimensions `kind`, `modality`, `n_images` and the
    /// requested meta keys.
    pub by: BTreeMap<String, BTreeMap<String, BTreeMap<String, MetricSummary>>>,
    pub robustness: Vec<ConditionRow>,
    pub robustness_summary: Option<robustness::Summary>,
    /// How much the clustering widens the clean intervals; absent when every question is its
    /// own cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clustering: Option<Clustering>,
    /// Under each control condition (`blank-image`), by kind and by modality: the headline
    /// metric clean and without the image, their difference and the share of unchanged
    /// answers. Empty when the run has no control.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_reliance: Vec<RelianceRow>,
    /// Per control and kind: consistent under the perturbations × reliant on the image.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub consistency_by_reliance: Vec<ConsistencyRow>,
    /// Circular evaluation and position bias from the `option-rotate` conditions; absent
    /// when the run has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub option_order: Option<OptionOrder>,
    /// Whether the model's confidence tracks correctness, per condition and kind, with the
    /// shift from clean; absent when no prediction has a confidence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration: Option<calibration::Calibration>,
    /// The LLM judge against exact match and token F1 on open answers; absent without a
    /// judge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judge_agreement: Option<crate::score::judge::JudgeAgreement>,
    pub unparsed: UnparsedReport,
    /// Clean predictions per extraction rule.
    pub extraction_rules: BTreeMap<String, usize>,
    /// Clean predictions per box syntax read.
    pub box_syntaxes: BTreeMap<String, usize>,
    pub failures: Listed<Failure>,
    pub rejected: Listed<Rejected>,
    /// Condition (`clean`, `blur@3`) → samples without a prediction.
    pub missing: BTreeMap<String, Missing>,
    pub examples: Vec<Example>,
}

/// Knobs for [`build`].
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// How many example failures the report shows.
    pub max_examples: usize,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions { max_examples: 12 }
    }
}

/// The `by` dimensions every report has, from the sample itself rather than its meta.
const BUILT_IN_BY: [&str; 3] = ["kind", "modality", "n_images"];

/// A note for each `by` key that no sample has in its meta (`sett` for `set`): its table
/// would be one "unknown" group.
fn unknown_by_keys(samples: &[Sample], by: &[String]) -> Vec<String> {
    let keys: std::collections::BTreeSet<&str> = samples
        .iter()
        .flat_map(|s| s.meta.keys().map(String::as_str))
        .collect();
    by.iter()
        .filter(|k| !BUILT_IN_BY.contains(&k.as_str()) && !keys.contains(k.as_str()))
        .map(|k| {
            format!(
                "by: no sample has the meta key {k}{}; its table is one \"unknown\" group (keys: {})",
                crate::suggest::hint(k, keys.iter().copied()),
                keys.iter().copied().collect::<Vec<_>>().join(", ")
            )
        })
        .collect()
}

/// The groups a sample belongs to along one `by` dimension (several for list-valued meta).
type GroupKey = Box<dyn Fn(&Sample) -> Vec<String>>;

/// Builds the report. `extra_failures` are failures from earlier stages (loading,
/// inference) that count in the report beside the scoring failures in `runs`.
pub fn build(
    samples: &[Sample],
    runs: &RunScores,
    extra_failures: &[Failure],
    mut header: Header,
    opts: &BuildOptions,
) -> Report {
    header
        .notes
        .extend(unknown_by_keys(samples, &header.by_meta));
    let by_id: HashMap<&str, &Sample> = samples.iter().map(|s| (s.id.as_str(), s)).collect();
    let clean: Vec<&Scored> = runs
        .scored
        .iter()
        .filter(|s| s.condition.is_clean())
        .collect();
    let cfg = header.bootstrap;
    let overall = summarize(&clean, &cfg, "overall");
    let clustering = analyses::clustering(&clean, &overall, &cfg, header.cluster.as_deref());

    let mut by = BTreeMap::new();
    let mut dims: Vec<(String, GroupKey)> = vec![
        (
            "kind".into(),
            Box::new(|s: &Sample| vec![s.kind().to_string()]),
        ),
        ("modality".into(), Box::new(|s: &Sample| vec![s.modality()])),
        (
            "n_images".into(),
            Box::new(|s: &Sample| vec![s.images.len().to_string()]),
        ),
    ];
    for key in &header.by_meta {
        // `by = ["kind"]` asks for a built-in dimension: it is already there, from the
        // sample itself. Looking it up in meta would replace it by one "unknown" group.
        if BUILT_IN_BY.contains(&key.as_str()) {
            continue;
        }
        let k = key.clone();
        dims.push((
            key.clone(),
            Box::new(move |s: &Sample| match s.meta.get(&k) {
                Some(crate::sample::MetaValue::List(v)) => v.clone(),
                Some(v) => vec![v.to_string()],
                None => vec!["unknown".to_string()],
            }),
        ));
    }
    for (dim, key_of) in &dims {
        let mut groups: BTreeMap<String, Vec<&Scored>> = BTreeMap::new();
        for r in &clean {
            if let Some(s) = by_id.get(r.id.as_str()) {
                for g in key_of(s) {
                    groups.entry(g).or_default().push(r);
                }
            }
        }
        let table: BTreeMap<String, BTreeMap<String, MetricSummary>> = groups
            .into_iter()
            .map(|(g, recs)| {
                let label = format!("{dim}={g}");
                (g, summarize(&recs, &cfg, &label))
            })
            .collect();
        by.insert(dim.clone(), table);
    }

    let rows = robustness::table(&runs.scored, &cfg);
    // Controls take the image away on purpose and option rotations change nothing a
    // reader would call worse: neither is a robustness condition, and the one-number
    // robustness score leaves them out (they have their own tables). So are the answers a
    // frame perturbation made unknowable (order-dependent rows).
    let counted: Vec<ConditionRow> = rows
        .iter()
        .filter(|r| analyses::is_degradation(&r.perturbation) && !r.order_dependent)
        .cloned()
        .collect();
    let summary = robustness::summary(&counted);

    let mut unparsed = UnparsedReport::default();
    let mut rules: BTreeMap<String, usize> = BTreeMap::new();
    let mut syntaxes: BTreeMap<String, usize> = BTreeMap::new();
    for r in &clean {
        unparsed.answer += r.unparsed_answer as usize;
        unparsed.boxes += r.unparsed_boxes as usize;
        let k = unparsed.by_kind.entry(r.kind.to_string()).or_default();
        k.answer += r.unparsed_answer as usize;
        k.boxes += r.unparsed_boxes as usize;
        if let Some(rule) = r.rule {
            *rules.entry(rule.to_string()).or_default() += 1;
        }
        if let Some(sx) = r.box_syntax {
            *syntaxes.entry(sx.name().to_string()).or_default() += 1;
        }
    }

    let mut failures: Vec<Failure> = extra_failures.to_vec();
    failures.extend(runs.failures.iter().cloned());
    failures.sort_by(|a, b| {
        (a.stage, &a.id, &a.location, &a.reason).cmp(&(b.stage, &b.id, &b.location, &b.reason))
    });
    let rejected: Vec<Rejected> = runs
        .rejected
        .iter()
        .map(Rejected::without_location)
        .collect();
    let missing: BTreeMap<String, Missing> = runs
        .missing
        .iter()
        .map(|(c, ids)| {
            (
                c.to_string(),
                Missing {
                    count: ids.len(),
                    ids: ids.iter().take(MISSING_IDS_LISTED).cloned().collect(),
                },
            )
        })
        .collect();
    let examples = examples(&runs.scored, &by_id, &rows, opts.max_examples);

    Report {
        medvqa_report: REPORT_VERSION,
        counts: Counts {
            samples: samples.len(),
            scored: runs.scored.len(),
            scored_clean: clean.len(),
            rejected: rejected.len(),
            failures: failures.len(),
            missing: runs.missing.values().map(Vec::len).sum(),
        },
        header,
        overall,
        by,
        robustness: rows,
        robustness_summary: summary,
        clustering,
        image_reliance: analyses::reliance(&runs.scored, &by_id),
        consistency_by_reliance: analyses::consistency_by_reliance(&runs.scored),
        option_order: option_order::option_order(&runs.scored),
        calibration: calibration::calibration(&runs.scored),
        judge_agreement: crate::score::judge::agreement(&runs.scored),
        unparsed,
        extraction_rules: rules,
        box_syntaxes: syntaxes,
        failures: Listed {
            count: failures.len(),
            items: failures,
        },
        rejected: Listed {
            count: rejected.len(),
            items: rejected,
        },
        missing,
        examples,
    }
}

/// Why a record counts as a failure for the examples table, if it does.
fn failed(r: &Scored) -> Option<&'static str> {
    if r.unparsed_answer {
        return Some("unparsed");
    }
    if r.metrics.get("accuracy") == Some(&0.0) {
        return Some("wrong answer");
    }
    if r.metrics.get("token_f1").is_some_and(|v| *v < 0.5) {
        return Some("token F1 below 0.5");
    }
    if r.unparsed_boxes {
        return Some("no box");
    }
    if r.metrics.get("miou").is_some_and(|v| *v < 0.5) {
        return Some("IoU below 0.5");
    }
    None
}

/// Picks examples deterministically: first answers that flipped from right (clean) to wrong
/// under the worst-hit conditions, then clean failures in id order.
fn examples(
    scored: &[Scored],
    by_id: &HashMap<&str, &Sample>,
    rows: &[ConditionRow],
    max: usize,
) -> Vec<Example> {
    let clean: HashMap<&str, &Scored> = scored
        .iter()
        .filter(|s| s.condition.is_clean())
        .map(|s| (s.id.as_str(), s))
        .collect();
    // Conditions ordered from the worst headline relative score.
    let severity_rank: HashMap<(String, u8), f64> = rows
        .iter()
        .map(|r| {
            let heads: Vec<f64> = METRICS
                .iter()
                .filter(|m| m.headline)
                .filter_map(|m| r.relative.get(m.name).copied())
                .collect();
            let v = if heads.is_empty() {
                1.0
            } else {
                heads.iter().sum::<f64>() / heads.len() as f64
            };
            ((r.perturbation.clone(), r.severity), v)
        })
        .collect();
    let mut flips: Vec<(&Scored, f64)> = scored
        .iter()
        .filter(|s| !s.condition.is_clean())
        .filter(|s| failed(s).is_some())
        .filter(|s| {
            clean
                .get(s.id.as_str())
                .is_some_and(|c| failed(c).is_none())
        })
        .map(|s| {
            let rank = severity_rank
                .get(&(s.condition.perturbation.clone(), s.condition.severity))
                .copied()
                .unwrap_or(1.0);
            (s, rank)
        })
        .collect();
    flips.sort_by(|a, b| {
        a.1.total_cmp(&b.1)
            .then_with(|| (&a.0.id, &a.0.condition).cmp(&(&b.0.id, &b.0.condition)))
    });
    let mut out = Vec::new();
    let mut seen_ids = std::collections::HashSet::new();
    for (s, _) in flips {
        if out.len() >= max / 2 {
            break;
        }
        if seen_ids.insert(s.id.clone())
            && let Some(e) = example(s, by_id, "flipped from clean")
        {
            out.push(e);
        }
    }
    for s in scored.iter().filter(|s| s.condition.is_clean()) {
        if out.len() >= max {
            break;
        }
        if let Some(why) = failed(s)
            && let Some(e) = example(s, by_id, why)
        {
            out.push(e);
        }
    }
    out
}

fn example(s: &Scored, by_id: &HashMap<&str, &Sample>, why: &str) -> Option<Example> {
    let sample = by_id.get(s.id.as_str())?;
    let response: String = s.response.chars().take(EXAMPLE_RESPONSE_CHARS).collect();
    let response = if s.response.chars().count() > EXAMPLE_RESPONSE_CHARS {
        format!("{response}…")
    } else {
        response
    };
    Some(Example {
        id: s.id.clone(),
        condition: s.condition.clone(),
        kind: s.kind,
        question: sample.question.clone(),
        expected: sample.task.answer_text(),
        response,
        parsed: s.extracted.clone(),
        rule: s.rule.map(|r| r.to_string()),
        iou: s.grounding.as_ref().map(|g| g.iou),
        why: why.to_string(),
        gt_boxes: sample
            .boxes
            .iter()
            .map(|b| ExampleBox {
                image: b.image,
                bbox: b.bbox.rounded(),
            })
            .collect(),
        pred_boxes: s
            .boxes
            .iter()
            .filter_map(|b| {
                b.bbox.map(|bbox| ExampleBox {
                    image: b.image,
                    bbox,
                })
            })
            .collect(),
    })
}

/// A picture for the examples table.
#[derive(Debug, Clone, PartialEq)]
pub struct Thumbnail {
    /// PNG bytes, at most [`THUMBNAIL_PX`] on the long side.
    pub png: Vec<u8>,
    /// Whether this is the image as the model saw it under the example's condition. When
    /// it is not (a perturbed example shown on the clean image), predicted boxes are not
    /// drawn over it, since they may be in the perturbed image's geometry.
    pub as_seen: bool,
}

/// Thumbnails for the examples table: image `image` of a sample under a condition. The
/// eval pipeline gives the perturbed image; `medvqa score`, which never sees perturbed
/// images, gives the clean one with `as_seen: false`. `None` leaves the cell without a
/// picture.
pub trait Thumbnails {
    fn thumbnail(&self, id: &str, condition: &Condition, image: usize) -> Option<Thumbnail>;
}

/// The long side of a thumbnail, in pixels.
pub use crate::score::HEADLINE;
pub use analyses::{Clustering, ConsistencyRow, RelianceRow, clustering_line};
pub use option_order::{CircularRow, OptionOrder, PositionRow, option_order_line};

/// The headline metric of each question kind the run has, on clean images:
/// `(kind, metric, summary)`, in [`HEADLINE`] order.
pub fn headline(r: &Report) -> Vec<(&'static str, &'static str, &MetricSummary)> {
    let Some(by_kind) = r.by.get("kind") else {
        return Vec::new();
    };
    HEADLINE
        .iter()
        .filter_map(|&(kind, metric)| Some((kind, metric, by_kind.get(kind)?.get(metric)?)))
        .collect()
}

/// The console lines of [`headline`]: `  closed         accuracy   0.8833  [0.8000, 0.9500]  n=60`.
pub fn headline_lines(r: &Report) -> Vec<String> {
    headline(r)
        .into_iter()
        .map(|(kind, metric, v)| {
            format!(
                "  {kind:<14} {metric:<17} {:.4}  [{:.4}, {:.4}]  n={}",
                v.value, v.ci_low, v.ci_high, v.n
            )
        })
        .collect()
}

/// The summary lines about boxes: what was scored on boxes, and a warning when most of
/// those answers hold no box at all (a prompt that never asked for one, or the wrong
/// scope), since then the grounding numbers measure the prompt, not the model.
pub fn box_scope_lines(r: &Report) -> Vec<String> {
    let Some(n) = r.overall.get("miou").map(|m| m.n) else {
        return Vec::new();
    };
    let mut lines = vec![format!(
        "boxes scored on {} (n={n} clean); {} of those answers hold no box",
        r.header.grounding_scope.describe(),
        r.unparsed.boxes
    )];
    if n > 0 && r.unparsed.boxes * 2 > n {
        lines.push(format!(
            "warning: {} of {n} answers scored on boxes contain none: check that the prompt asks for boxes{}",
            r.unparsed.boxes,
            if r.header.grounding_scope == GroundingScope::Boxed {
                ", or score grounding questions only (--grounding grounding-kind)"
            } else {
                ""
            }
        ));
    }
    lines
}

pub const THUMBNAIL_PX: u32 = 160;

/// No pictures (the table still lists every example).
pub struct NoThumbnails;

impl Thumbnails for NoThumbnails {
    fn thumbnail(&self, _: &str, _: &Condition, _: usize) -> Option<Thumbnail> {
        None
    }
}

/// Shrinks pixels to a thumbnail and encodes it as PNG.
pub fn thumbnail_png(p: &crate::pixels::Pixels) -> Option<Vec<u8>> {
    let (w, h) = p.dimensions();
    let scale = THUMBNAIL_PX as f64 / w.max(h).max(1) as f64;
    let img = p.to_dynamic();
    let small = if scale < 1.0 {
        let nw = ((w as f64 * scale).round() as u32).max(1);
        let nh = ((h as f64 * scale).round() as u32).max(1);
        img.resize_exact(nw, nh, image::imageops::FilterType::Triangle)
    } else {
        img
    };
    crate::pixels::Pixels::from_dynamic(small).encode_png().ok()
}

/// Errors writing report files.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot write {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot serialise {what}")]
    Json {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

/// Writes `bytes` to `path` whole or not at all: into `<path>.tmp`, then renamed over
/// `path`. A full disk leaves the previous file (or none) and an error naming `path`, never
/// a truncated report.
pub(crate) fn write_file(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    write_streamed(path, |w| w.write_all(bytes).map_err(|e| io_error(path, e)))
}

fn io_error(path: &Path, source: std::io::Error) -> ReportError {
    ReportError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// As [`write_file`], for a file written piece by piece through a buffer (`scored.jsonl`
/// at 100k records), so the whole text is never held in memory.
pub(crate) fn write_streamed(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> Result<(), ReportError>,
) -> Result<(), ReportError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    let written = (|| {
        let file = std::fs::File::create(&tmp).map_err(|e| io_error(path, e))?;
        let mut w = std::io::BufWriter::new(file);
        fill(&mut w)?;
        let file = w.into_inner().map_err(|e| io_error(path, e.into_error()))?;
        file.sync_all().map_err(|e| io_error(path, e))?;
        std::fs::rename(&tmp, path).map_err(|e| io_error(path, e))
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Writes `report.json`, `summary.csv`, `report.md` and `report.html` into `dir` (created
/// if needed).
pub fn write_reports(
    dir: &Path,
    report: &Report,
    thumbs: &dyn Thumbnails,
) -> Result<(), ReportError> {
    std::fs::create_dir_all(dir).map_err(|source| ReportError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    write_file(&dir.join("report.json"), json::render(report)?.as_bytes())?;
    write_file(&dir.join("summary.csv"), csv::render(report).as_bytes())?;
    write_file(&dir.join("report.md"), markdown::render(report).as_bytes())?;
    write_file(
        &dir.join("report.html"),
        html::render(report, thumbs).as_bytes(),
    )?;
    Ok(())
}

/// Writes `scored.jsonl` (one record per scored prediction, sorted) and `rejected.jsonl`
/// (every refused record with its location).
pub fn write_records(dir: &Path, runs: &RunScores) -> Result<(), ReportError> {
    let path = dir.join(SCORED_FILE);
    write_streamed(&path, |w| {
        for s in &runs.scored {
            w.write_all(json::line(s, "scored record")?.as_bytes())
                .map_err(|e| io_error(&path, e))?;
        }
        Ok(())
    })?;
    let path = dir.join("rejected.jsonl");
    write_streamed(&path, |w| {
        for r in &runs.rejected {
            w.write_all(json::line(r, "rejected record")?.as_bytes())
                .map_err(|e| io_error(&path, e))?;
        }
        Ok(())
    })
}

/// The per-record file `medvqa compare` reads.
pub const SCORED_FILE: &str = "scored.jsonl";

/// Wall-clock facts, kept out of `report.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    pub command: String,
    pub wall_seconds: f64,
    /// Named stages and their seconds (`load`, `score`, `report`, …).
    pub stages: BTreeMap<String, f64>,
    pub records: usize,
    pub records_per_second: f64,
    pub threads: usize,
    /// The process's peak resident memory (`VmHWM` from `/proc/self/status`) when the
    /// timing was written, in MiB; absent where the system does not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_rss_mib: Option<f64>,
    /// A served model's requests, retries, tokens, latency and cost in this process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub served: Option<crate::infer::served::Usage>,
}

/// This process's peak resident memory so far, in MiB (`VmHWM`, Linux); `None` elsewhere.
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()?;
    Some((kb / 1024.0 * 10.0).round() / 10.0)
}

/// Writes `timing.json`.
pub fn write_timing(dir: &Path, t: &Timing) -> Result<(), ReportError> {
    let s = serde_json::to_string_pretty(t).map_err(|source| ReportError::Json {
        what: "timing",
        source,
    })?;
    write_file(&dir.join("timing.json"), format!("{s}\n").as_bytes())
}

/// Formats a metric value for people: 4 decimals.
pub(crate) fn fmt4(v: f64) -> String {
    format!("{v:.4}")
}

#[cfg(test)]
mod tests;

/// One line on the judge for the console: its agreement with exact match.
pub fn judge_line(a: &crate::score::judge::JudgeAgreement) -> Option<String> {
    let em = a.rows.first()?;
    Some(format!(
        "judge: {} open answers graded ({} unparsed); agrees with exact match on {:.1}% (kappa {})",
        a.judged,
        a.unparsed,
        100.0 * em.agreement,
        em.kappa
            .map_or("undefined".to_string(), |k| format!("{k:.3}"))
    ))
}

/// The judge's agreement table as Markdown.
pub fn judge_markdown(o: &mut String, a: &crate::score::judge::JudgeAgreement) {
    use std::fmt::Write as _;
    let _ = writeln!(
        o,
        "\n## LLM judge\n\n{} open answers graded by the judge, {} of them unparsed (left out of `judge`). Agreement with the string metrics, over the answers both scored:\n",
        a.judged, a.unparsed
    );
    let _ = writeln!(
        o,
        "| metric | n | both right | judge only | metric only | both wrong | agreement | kappa |"
    );
    let _ = writeln!(o, "|---|---:|---:|---:|---:|---:|---:|---:|");
    for r in &a.rows {
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            r.metric,
            r.n,
            r.both_correct,
            r.judge_only,
            r.metric_only,
            r.both_incorrect,
            fmt4(r.agreement),
            r.kappa.map_or("-".to_string(), fmt4)
        );
    }
}

/// The judge's agreement table as HTML.
pub fn judge_html(o: &mut String, a: &crate::score::judge::JudgeAgreement) {
    use std::fmt::Write as _;
    let _ = write!(
        o,
        r#"<section id="judge"><h2>LLM judge</h2><p class="note">{} open answers graded by the judge, {} of them unparsed (left out of judge). Agreement with the string metrics, over the answers both scored.</p><table><tr><th>metric</th><th>n</th><th>both right</th><th>judge only</th><th>metric only</th><th>both wrong</th><th>agreement</th><th>kappa</th></tr>"#,
        a.judged, a.unparsed
    );
    for r in &a.rows {
        let _ = write!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.3}</td><td>{}</td></tr>",
            svg::esc(&r.metric),
            r.n,
            r.both_correct,
            r.judge_only,
            r.metric_only,
            r.both_incorrect,
            r.agreement,
            r.kappa.map_or("-".to_string(), |k| format!("{k:.3}"))
        );
    }
    o.push_str("</table></section>");
}
