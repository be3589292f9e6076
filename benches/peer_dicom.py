#!/usr/bin/env python3
"""pydicom's time for what `cargo bench --bench dicom` measures: bytes in memory to 8-bit
pixels (read, decode the pixel data, modality LUT, the VOI LUT or window where the file has
one, scaled to 0-255, MONOCHROME1 inverted). Timing only: medvqa's pixels are checked against
pydicom's in tests/dicom.rs. Median of repeated runs, one thread.

    pip install pydicom==3.0.2 numpy==2.4.6 pillow==13.0.0
    python3 benches/peer_dicom.py
"""

import io
import pathlib
import statistics
import time

import numpy as np
import pydicom
from pydicom.pixels import apply_modality_lut, apply_voi_lut

ROOT = pathlib.Path(__file__).resolve().parents[1]
FILES = {
    "siim-1024-jpeg-baseline": ROOT.parent / "shared/data/chest_xray/siim/1.2.276.0.7230010.3.1.4.8323329.6904.1517875201.850819.dcm",
    "s16-rescale-window": ROOT / "tests/fixtures/dicom/s16-rescale-window.dcm",
    "rle-s16": ROOT / "tests/fixtures/dicom/rle-s16.dcm",
}


def to_8bit(data: bytes) -> np.ndarray:
    ds = pydicom.dcmread(io.BytesIO(data))
    arr = apply_modality_lut(ds.pixel_array, ds)
    if "VOILUTSequence" in ds or "WindowCenter" in ds:
        arr = apply_voi_lut(arr, ds)
    arr = arr.astype(np.float64)
    lo, hi = arr.min(), arr.max()
    v = np.floor((arr - lo) / (hi - lo if hi > lo else 1) * 255 + 0.5).astype(np.uint8)
    return 255 - v if ds.PhotometricInterpretation == "MONOCHROME1" else v


for name, path in FILES.items():
    if not path.exists():
        print(f"{name}: not found, skipped")
        continue
    data = path.read_bytes()
    to_8bit(data)
    times = []
    budget = time.monotonic() + 3.0
    while time.monotonic() < budget or len(times) < 10:
        t = time.perf_counter()
        to_8bit(data)
        times.append(time.perf_counter() - t)
    print(f"{name}: median {statistics.median(times) * 1e3:.3f} ms over {len(times)} runs")
