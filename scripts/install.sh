#!/usr/bin/env bash
# Install rlhfkit and everything it needs into ./.venv (created if missing).
#   bash scripts/install.sh           the package, the feedback app and the test tools
#   TORCH_SPEC="torch" bash scripts/install.sh   use another torch (e.g. a CUDA build on a GPU machine)
# The default pins torch==2.13.0, the CPU build CI uses.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "${TORCH_SPEC:-torch==2.13.0}"
.venv/bin/python -m pip install -q -e ".[feedback,test]"
echo "installed: $(.venv/bin/rlhfkit --version) in $(pwd)/.venv"
