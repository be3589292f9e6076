//! DICOM decode time per image, from bytes in memory to 8-bit pixels (header, budget
//! check, pixel data, modality LUT, VOI, MONOCHROME1), against pydicom on the same files
//! (`benches/peer_dicom.py`).
//!
//! ```text
//! $ cargo bench --bench dicom
//! $ python3 benches/peer_dicom.py        # needs pydicom, numpy, pillow
//! ```
//!
//! The files: the real SIIM radiograph in `../shared/data` (1024×1024, 8-bit, JPEG baseline;
//! skipped with a notice where that folder is absent), and two of the test fixtures
//! (16×12, 16-bit signed: native with rescale and window, and RLE), whose time is the
//! per-file cost of parsing and windowing rather than of pixels.

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};

const SIIM: &str =
    "../shared/data/chest_xray/siim/1.2.276.0.7230010.3.1.4.8323329.6904.1517875201.850819.dcm";

fn bench(c: &mut Criterion) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    match std::fs::read(root.join(SIIM)) {
        Ok(b) => cases.push(("siim-1024-jpeg-baseline", b)),
        Err(_) => eprintln!("NOTICE: ../shared/data not found; SKIPPING the SIIM row"),
    }
    for name in ["s16-rescale-window", "rle-s16"] {
        if let Ok(b) = std::fs::read(root.join(format!("tests/fixtures/dicom/{name}.dcm"))) {
            cases.push((name, b));
        }
    }
    let mut g = c.benchmark_group("dicom_decode");
    for (name, bytes) in &cases {
        g.bench_function(*name, |b| {
            b.iter(|| medvqa::data::decode::decode_bytes(black_box(bytes), name, 64_000_000))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
