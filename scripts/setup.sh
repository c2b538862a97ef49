#!/usr/bin/env bash
# Create .venv (once) and install the project with its test tools. Idempotent: a second run only
# checks. torch is pinned to 2.13.0 first: here that is the local CPU build; an unpinned torch
# would pull several GB of CUDA packages. On a machine with an NVIDIA GPU the GPU extra is added.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
VPY=.venv/bin/python
stamp=.venv/.pcdata-installed
want=$(sha256sum pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    exit 0
fi
"$VPY" -m pip install -q --upgrade pip
"$VPY" -m pip install -q "torch==2.13.0"
extras="dev"
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    extras="dev,gpu"
fi
"$VPY" -m pip install -q -e ".[${extras}]"
echo "$want" > "$stamp"
