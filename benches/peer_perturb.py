#!/usr/bin/env python3
"""Times albumentations and imagecorruptions on the images `cargo bench --bench perturb`
used, single-threaded, and prints a side-by-side table with medvqa's criterion medians.

    cargo bench --bench perturb                 # medvqa numbers + the two test images
    python3 benches/peer_perturb.py             # peers; prints the markdown table

The script makes its own virtual environment under target/peer-venv (pinned
albumentations and imagecorruptions from PyPI) and re-runs itself inside it. Parameters
are each library's nearest equivalent of medvqa's severity 3 (1 for one-level
perturbations), with lengths scaled to 512 px as medvqa scales its 224-px tables.
Results also go to target/perturb-bench/peer.json.
"""

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
VENV = TARGET / "peer-venv"
IMAGES = TARGET / "perturb-bench"
CRITERION = TARGET / "criterion"
PINS = ["albumentations==2.0.8", "imagecorruptions==1.1.2"]

# Every library on one thread, before numpy / OpenCV load.
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[var] = "1"


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

import cv2  # noqa: E402
import numpy as np  # noqa: E402

cv2.setNumThreads(0)  # OpenCV: no worker threads at all

import albumentations as A  # noqa: E402
import imagecorruptions.corruptions as icc  # noqa: E402
import skimage.filters  # noqa: E402
from imagecorruptions import corrupt  # noqa: E402


def _gaussian(image, sigma, multichannel=None, **kw):
    # imagecorruptions 1.1.2 passes `multichannel`, which scikit-image removed; this shim
    # forwards it as `channel_axis` so its Gaussian blur runs at all.
    return skimage.filters.gaussian(image, sigma=sigma, channel_axis=-1 if multichannel else None, **kw)


icc.gaussian = _gaussian

S = 512 / 224  # medvqa scales ImageNet-C lengths given at 224 px to the short side
CONST = dict(border_mode=cv2.BORDER_CONSTANT, fill=0)


def odd(x):
    k = int(round(x))
    return k if k % 2 == 1 else k + 1


# medvqa name -> (albumentations transform or None, imagecorruptions name or None)
PEERS = {
    "gaussian-noise": (A.GaussNoise(std_range=(0.18, 0.18), mean_range=(0, 0), p=1), "gaussian_noise"),
    "poisson-noise": (None, "shot_noise"),
    "speckle-noise": (None, "speckle_noise"),
    "salt-pepper": (A.SaltAndPepper(amount=(0.09, 0.09), salt_vs_pepper=(0.5, 0.5), p=1), "impulse_noise"),
    "gaussian-blur": (A.GaussianBlur(blur_limit=0, sigma_limit=(3 * S, 3 * S), p=1), "gaussian_blur"),
    "defocus-blur": (A.Defocus(radius=(round(6 * S), round(6 * S)), alias_blur=(0.5 * S, 0.5 * S), p=1), "defocus_blur"),
    "motion-blur": (A.MotionBlur(blur_limit=(odd(30 * S), odd(30 * S)), p=1), "motion_blur"),
    "pixelate": (
        A.Downscale(
            scale_range=(0.4, 0.4),
            interpolation_pair={"downscale": cv2.INTER_AREA, "upscale": cv2.INTER_NEAREST},
            p=1,
        ),
        "pixelate",
    ),
    "jpeg": (A.ImageCompression(quality_range=(15, 15), compression_type="jpeg", p=1), "jpeg_compression"),
    "brightness": (A.RandomBrightnessContrast(brightness_limit=(0.3, 0.3), contrast_limit=(0, 0), p=1), "brightness"),
    "contrast": (A.RandomBrightnessContrast(brightness_limit=(0, 0), contrast_limit=(-0.8, -0.8), p=1), "contrast"),
    "gamma": (A.RandomGamma(gamma_limit=(200, 200), p=1), None),
    "rotate": (A.Rotate(limit=(10, 10), p=1, **CONST), None),
    "shift": (A.Affine(translate_percent={"x": (0.1, 0.1), "y": (0.0, 0.0)}, p=1, **CONST), None),
    "zoom": (A.RandomResizedCrop(size=(512, 512), scale=(0.49, 0.49), ratio=(1, 1), p=1), None),
    "flip-h": (A.HorizontalFlip(p=1), None),
    "flip-v": (A.VerticalFlip(p=1), None),
    "kvasir-transform": (
        A.Compose(
            [
                A.RandomResizedCrop(size=(512, 512), scale=(0.9, 1.0), ratio=(0.95, 1.05), p=1),
                A.Rotate(limit=10, p=1, **CONST),
                A.Affine(translate_percent=(-0.1, 0.1), p=1, **CONST),
                A.ColorJitter(brightness=(0.8, 1.2), contrast=(0.8, 1.2), saturation=(1, 1), hue=(0, 0), p=1),
            ]
        ),
        None,
    ),
}


