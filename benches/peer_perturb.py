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

# OpenCV: 0 means "no threading optimisations, run every function sequentially" (1 would
# still let some backends start a pool); the timing loop also checks that the process used
# no more CPU time than wall time.
cv2.setNumThreads(0)

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
    # medvqa pulls samples towards the image mean (ImageNet-C). RandomBrightnessContrast's
    # "contrast" only multiplies (x * 0.2: a darkening, no mean), so it did less work and a
    # different thing; ColorJitter's contrast is torchvision's: grayscale mean, then a table.
    "contrast": (A.ColorJitter(brightness=(1, 1), contrast=(0.2, 0.2), saturation=(1, 1), hue=(0, 0), p=1), "contrast"),
    "gamma": (A.RandomGamma(gamma_limit=(200, 200), p=1), None),
    "rotate": (A.Rotate(limit=(10, 10), p=1, **CONST), None),
    # medvqa shifts by whole pixels (0.1 of the side, rounded); so does this.
    "shift": (A.Affine(translate_px={"x": (51, 51), "y": (0, 0)}, p=1, **CONST), None),
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


CPU_RATIOS = {}


def per_call_seconds(fn, min_time=1.0, max_runs=200, min_runs=5, label=None):
    for _ in range(2):
        fn()
    times = []
    start, cpu0 = time.perf_counter(), time.process_time()
    while len(times) < min_runs or (len(times) < max_runs and time.perf_counter() - start < min_time):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    # Process CPU time over wall time: above 1 means a library ran threads.
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu0
    if label is not None:
        CPU_RATIOS[label] = cpu / wall
    return statistics.median(times)


def mad(a, b):
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def check(name, kind, img, alb):
    """Evidence that the albumentations call does the comparable work: a new array of the
    same shape, the input untouched, an output that differs from the input about as much as
    medvqa's output does (mean absolute difference per sample), and a fresh result each
    call rather than a cached one."""
    before = img.copy()
    out1 = alb(image=img)["image"]
    out2 = alb(image=img)["image"]
    mine = IMAGES / "medvqa" / f"{name}-{kind}.png"
    ref = cv2.imread(str(mine), cv2.IMREAD_UNCHANGED)
    if ref is not None and ref.ndim == 3:
        ref = cv2.cvtColor(ref, cv2.COLOR_BGR2RGB)
    return {
        "same_shape": out1.shape == img.shape and out1.dtype == img.dtype,
        "input_untouched": bool(np.array_equal(before, img)),
        "new_array": out1 is not img and not np.shares_memory(out1, img) and out1 is not out2,
        "mad_peer": mad(out1, img),
        "mad_medvqa": None if ref is None or ref.shape != img.shape else mad(ref, img),
    }


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
                row["check"] = check(name, kind, img, alb)
                row["albumentations"] = rate(per_call_seconds(lambda: alb(image=img)["image"], label=f"{kind}/{name}"))
            if ic is not None:
                try:
                    row["imagecorruptions"] = rate(
                        per_call_seconds(lambda: corrupt(img, corruption_name=ic, severity=3), min_time=0.5, max_runs=20, min_runs=3)
                    )
                except Exception as e:  # a peer that cannot run is reported, not fatal
                    row["imagecorruptions_error"] = f"{type(e).__name__}: {e}"[:120]
            rows[name] = row
            print(f"{kind:4} {name:18} " + "  ".join(f"{k}={fmt(v) if isinstance(v, float) else v}" for k, v in row.items() if k != "check"), file=sys.stderr)
        results[kind] = rows
    results["cpu_over_wall"] = CPU_RATIOS
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
    out.append("\n**Like-for-like check (albumentations call vs medvqa, severity 3)**\n")
    out.append("| image | perturbation | new array, input untouched | MAD medvqa | MAD albumentations | CPU/wall |")
    out.append("|---|---|---|---:|---:|---:|")
    for kind in ("rgb", "gray"):
        for name, row in results[kind].items():
            c = row.get("check")
            if c is None:
                continue
            ok = "yes" if c["same_shape"] and c["input_untouched"] and c["new_array"] else "NO"
            ratio = results["cpu_over_wall"].get(f"{kind}/{name}")
            out.append(
                f"| {kind} | {name} | {ok} | {fmt(c['mad_medvqa'], 1)} | {fmt(c['mad_peer'], 1)} | {fmt(ratio, 2)} |"
            )
    b = results["batch"]
    if b.get("1") and b.get("2"):
        out.append(
            f"\nBatch of 64 perturbations: {fmt(b['1'] * 64)} images/s on 1 thread, "
            f"{fmt(b['2'] * 64)} on 2 threads: {b['2'] / b['1']:.2f}× scaling."
        )
    return "\n".join(out)


if __name__ == "__main__":
    main()
