#!/usr/bin/env bash
# Install (scripts/setup.sh) and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/services.sh
if [ $# -gt 0 ]; then
    exec .venv/bin/python -m pytest "$@"
fi
.venv/bin/python -m pytest
# Fuzz smoke (README, Testing): every fuzz target for a few seconds. A longer campaign:
# PCDATA_FUZZ_SECONDS=600 .venv/bin/python -m pytest -m fuzz tests/fuzz
PCDATA_FUZZ_SECONDS=${PCDATA_FUZZ_SECONDS:-2} exec .venv/bin/python -m pytest -m fuzz tests/fuzz -q
