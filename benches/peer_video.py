#!/usr/bin/env python3
"""PyAV's and the `ffmpeg` program's time for what `cargo bench --bench video` measures: the
frames of a video file as RGB arrays (all 240, and the 8 of `{"uniform": 8}`), on the files
that bench writes (target/bench-video/clip240.{mkv,mp4}; run it first). One thread each, as
medvqa's pass runs; median of repeated runs.

    pip install av numpy
    python3 benches/peer_video.py
"""

import pathlib
import statistics
import subprocess
import time

import av
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
DIR = ROOT / "target/bench-video"
FRAMES = 240
EIGHT = [(2 * k * (FRAMES - 1) + 7) // 14 for k in range(8)]  # medvqa's uniform: 8


def pyav(path: pathlib.Path, wanted: set[int] | None) -> int:
    got = 0
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        stream.thread_type = "SLICE"
        stream.codec_context.thread_count = 1
        last = max(wanted) if wanted else None
        for i, frame in enumerate(c.decode(stream)):
            if wanted is None or i in wanted:
                arr = frame.to_ndarray(format="rgb24")
                assert arr.shape == (384, 448, 3)
                got += 1
            if last is not None and i >= last:
                break
    return got


def ffmpeg_cli(path: pathlib.Path, wanted: list[int] | None) -> int:
    args = ["ffmpeg", "-nostdin", "-v", "error", "-threads", "1", "-i", str(path), "-map", "0:v:0"]
    if wanted is not None:
        sel = "+".join(f"eq(n\\,{i})" for i in wanted)
        args += ["-vf", f"select='{sel}'", "-fps_mode", "passthrough", "-frames:v", str(len(wanted))]
    args += ["-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"]
    out = subprocess.run(args, check=True, capture_output=True).stdout
    n = len(out) // (448 * 384 * 3)
    np.frombuffer(out, dtype=np.uint8).reshape(n, 384, 448, 3)
    return n


def median_s(f, repeat: int = 7) -> float:
    f()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    print(f"PyAV {av.__version__}")
    print(f"{'file':<6} {'read':<10} {'PyAV ms':>9} {'fps':>7} {'ffmpeg CLI ms':>14} {'fps':>7}")
    for name, ext in [("ffv1", "mkv"), ("h264", "mp4")]:
        path = DIR / f"clip240.{ext}"
        for read, wanted in [("all", None), ("uniform_8", EIGHT)]:
            n = FRAMES if wanted is None else len(wanted)
            a = median_s(lambda: pyav(path, None if wanted is None else set(wanted)))
            b = median_s(lambda: ffmpeg_cli(path, wanted))
            print(f"{name:<6} {read:<10} {a * 1e3:>9.1f} {n / a:>7.0f} {b * 1e3:>14.1f} {n / b:>7.0f}")


if __name__ == "__main__":
    main()
