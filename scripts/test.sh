#!/usr/bin/env bash
# Install (scripts/setup.sh) and run the whole test suite; with arguments, only pytest with them.
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
PCDATA_FUZZ_SECONDS=${PCDATA_FUZZ_SECONDS:-2} .venv/bin/python -m pytest -m fuzz tests/fuzz -q
# A scoped mutation run (the split cuts, about 200 mutants: 1-2 min on 2 cores): their tests must
# still kill at least 95 % of the mutants, or CI fails (scripts/mutation.py runs every target).
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
.venv/bin/python scripts/mutation.py --only splits --min-rate 0.95 --scratch "$scratch" --out "$scratch/report"
