#!/usr/bin/env bash
# Installs everything ftv needs on a fresh Debian/Ubuntu machine: system libraries (apt) and Python packages (pip).
#   bash scripts/setup.sh          # the model, the CLI and the demo
#   bash scripts/setup.sh --train  # + training, data preparation and evaluation
#   bash scripts/setup.sh --dev    # + test and lint tools (pytest, ruff, playwright driving Debian's chromium)
set -euo pipefail
cd "$(dirname "$0")/.."

level=${1:-}
case "$level" in
  "" ) requirements=requirements.txt ;;
  --train ) requirements=requirements-train.txt ;;
  --dev ) requirements=requirements-dev.txt ;;
  * ) echo "usage: bash scripts/setup.sh [--train|--dev]" >&2; exit 2 ;;
esac

apt_packages=(
  espeak-ng                          # phonemizer's backend (the text front end)
  libavcodec59 libavformat59 libavutil57 libavdevice59 libavfilter8 libswscale6 libswresample4  # torchcodec / torchaudio.load
  libgl1 libglib2.0-0                # OpenCV wheels
  libsndfile1                        # soundfile
)
# the offline corpus's voice engines (train/make_offline_corpus.py)
[ -n "$level" ] && apt_packages+=(flite festival festvox-us-slt-hts festvox-kallpc16k festvox-kdlpc16k)
[ "$level" = --dev ] && apt_packages+=(chromium fonts-dejavu-core)  # browser tests (never `playwright install`)

SUDO=""
[ "$(id -u)" != 0 ] && SUDO="sudo"
missing=()
for package in "${apt_packages[@]}"; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

python -m pip install -q --disable-pip-version-check -r "$requirements"
# the checkout itself, editable: `import ftv_model` and the ftv-* commands work from any folder
python -m pip install -q --disable-pip-version-check --no-deps -e .
echo "ftv: setup done"
