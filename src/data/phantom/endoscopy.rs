//! Placeholder: replaced by the phantom endoscopy generator.

use super::Case;
use crate::sample::Sample;

pub fn generate(_seed: u64, _n: usize) -> Vec<Sample> {
    Vec::new()
}

pub fn case(_seed: u64, index: usize) -> Case {
    Case {
        key: format!("endoscopy/{index:04}"),
        images: Vec::new(),
        findings: Vec::new(),
    }
}
