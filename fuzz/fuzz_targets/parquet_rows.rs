#![no_main]
//! `cargo +nightly fuzz run parquet_rows` (see fuzz/README.md).

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::parquet_rows(data));
