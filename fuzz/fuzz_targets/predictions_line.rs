#![no_main]
//! `cargo +nightly fuzz run predictions_line` (see fuzz/README.md).

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::predictions_line(data));
