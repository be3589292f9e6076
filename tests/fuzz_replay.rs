#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The fuzz targets (`fuzz/`, `cargo +nightly fuzz run <target>`) replayed on stable, in
//! `.ci/run`: every seed in `fuzz/seeds/<target>/` and every crash input kept in
//! `fuzz/regressions/<target>/`, then proptest's random and mutated inputs through the same
//! harness. A panic, an out-of-range box or an over-budget image fails the test.

#[path = "../fuzz/harness.rs"]
mod harness;

use std::path::{Path, PathBuf};

use proptest::prelude::*;

fn inputs(kind: &str, target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(kind)
        .join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out: Vec<(PathBuf, Vec<u8>)> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    out.sort();
    out
}

#[test]
fn every_seed_and_kept_crash_runs_through_its_target() {
    for (target, run) in harness::TARGETS {
        let seeds = inputs("seeds", target);
        assert!(!seeds.is_empty(), "{target} has no seeds");
        for (path, bytes) in seeds.iter().chain(&inputs("regressions", target)) {
            // A panic names the input through the test's output.
            eprintln!("{target}: {}", path.display());
            run(bytes);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_break_no_target(data in proptest::collection::vec(any::<u8>(), 0..400)) {
        for (_, run) in harness::TARGETS {
            run(&data);
        }
    }

    #[test]
    fn mutated_seeds_break_no_target(
        target in any::<prop::sample::Index>(),
        seed in any::<prop::sample::Index>(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..8),
    ) {
        let (name, run) = harness::TARGETS[target.index(harness::TARGETS.len())];
        let seeds = inputs("seeds", name);
        let mut bytes = seeds[seed.index(seeds.len())].1.clone();
        for (at, byte, op) in edits {
            let i = if bytes.is_empty() { 0 } else { at.index(bytes.len()) };
            match op {
                0 if !bytes.is_empty() => bytes[i] = byte,
                1 => bytes.insert(i, byte),
                _ if !bytes.is_empty() => {
                    bytes.remove(i);
                }
                _ => bytes.push(byte),
            }
        }
        run(&bytes);
    }
}
