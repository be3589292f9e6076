#!/usr/bin/env bash
# Installs what medvqa needs on a fresh machine. Idempotent: a second run does nothing.
#
#   scripts/setup.sh          ONNX Runtime (the pinned PyPI wheel's libonnxruntime.so) into .ort/
#   scripts/setup.sh --video  the above, plus FFmpeg (Debian's ffmpeg package) for video datasets
#   scripts/setup.sh --test   the above, plus what the tests use: Python packages in .venv/,
#                             Chromium for the HTML report check and FFmpeg for the video tests
set -euo pipefail
cd "$(dirname "$0")/.."

ORT_VERSION=1.31.1
PYTHON=${PYTHON:-python3}

want_test=0
want_video=0
for arg in "$@"; do
  case "$arg" in
    --test) want_test=1; want_video=1 ;;
    --video) want_video=1 ;;
    -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown argument $arg" >&2; exit 2 ;;
  esac
done

say() { printf 'setup: %s\n' "$*" >&2; }

# ONNX Runtime: the shared library from the pinned PyPI wheel, no Python install needed.
if [ ! -f ".ort/libonnxruntime.so.${ORT_VERSION}" ]; then
  say "fetching onnxruntime==${ORT_VERSION} from PyPI"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  "$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: \
    --dest "$tmp" "onnxruntime==${ORT_VERSION}"
  mkdir -p .ort
  "$PYTHON" - "$tmp" <<'PY'
import glob, os, sys, zipfile
wheel = glob.glob(os.path.join(sys.argv[1], "onnxruntime-*.whl"))[0]
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if "/capi/libonnxruntime.so" in name:
            target = os.path.join(".ort", os.path.basename(name))
            with z.open(name) as src, open(target, "wb") as dst:
                dst.write(src.read())
PY
  say "ONNX Runtime library in .ort/"
fi

# FFmpeg's programs decode video datasets (src/data/video.rs); nothing else needs them.
if ! command -v ffmpeg >/dev/null 2>&1 || ! command -v ffprobe >/dev/null 2>&1; then
  if [ "$want_video" = 1 ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    say "installing ffmpeg (apt) for video datasets"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ffmpeg >/dev/null
  elif [ "$want_video" = 1 ]; then
    say "NOTICE: ffmpeg is missing and cannot be installed here (apt-get install ffmpeg as root): video samples will fail and the video tests will be SKIPPED"
  else
    say "NOTICE: ffmpeg is not installed; only video datasets need it (scripts/setup.sh --video installs it)"
  fi
fi

if [ "$want_test" = 1 ]; then
  if [ ! -x .venv/bin/python ]; then
    say "creating .venv for the test helpers"
    "$PYTHON" -m venv .venv
  fi
  if [ ! -f .venv/.medvqa-test-deps ] || ! cmp -s tests/requirements.txt .venv/.medvqa-test-deps; then
    say "installing tests/requirements.txt into .venv"
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -r tests/requirements.txt
    cp tests/requirements.txt .venv/.medvqa-test-deps
  fi
  # Packages whose files the tests read, without their dependencies (see the file).
  if [ ! -f .venv/.medvqa-test-nodeps ] || ! cmp -s tests/requirements-nodeps.txt .venv/.medvqa-test-nodeps; then
    say "installing tests/requirements-nodeps.txt into .venv (without dependencies)"
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -r tests/requirements-nodeps.txt
    cp tests/requirements-nodeps.txt .venv/.medvqa-test-nodeps
  fi
  if [ ! -d ../shared/data ]; then
    say "NOTICE: ../shared/data is missing: tests that read the real sample data will be SKIPPED"
  fi
  # Headless Chromium renders report.html in tests/report_html.rs (Debian's package).
  if ! command -v chromium >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
      say "installing chromium (apt) for the report.html browser check"
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
      say "NOTICE: chromium is missing (apt-get install chromium): the report.html browser check will be SKIPPED"
    fi
  fi
fi
