#!/usr/bin/env bash
# Install rlhfkit and everything it needs into ./.venv (created if missing).
#   bash scripts/install.sh           the package, the feedback app and the test tools
#   TORCH_SPEC="torch" bash scripts/install.sh   use another torch (e.g. a CUDA build on a GPU machine)
# The default pins torch==2.13.0, the CPU build CI uses.
set -euo pipefail
cd "$(dirname "$0")/.."
# System packages the feedback tests drive: Debian's chromium (the browser test, through Playwright;
# never `playwright install`) and PostgreSQL (the load test starts its own server with initdb/pg_ctl).
# Installed only when missing and only where apt-get exists (as root, or through sudo).
apt_missing=()
[ -x /usr/bin/chromium ] || apt_missing+=(chromium)
compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" > /dev/null || apt_missing+=(postgresql)
if [ "${#apt_missing[@]}" -gt 0 ] && command -v apt-get > /dev/null; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${apt_missing[@]}" > /dev/null
fi
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "${TORCH_SPEC:-torch==2.13.0}"
.venv/bin/python -m pip install -q -e ".[feedback,control,test,scale]"
echo "installed: $(.venv/bin/rlhfkit --version) in $(pwd)/.venv"
