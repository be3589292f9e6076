//! `medvqa compare RUN_A RUN_B`: paired comparison of two run folders' `scored.jsonl`.

use std::io::{BufRead, BufReader};
use std::path::Path;

use anyhow::Context;

use super::{Outcome, out};
use crate::cli::CompareArgs;
use crate::report::SCORED_FILE;
use crate::score::Scored;
use crate::score::compare::{SideBySide, compare, render_markdown, render_summary, render_text};
use crate::score::stats::Bootstrap;

pub fn run(a: &CompareArgs) -> anyhow::Result<Outcome> {
    // Same ids are not the same questions: phantom ids do not carry the seed.
    for note in
        crate::fingerprint::check_pair(&a.run_a, &a.run_b, a.force).map_err(anyhow::Error::msg)?
    {
        eprintln!("{note}");
    }
    let ra = read_scored(&a.run_a)?;
    let rb = read_scored(&a.run_b)?;
    let cfg = Bootstrap {
        resamples: a.bootstrap,
        seed: a.bootstrap_seed,
        confidence: 0.95,
    };
    let mut c = compare(
        &a.run_a.display().to_string(),
        &ra,
        &a.run_b.display().to_string(),
        &rb,
        &cfg,
    );
    if c.paired == 0 {
        anyhow::bail!(
            "{} and {} share no (id, perturbation, severity) records; nothing to compare",
            a.run_a.display(),
            a.run_b.display()
        );
    }
    c.model_a = model_name(&a.run_a);
    c.model_b = model_name(&a.run_b);
    c.analyses = analyses(&ra, &rb);
    if a.full {
        out(&render_text(&c))?;
    } else {
        out(&render_summary(&c))?;
        out("\nevery metric under every condition: add --full, or --out DIR for compare.md\n")?;
    }
    if let Some(dir) = &a.out {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let json = serde_json::to_string_pretty(&c)?;
        std::fs::write(dir.join("compare.json"), format!("{json}\n"))
            .with_context(|| format!("writing {}", dir.join("compare.json").display()))?;
        std::fs::write(dir.join("compare.md"), render_markdown(&c))
            .with_context(|| format!("writing {}", dir.join("compare.md").display()))?;
        eprintln!("wrote compare.json and compare.md to {}", dir.display());
    }
    Ok(Outcome::Clean)
}

/// The model a run folder's report names (`header.model`), if it has one.
fn model_name(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("report.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v["header"]["model"].as_str().map(str::to_string)
}

fn read_scored(dir: &Path) -> anyhow::Result<Vec<Scored>> {
    let path = dir.join(SCORED_FILE);
    let f = std::fs::File::open(&path).with_context(|| {
        format!(
            "cannot open {} (a run folder written by `medvqa score` or `medvqa eval`)",
            path.display()
        )
    })?;
    let mut v = Vec::new();
    for (i, line) in BufReader::new(f).lines().enumerate() {
        let line = line.with_context(|| format!("reading {}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let s: Scored = serde_json::from_str(&line)
            .with_context(|| format!("{}:{}: not a scored record", path.display(), i + 1))?;
        v.push(s);
    }
    Ok(v)
}

/// Image reliance (per control and kind) and option order (per kind) of each run on its own
/// records, side by side.
fn analyses(ra: &[Scored], rb: &[Scored]) -> Vec<SideBySide> {
    use std::collections::BTreeMap;
    let none = std::collections::HashMap::new();
    // (analysis, kind, metric) -> (A, B)
    type Key = (String, String, &'static str);
    let mut table: BTreeMap<Key, (Option<f64>, Option<f64>)> = BTreeMap::new();
    for (side, records) in [(0, ra), (1, rb)] {
        let mut put = |key: (String, String, &'static str), v: f64| {
            let e = table.entry(key).or_default();
            if side == 0 {
                e.0 = Some(v)
            } else {
                e.1 = Some(v)
            }
        };
        for r in crate::report::analyses::reliance(records, &none) {
            let name = format!("image_reliance:{}", r.control);
            put((name.clone(), r.group.clone(), "reliance"), r.reliance);
            put((name, r.group, "unchanged"), r.unchanged);
        }
        if let Some(o) = crate::report::option_order::option_order(records) {
            for c in o.circular {
                put(
                    ("option_order".into(), c.kind.clone(), "circular_accuracy"),
                    c.circular_accuracy,
                );
                put(("option_order".into(), c.kind, "changed"), c.changed);
            }
        }
    }
    table
        .into_iter()
        .map(|((analysis, group, metric), (a, b))| SideBySide {
            analysis,
            group,
            metric: metric.to_string(),
            a,
            b,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::BoxFrame;
    use crate::score::{Condition, GroundingScope, Prediction, ScoreOptions, score_run};

    fn run(blank: &str) -> Vec<Scored> {
        let samples = crate::score::tests::battery();
        let o = ScoreOptions {
            judge: None,
            box_frame: BoxFrame::Normalized,
            grounding: GroundingScope::Boxed,
            semantic: None,
        };
        let p = vec![
            Prediction::clean("closed", "Yes."),
            Prediction {
                id: "closed".into(),
                condition: Condition::new("blank-image", 1),
                response: blank.into(),
                confidence: None,
                source: None,
            },
        ];
        score_run(&samples, &p, &o, &crate::run::HeaderSizes::default()).scored
    }

    #[test]
    fn analyses_sit_side_by_side() {
        // A keeps its answer without the image; B changes it.
        let rows = analyses(&run("Yes."), &run("No."));
        let get = |metric: &str| {
            rows.iter()
                .find(|r| {
                    r.analysis == "image_reliance:blank-image"
                        && r.group == "closed"
                        && r.metric == metric
                })
                .map(|r| (r.a, r.b))
                .unwrap()
        };
        assert_eq!(get("unchanged"), (Some(1.0), Some(0.0)));
        let (a, b) = get("reliance");
        assert_eq!(a, Some(0.0));
        assert_eq!(
            b.map(f64::abs),
            Some(1.0),
            "a closed answer flipped: accuracy moves by 1"
        );
        // No rotation in either run: no option-order rows.
        assert!(rows.iter().all(|r| r.analysis != "option_order"));
    }
}
