//! medvqa: evaluate vision-language models on medical visual question answering.
//!
//! ```text
//! $ medvqa phantom --set all --seed 7 --out phantoms
//! $ medvqa inspect --dataset jsonl:phantoms/manifest.jsonl
//! ```
//!
//! The pipeline is `load → perturb → infer → score → report`; each stage is a module
//! (`data`, …) and a subcommand. The contracts the stages keep are in docs/design.md: the data
//! model (§2), determinism (§3), box frames (§4).

pub mod cache;
pub mod cli;
pub mod commands;
pub mod config;
pub mod data;
pub mod draw;
pub mod failure;
pub mod fingerprint;
pub mod geometry;
pub mod infer;
pub mod perturb;
pub mod pixels;
pub mod pool;
pub mod progress;
pub mod report;
pub mod run;
pub mod sample;
pub mod score;
pub mod simd;
pub mod store;
pub mod suggest;
pub mod vecmap;
