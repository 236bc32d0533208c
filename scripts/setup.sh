#!/usr/bin/env bash
# Installs everything ftv needs on a fresh Debian/Ubuntu machine: system libraries (apt) and Python packages (pip,
# into the project's virtual environment .venv, so it works where the system Python is externally managed).
#   bash scripts/setup.sh          # the model, the CLI and the demo
#   bash scripts/setup.sh --train  # + training, data preparation and evaluation
#   bash scripts/setup.sh --dev    # + test and lint tools (pytest, ruff, playwright driving Debian's chromium)
# Then run things with .venv/bin/python (or `source .venv/bin/activate`; the ftv-* commands are in .venv/bin).
# Cost: 7.9 GB in .venv on a machine without the packages (PyPI's torch for x86_64 Linux comes with its CUDA
# libraries even for CPU use), a few minutes to download; the apt packages add about 400 MB with a compiler (pyworld and
# webrtcvad have no wheels for Python 3.13, Debian 13's), --dev another 300 MB for chromium.
# PYTHON=/path/to/python3.x picks the interpreter (3.10 or newer; default: python3, else python).
set -euo pipefail
cd "$(dirname "$0")/.."

level=${1:-}
case "$level" in
  "" ) requirements=requirements.txt ;;
  --train ) requirements=requirements-train.txt ;;
  --dev ) requirements=requirements-dev.txt ;;
  * ) echo "usage: bash scripts/setup.sh [--train|--dev]" >&2; exit 2 ;;
esac

# Each entry is one package under the names Debian and Ubuntu releases give it, newest first (Debian 13: libavcodec61,
# Ubuntu 24.04: libavcodec60, Debian 12: libavcodec59, ...): the first one apt knows is installed.
apt_groups=(
  "espeak-ng"                                              # phonemizer's backend (the text front end)
  "libavcodec61 libavcodec60 libavcodec59"                 # torchcodec / torchaudio.load (FFmpeg 7 / 6 / 5)
  "libavformat61 libavformat60 libavformat59"
  "libavutil59 libavutil58 libavutil57"
  "libavdevice61 libavdevice60 libavdevice59"
  "libavfilter10 libavfilter9 libavfilter8"
  "libswscale8 libswscale7 libswscale6"
  "libswresample5 libswresample4"
  "libgl1"                                                 # OpenCV wheels
  "libglib2.0-0t64 libglib2.0-0"
  "libsndfile1"                                            # soundfile
  "python3-venv"                                           # the project's virtual environment
  "build-essential" "python3-dev"                          # packages without wheels for the newest Pythons
)
# the offline corpus's voice engines' debian_packages (ftv_train/corpus/engines; tests/test_corpus_engines.py)
[ -n "$level" ] && apt_groups+=("flite" "festival" "festvox-us-slt-hts" "festvox-kallpc16k" "festvox-kdlpc16k")
[ "$level" = --dev ] && apt_groups+=("chromium" "fonts-dejavu-core")  # browser tests (never `playwright install`)

SUDO=""
[ "$(id -u)" != 0 ] && SUDO="sudo"
installed() { dpkg -s "$1" 2>/dev/null | grep -q "^Status: install ok installed"; }
missing_groups=()
for group in "${apt_groups[@]}"; do
  found=""
  for name in $group; do installed "$name" && found=1 && break; done
  [ -z "$found" ] && missing_groups+=("$group")
done
if [ "${#missing_groups[@]}" -gt 0 ]; then
  $SUDO apt-get update -qq
  to_install=()
  for group in "${missing_groups[@]}"; do
    chosen=""
    for name in $group; do
      if [ -n "$(apt-cache policy "$name" 2>/dev/null | awk '/Candidate:/ && $2 != "(none)" {print $2}')" ]; then
        chosen=$name
        break
      fi
    done
    if [ -z "$chosen" ]; then
      echo "ftv: apt knows none of: $group (an unsupported release?); install its equivalent by hand." >&2
      exit 1
    fi
    to_install+=("$chosen")
  done
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${to_install[@]}" >/dev/null
fi

python_bin=${PYTHON:-$(command -v python3 || command -v python || true)}
if [ -z "$python_bin" ]; then
  echo "ftv: no python3 found: apt-get install python3 python3-venv (Python 3.10 or newer)." >&2
  exit 1
fi
if ! "$python_bin" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
  echo "ftv: $python_bin is Python $("$python_bin" -V 2>&1); ftv needs 3.10 or newer (set PYTHON=...)." >&2
  exit 1
fi
# --system-site-packages: what the interpreter already has at the pinned versions is reused, not downloaded again
[ -x .venv/bin/python ] || "$python_bin" -m venv --system-site-packages .venv
venv_python=.venv/bin/python
"$venv_python" -m pip install -q --disable-pip-version-check -r "$requirements"
# the checkout itself, editable: `import ftv_model` and the ftv-* commands work from any folder
"$venv_python" -m pip install -q --disable-pip-version-check --no-deps -e .
echo "ftv: setup done: run with .venv/bin/python (or source .venv/bin/activate)"