def per_call_seconds(fn, min_time=1.0, max_runs=200, min_runs=5):
    for _ in range(2):
        fn()
    times = []
    start = time.perf_counter()
    while len(times) < min_runs or (len(times) < max_runs and time.perf_counter() - start < min_time):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def criterion_median(group, name, kind):
    path = CRITERION / group / name / kind / "new" / "estimates.json"
    try:
        return json.loads(path.read_text())["median"]["point_estimate"] / 1e9
    except (OSError, KeyError, ValueError):
        return None


def load(kind):
    path = IMAGES / f"{kind}.png"
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        sys.exit(f"{path} is missing: run `cargo bench --bench perturb` first")
    return img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def rate(seconds):
    return None if not seconds else 1.0 / seconds


def fmt(v, digits=0):
    return "–" if v is None else f"{v:,.{digits}f}"


def main():
    results = {}
    for kind in ("rgb", "gray"):
        img = load(kind)
        rows = {}
        for name, (alb, ic) in PEERS.items():
            row = {"medvqa": rate(criterion_median("perturb", name, kind))}
            if alb is not None:
                row["albumentations"] = rate(per_call_seconds(lambda: alb(image=img)["image"]))
            if ic is not None:
                try:
                    row["imagecorruptions"] = rate(
                        per_call_seconds(lambda: corrupt(img, corruption_name=ic, severity=3), min_time=0.5, max_runs=20, min_runs=3)
                    )
                except Exception as e:  # a peer that cannot run is reported, not fatal
                    row["imagecorruptions_error"] = f"{type(e).__name__}: {e}"[:120]
            rows[name] = row
            print(f"{kind:4} {name:18} " + "  ".join(f"{k}={fmt(v) if isinstance(v, float) else v}" for k, v in row.items()), file=sys.stderr)
        results[kind] = rows
    results["batch"] = {t: rate(criterion_median("batch", "threads", t)) for t in ("1", "2")}
    results["versions"] = {
        "albumentations": A.__version__,
        "opencv": cv2.__version__,
        "numpy": np.__version__,
        "imagecorruptions": "1.1.2",
        "python": sys.version.split()[0],
    }
    (IMAGES / "peer.json").write_text(json.dumps(results, indent=2))
    print(table(results))


def table(results):
    out = []
    for kind in ("rgb", "gray"):
        out.append(f"\n**512×512 {kind.upper()}, one thread, images/s (median)**\n")
        out.append("| perturbation | medvqa | albumentations | ratio | imagecorruptions | ratio |")
        out.append("|---|---:|---:|---:|---:|---:|")
        for name, row in results[kind].items():
            m, a, i = row.get("medvqa"), row.get("albumentations"), row.get("imagecorruptions")
            ra = f"{m / a:.1f}×" if m and a else "–"
            ri = f"{m / i:.0f}×" if m and i else "–"
            out.append(f"| {name} | {fmt(m)} | {fmt(a)} | {ra} | {fmt(i, 1)} | {ri} |")
    b = results["batch"]
    if b.get("1") and b.get("2"):
        out.append(
            f"\nBatch of 64 perturbations: {fmt(b['1'] * 64)} images/s on 1 thread, "
            f"{fmt(b['2'] * 64)} on 2 threads: {b['2'] / b['1']:.2f}× scaling."
        )
    return "\n".join(out)


if __name__ == "__main__":
    main()
