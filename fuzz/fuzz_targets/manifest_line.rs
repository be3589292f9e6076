#![no_main]
//! `cargo +nightly fuzz run manifest_line` (see fuzz/README.md).

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::manifest_line(data));
