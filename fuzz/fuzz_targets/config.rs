#![no_main]
//! `cargo +nightly fuzz run config` (see fuzz/README.md).

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::config(data));
