#!/usr/bin/env bash
# Create .venv (if missing) and install mtdtl with everything it needs. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -r requirements.txt
# tinysoundfont renders the demo corpus; its metadata asks for pyaudio (playback only,
# needs PortAudio headers to build), which mtdtl never uses: install without it.
.venv/bin/python -m pip install -q --no-deps "tinysoundfont==0.3.7"
.venv/bin/python -m ipykernel install --sys-prefix --name python3 >/dev/null
echo "mtdtl installed in $(pwd)/.venv"
