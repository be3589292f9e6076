#!/usr/bin/env python3
"""Peak memory of `medvqa score` against the number of questions (BENCHMARKS.md, issue 15).

Writes a manifest of N questions over 500 small PNG images (the five question kinds in
turn, one box each on the closed and grounding ones) and a predictions file with one
response per question, then runs `medvqa score` on them under `/usr/bin/time` and prints
the peak resident memory. Everything is written under the folder given (default: a new
temporary folder); nothing else is touched.

    cargo build --release
    python3 benches/score_memory.py --n 1000 100000

Standard library only, so it runs without the test packages.
"""

import argparse
import json
import pathlib
import struct
import subprocess
import tempfile
import time
import zlib

KINDS = ["closed", "single_choice", "multi_choice", "open", "grounding"]


def png(seed: int) -> bytes:
    """An 8x8 grey PNG whose pixels depend on `seed`."""
    raw = b"".join(b"\x00" + bytes((seed * 7 + x * 3 + y * 5) % 256 for x in range(8)) for y in range(8))

    def chunk(kind: bytes, data: bytes) -> bytes:
        c = kind + data
        return struct.pack(">I", len(data)) + c + struct.pack(">I", zlib.crc32(c))

    ihdr = struct.pack(">IIBBBBB", 8, 8, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def write_inputs(root: pathlib.Path, n: int) -> tuple[pathlib.Path, pathlib.Path]:
    img = root / "img"
    img.mkdir(parents=True, exist_ok=True)
    for i in range(500):
        p = img / f"{i:04d}.png"
        if not p.exists():
            p.write_bytes(png(i))
    manifest = root / f"m{n}.jsonl"
    preds = root / f"p{n}.jsonl"
    with manifest.open("w") as m, preds.open("w") as p:
        for i in range(n):
            kind = KINDS[i % len(KINDS)]
            row = {
                "id": f"q{i:06d}",
                "images": [f"img/{i % 500:04d}.png"],
                "question": f"Question {i} about the finding in this image?",
                "kind": kind,
                "meta": {"modality": ["cxr", "endoscopy"][i % 2]},
            }
            box = [0.1, 0.1, 0.7, 0.7]
            if kind == "closed":
                row["answer"] = ["yes", "no"][i % 2]
                response = ["yes", "no"][(i // 3) % 2]
            elif kind == "single_choice":
                row["options"] = ["nodule", "effusion", "cardiomegaly", "pneumothorax"]
                row["answer"] = "B"
                response = "The answer is B."
            elif kind == "multi_choice":
                row["options"] = ["nodule", "effusion", "cardiomegaly", "pneumothorax"]
                row["answer"] = ["A", "C"]
                response = "A, C"
            elif kind == "open":
                row["answer"] = "a small polyp"
                response = "small polyp" if i % 3 else "an ulcer"
            else:
                row["answer"] = None
                row["boxes"] = [{"image": 0, "box": box}]
                response = "[0.2, 0.1, 0.7, 0.8]"
            m.write(json.dumps(row) + "\n")
            p.write(json.dumps({"id": row["id"], "response": response}) + "\n")
    return manifest, preds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, nargs="+", default=[1000, 100000])
    ap.add_argument("--medvqa", default="target/release/medvqa")
    ap.add_argument("--dir", type=pathlib.Path, default=None, help="where to write (default: a new temporary folder)")
    args = ap.parse_args()
    root = args.dir or pathlib.Path(tempfile.mkdtemp(prefix="medvqa-score-memory-"))
    print("| questions | peak RSS | wall |\n|---:|---:|---:|")
    for n in args.n:
        manifest, preds = write_inputs(root, n)
        t = time.monotonic()
        out = subprocess.run(
            ["/usr/bin/time", "-f", "maxrss_kb %M", args.medvqa, "score",
             "--dataset", f"jsonl:{manifest}", "--predictions", str(preds), "--out", str(root / f"o{n}")],
            capture_output=True, text=True,
        )
        wall = time.monotonic() - t
        if out.returncode != 0:
            raise SystemExit(f"medvqa score failed on n={n}:\n{out.stderr}")
        kb = next(int(l.split()[1]) for l in out.stderr.splitlines() if l.startswith("maxrss_kb"))
        print(f"| {n:,} | {kb / 1024:.1f} MiB | {wall:.1f} s |", flush=True)


if __name__ == "__main__":
    main()
