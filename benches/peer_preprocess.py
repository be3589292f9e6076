#!/usr/bin/env python3
"""Times transformers' PIL-backend image processors on the images `cargo bench --bench
preprocess` used, one thread, checks that their tensors equal medvqa's, and prints a table
against medvqa's criterion medians.

    cargo bench --bench preprocess              # medvqa numbers, the images, medvqa's tensors
    python3 benches/peer_preprocess.py          # transformers; prints the markdown table
    python3 benches/peer_preprocess.py --clean  # ... then deletes medvqa's tensors (~450 MB)

The script makes its own virtual environment under target/peer-preprocess-venv with pinned
transformers, Pillow and numpy from PyPI (no torch: the PIL-backend processors, the "slow"
classes medvqa reproduces, need only numpy and Pillow) and re-runs itself inside it. Each
processor is built with `from_pretrained` from the same hand-written
`benches/processors/<name>/preprocessor_config.json` the bench reads; nothing is downloaded.
Results also go to target/preprocess-bench/peer.json.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
VENV = TARGET / "peer-preprocess-venv"
BENCH = TARGET / "preprocess-bench"
CRITERION = TARGET / "criterion"
CONFIGS = ROOT / "benches" / "processors"
PINS = ["transformers==5.24.0", "pillow==13.0.0", "numpy==2.4.6"]

# One thread everywhere, before numpy loads; never reach the hub.
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[var] = "1"
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_VERBOSITY"] = "error"


def ensure_venv():
    python = VENV / "bin" / "python"
    if Path(sys.prefix).resolve() == VENV.resolve():
        return
    if not python.exists():
        subprocess.check_call([sys.executable, "-m", "venv", str(VENV)])
    marker = VENV / ".pins"
    if not marker.exists() or marker.read_text() != "\n".join(PINS):
        subprocess.check_call(
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *PINS]
        )
        marker.write_text("\n".join(PINS))
    os.execv(str(python), [str(python), __file__, *sys.argv[1:]])


ensure_venv()

import numpy as np  # noqa: E402
import PIL  # noqa: E402
import transformers  # noqa: E402
from PIL import Image  # noqa: E402
from transformers import CLIPImageProcessorPil, SiglipImageProcessorPil  # noqa: E402
from transformers.models.idefics3 import Idefics3ImageProcessorPil  # noqa: E402
from transformers.models.qwen2_vl import Qwen2VLImageProcessorPil  # noqa: E402

# bench name -> (processor class, how one image is passed)
PROCESSORS = {
    "smolvlm-256m": (Idefics3ImageProcessorPil, "nested"),
    "llava-1.5": (CLIPImageProcessorPil, "list"),
    "qwen2-vl": (Qwen2VLImageProcessorPil, "list"),
    "clip-vit-b16": (CLIPImageProcessorPil, "list"),
    "siglip-224": (SiglipImageProcessorPil, "list"),
    "siglip-384": (SiglipImageProcessorPil, "list"),
}
IMAGES = ["rgb-512x512", "rgb-1024x768", "gray-2048x2048"]


def load_image(path):
    """The image as medvqa decodes it: gray stays `L` (the processor converts it to RGB, as
    medvqa does inside its preprocessing), colour is `RGB`."""
    with Image.open(path) as im:
        im.load()
        return im.convert("L") if im.mode in ("L", "I;16", "I") else im.convert("RGB")


def call(processor, how, image):
    images = [[image]] if how == "nested" else [image]
    return processor(images=images, return_tensors="np")


def per_call_seconds(fn, min_time=3.0, max_runs=100, min_runs=5):
    fn()  # warm-up
    times = []
    start = time.perf_counter()
    while len(times) < min_runs or (len(times) < max_runs and time.perf_counter() - start < min_time):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def criterion_median(proc, image):
    path = CRITERION / "preprocess" / proc / image / "new" / "estimates.json"
    try:
        return json.loads(path.read_text())["median"]["point_estimate"] / 1e9
    except (OSError, KeyError, ValueError):
        return None


def compare(entry, enc):
    """medvqa's tensor against transformers': shapes, max |diff|, share of equal values."""
    tdir = BENCH / "tensors"
    want = np.asarray(enc["pixel_values"])
    got = np.fromfile(tdir / entry["file"], dtype="<f4")
    out = {"hf_shape": list(want.shape), "medvqa_shape": entry["shape"], "hf_dtype": str(want.dtype)}
    if list(want.shape) != entry["shape"] or got.size != want.size:
        out["equal_shape"] = False
        return out
    want = want.reshape(-1)
    out["equal_shape"] = True
    out["max_abs_diff"] = float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64)))) if got.size else 0.0
    out["equal_share"] = float(np.mean(got == want)) if got.size else 1.0
    if entry.get("mask"):
        mask = np.fromfile(tdir / entry["mask"], dtype=np.uint8).astype(bool)
        hf_mask = np.asarray(enc["pixel_attention_mask"]).reshape(-1).astype(bool)
        out["mask_equal"] = bool(mask.size == hf_mask.size and np.array_equal(mask, hf_mask))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clean", action="store_true", help="delete medvqa's tensors afterwards")
    ap.add_argument("--only", help="run only processors whose name contains this")
    ap.add_argument("--check-only", action="store_true", help="compare tensors, time nothing")
    args = ap.parse_args()
    manifest_path = BENCH / "tensors" / "manifest.json"
    try:
        manifest = {(e["processor"], e["image"]): e for e in json.loads(manifest_path.read_text())}
    except OSError:
        sys.exit(f"{manifest_path} is missing: run `cargo bench --bench preprocess` first")
    images = {name: load_image(BENCH / "images" / f"{name}.png") for name in IMAGES}
    results = {}
    for pname, (cls, how) in PROCESSORS.items():
        if args.only and args.only not in pname:
            continue
        processor = cls.from_pretrained(str(CONFIGS / pname))
        for iname, img in images.items():
            enc = call(processor, how, img)
            row = compare(manifest[(pname, iname)], enc) if (pname, iname) in manifest else {}
            del enc
            if not args.check_only:
                hf = per_call_seconds(lambda: call(processor, how, img))
                m = criterion_median(pname, iname)
                row.update(hf_per_s=1.0 / hf, medvqa_per_s=None if m is None else 1.0 / m)
            results[f"{pname}/{iname}"] = row
            print(f"{pname:14} {iname:15} {json.dumps(row)}", file=sys.stderr)
    out = {
        "results": results,
        "versions": {
            "transformers": transformers.__version__,
            "pillow": PIL.__version__,
            "numpy": np.__version__,
            "python": sys.version.split()[0],
        },
    }
    (BENCH / "peer.json").write_text(json.dumps(out, indent=2))
    print(table(out))
    if args.clean:
        shutil.rmtree(BENCH / "tensors", ignore_errors=True)


def fmt(v, digits=1):
    return "–" if v is None else f"{v:,.{digits}f}"


def table(out):
    lines = [
        "| processor | image | output shape | medvqa img/s | transformers img/s | ratio | max abs diff | equal values |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for key, r in out["results"].items():
        pname, iname = key.split("/")
        m, h = r.get("medvqa_per_s"), r.get("hf_per_s")
        ratio = f"{m / h:.1f}×" if m and h else "–"
        if not r.get("equal_shape"):
            diff, share = "shape differs", "–"
        else:
            diff = f"{r['max_abs_diff']:.1g}" if r["max_abs_diff"] else "0"
            share = f"{100 * r['equal_share']:.2f}%"
            if r.get("mask_equal") is False:
                share += " (mask differs)"
        shape = "×".join(str(s) for s in r.get("hf_shape", []))
        lines.append(f"| {pname} | {iname} | {shape} | {fmt(m)} | {fmt(h)} | {ratio} | {diff} | {share} |")
    v = out["versions"]
    lines.append(
        f"\ntransformers {v['transformers']}, Pillow {v['pillow']}, numpy {v['numpy']}, Python {v['python']}."
    )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
