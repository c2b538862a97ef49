#!/usr/bin/env bash
# The main job on built-in data, the whole chain on 2 CPU cores in about 8 minutes (7 min 26 s measured, README):
#   Pythia 8 top jets -> JetNet-layout file -> store (local Dask cluster) -> EPiC-FM trained with a
#   small CPU config -> generated jets (a store) -> evaluation report with metrics and plots.
# Usage: bash scripts/main.sh [OUTDIR]   (default demo/; sizes can be changed with the variables below)
#        bash scripts/main.sh --showers [OUTDIR]   the shower chain (scripts/main_showers.sh, default demo-showers/)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--showers" ]; then
    shift
    exec bash scripts/main_showers.sh "$@"
fi
bash scripts/setup.sh
OUT=${1:-demo}
JETS=${JETS:-30000}          # generated Pythia top jets (30 particles)
EPOCHS=${EPOCHS:-60}         # EPiC-FM training epochs over the train split (70 %)
NUM=${NUM:-3000}             # generated jets, compared with as many test-split jets
mkdir -p "$OUT"
BIN=.venv/bin
export PYTHONWARNINGS=ignore

echo "== 1/6 generate $JETS Pythia 8 top jets"
"$BIN/pcdata" generate jets --process top --num-jets "$JETS" --num-particles 30 --seed 1 --workers 2 --out "$OUT/t.hdf5"
echo "== 2/6 ingest into a store on a 2-worker Dask cluster"
"$BIN/pcdata" ingest jetnet "$OUT/t.hdf5" --out "$OUT/top30.zarr" --workers 2 --rows-per-fragment 5000 --overwrite
echo "== 3/6 inspect"
"$BIN/pcdata" inspect "$OUT/top30.zarr"
echo "== 4/6 train EPiC-FM (small CPU config, $EPOCHS epochs)"
rm -rf "$OUT/run"
"$BIN/pcmodels" train --store "$OUT/top30.zarr" --config pcmodels/configs/epic-fm-small.yaml --epochs "$EPOCHS" --out "$OUT/run"
echo "== 5/6 sample $NUM jets"
"$BIN/pcmodels" sample --run "$OUT/run" --num "$NUM" --out "$OUT/generated.zarr"
echo "== 6/6 evaluate against the test split"
"$BIN/pcmodels" evaluate --real "$OUT/top30.zarr" --generated "$OUT/generated.zarr" --out "$OUT/report" --num "$NUM"
echo "report: $OUT/report (metrics.json and plots)"
