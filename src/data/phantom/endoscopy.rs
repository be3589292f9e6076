//! Placeholder: replaced by the phantom endoscopy generator.

use crate::sample::Sample;

pub fn generate(_seed: u64, _n: usize) -> Vec<Sample> {
    Vec::new()
}
