#!/usr/bin/env bash
# The GPU path's one device check: see scripts/gpu_check.py. --tiny runs it on the CPU (CI).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
exec "$PY" scripts/gpu_check.py "$@"
