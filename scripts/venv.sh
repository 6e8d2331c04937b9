#!/usr/bin/env bash
# Makes (or reuses) the tests' Python venv and prints its python: the reference firmware
# (reference-firmware/, installed from this repository), gymnasium with MuJoCo, onnxruntime, and
# the MCAP readers (scripts/test-requirements.txt). Never torch. Used by scripts/test.sh and
# scripts/test-aarch64.sh. Environment: RESQ_VENV (default ~/.cache/resq-venv).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${RESQ_VENV:-$HOME/.cache/resq-venv}"
if [ ! -x "$VENV/bin/python" ]; then
    echo "venv.sh: creating the Python venv $VENV" >&2
    python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    -r scripts/test-requirements.txt "./reference-firmware[ros2]" >&2
echo "$VENV/bin/python"
