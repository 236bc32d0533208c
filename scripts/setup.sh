#!/usr/bin/env bash
# Installs everything ftv needs on a fresh Debian/Ubuntu machine: system libraries (apt) and Python packages (pip).
#   bash scripts/setup.sh          # what the demo, the CLI and training need
#   bash scripts/setup.sh --dev    # + test and lint tools (pytest, ruff, playwright driving Debian's chromium)
set -euo pipefail
cd "$(dirname "$0")/.."

dev=0
[ "${1:-}" = "--dev" ] && dev=1

apt_packages=(
  espeak-ng                          # phonemizer's backend (the text front end)
  libavcodec59 libavformat59 libavutil57 libavdevice59 libavfilter8 libswscale6 libswresample4  # torchcodec / torchaudio.load
  libgl1 libglib2.0-0                # OpenCV wheels
  libsndfile1                        # soundfile
)
[ "$dev" = 1 ] && apt_packages+=(chromium fonts-dejavu-core)  # browser tests (never `playwright install`)

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

python -m pip install -q --disable-pip-version-check -r requirements.txt
[ "$dev" = 1 ] && python -m pip install -q --disable-pip-version-check -r requirements-dev.txt
echo "ftv: setup done"
