//! medvqa's text metrics against the Python references (sacrebleu, rouge-score, SQuAD v2.0)
//! on the committed corpus and on the six real Kvasir-VQA-x1 rows. The expected values come
//! from `tests/fixtures/text_metrics/make_refs.py`.

// Test code may unwrap and panic (clippy.toml allows it inside #[test] only).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use medvqa::score::bleu::{self, BleuStats};
use medvqa::score::{rouge, text};
use serde_json::Value;

/// Tighter than the 1e-6 the reports promise: the implementations follow the references
/// operation for operation.
const TOL: f64 = 1e-9;

fn fixture(name: &str) -> Value {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/text_metrics")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap()
}

fn close(what: &str, got: f64, want: &Value) {
    let want = want.as_f64().unwrap_or_else(|| panic!("{what}: no number"));
    // sacrebleu's perfect match is 1.0000000000000004; medvqa caps scores at 1.
    assert!(
        (got - want).abs() < TOL,
        "{what}: medvqa {got} vs Python {want}"
    );
}

/// Checks every per-pair metric and the corpus aggregates of one section.
fn check(section: &Value, pairs: &[(String, String)], name: &str) {
    let rows = section["pairs"].as_array().unwrap();
    assert_eq!(rows.len(), pairs.len(), "{name}: pair count");
    let mut total = BleuStats::default();
    let (mut em, mut f1, mut rl) = (0.0, 0.0, 0.0);
    for (i, ((hyp, reference), want)) in pairs.iter().zip(rows).enumerate() {
        let what = |m: &str| format!("{name} pair {i} {m} ({hyp:?} vs {reference:?})");
        let s = BleuStats::of(hyp, reference);
        total.add(&s);
        let e = text::exact_match(hyp, reference);
        let f = text::token_f1(hyp, reference);
        let r = rouge::rouge_l(hyp, reference);
        close(&what("exact_match"), e, &want["exact_match"]);
        close(&what("token_f1"), f, &want["token_f1"]);
        close(
            &what("sentence_bleu"),
            bleu::sentence(&s),
            &want["sentence_bleu"],
        );
        close(&what("rouge_l"), r, &want["rouge_l"]);
        em += e;
        f1 += f;
        rl += r;
    }
    let n = pairs.len() as f64;
    close(
        &format!("{name} corpus_bleu"),
        bleu::corpus(&total),
        &section["corpus_bleu"],
    );
    close(
        &format!("{name} mean exact_match"),
        em / n,
        &section["mean_exact_match"],
    );
    close(
        &format!("{name} mean token_f1"),
        f1 / n,
        &section["mean_token_f1"],
    );
    close(
        &format!("{name} mean rouge_l"),
        rl / n,
        &section["mean_rouge_l"],
    );
}

#[test]
fn committed_corpus_matches_sacrebleu_rouge_score_and_squad() {
    let corpus = fixture("corpus.json");
    let pairs: Vec<(String, String)> = corpus["pairs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_str().unwrap().into(), p[1].as_str().unwrap().into()))
        .collect();
    check(&fixture("expected.json")["corpus"], &pairs, "corpus");
}

#[test]
fn kvasir_vqa_x1_rows_match_the_python_references() {
    let Some(data) = common::shared_data() else {
        return;
    };
    let text = std::fs::read_to_string(data.join("kvasir_vqa_x1/sample_eval_rows.jsonl")).unwrap();
    let rows: Vec<Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let expected = fixture("expected.json");
    let section = &expected["kvasir_vqa_x1"];
    let keys = section["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 6);
    for (r, k) in rows.iter().zip(keys) {
        assert_eq!(
            r["img_id"], k["img_id"],
            "rows are not the ones the references were made from"
        );
    }
    let pairs: Vec<(String, String)> = rows
        .iter()
        .map(|r| {
            (
                r["response"].as_str().unwrap().into(),
                r["answer"].as_str().unwrap().into(),
            )
        })
        .collect();
    check(section, &pairs, "kvasir_vqa_x1");
}
