#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

//! The import graph points one way: the data model at the bottom, then the four stages
//! (data, perturb, infer, score) side by side, then report, then the run layer, then the
//! commands. README.md's Development section draws the same layers. This test reads every
//! `crate::` path in `src/` (test modules aside) and fails on an edge that goes up or
//! sideways, so a new import that bends the layers is caught where it is written.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

/// Each top-level module's layer. A module may use modules of lower layers, and of its own
/// layer only where [`SAME_LAYER`] says so.
const LAYERS: &[(&str, u8)] = &[
    ("cache", 0),
    ("failure", 0),
    ("geometry", 0),
    ("pixels", 0),
    ("pool", 0),
    ("progress", 0),
    ("simd", 0),
    ("suggest", 0),
    ("vecmap", 0),
    ("draw", 1),
    ("sample", 1),
    ("fingerprint", 2),
    ("store", 2),
    ("data", 3),
    ("infer", 3),
    ("perturb", 3),
    ("score", 3),
    ("report", 4),
    ("config", 5),
    ("run", 5),
    ("cli", 6),
    ("commands", 6),
];

/// Same-layer edges that are part of the design.
const SAME_LAYER: &[(&str, &str)] = &[("run", "config"), ("commands", "cli")];

fn layer(m: &str) -> Option<u8> {
    LAYERS.iter().find(|(n, _)| *n == m).map(|(_, l)| *l)
}

/// The module's source without its `#[cfg(test)] mod tests` block (tests may reach anywhere).
fn non_test(text: &str) -> &str {
    match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    }
}

#[test]
fn every_import_points_down_the_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let files = common::rust_sources(&src);
    let mut bad = BTreeSet::new();
    let mut unknown = BTreeSet::new();
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap();
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if top == "main" || top == "lib" || rel.ends_with("tests.rs") {
            continue;
        }
        let Some(from) = layer(&top) else {
            unknown.insert(top);
            continue;
        };
        let text = std::fs::read_to_string(f).unwrap();
        for (i, _) in non_test(&text).match_indices("crate::") {
            let to: String = text[i + 7..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            if to.is_empty() || to == top {
                continue;
            }
            let Some(at) = layer(&to) else {
                unknown.insert(to);
                continue;
            };
            let allowed = at < from || (at == from && SAME_LAYER.contains(&(&top, &to)));
            if !allowed {
                bad.insert(format!("{} uses crate::{to}", rel.display()));
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "modules without a layer (add them to LAYERS and to README's Development section): {unknown:?}"
    );
    assert!(
        bad.is_empty(),
        "imports against the layers:\n{}",
        bad.into_iter().collect::<Vec<_>>().join("\n")
    );
}
