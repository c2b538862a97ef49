#!/usr/bin/env bash
# The main job on showers, the whole chain on 2 CPU cores in about 13 minutes (README):
#   parametrised ds2 showers -> CaloChallenge HDF5 file -> shower store (local Dask cluster) ->
#   CaloPointFlow II trained with the small CPU config -> generated showers as an official
#   CaloChallenge file (incident energies of the test split) -> the CaloChallenge evaluation
#   against the test split, beside the real-vs-real floor.
# Usage: bash scripts/main_showers.sh [OUTDIR]   (or bash scripts/main.sh --showers [OUTDIR]; default demo-showers/)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
OUT=${1:-demo-showers}
SHOWERS=${SHOWERS:-10000}    # generated ds2 showers (70 % train, 15 % val, 15 % test)
MINUTES=${MINUTES:-7}        # CaloPointFlow training budget (wall time; at most EPOCHS epochs)
EPOCHS=${EPOCHS:-10}
NUM=${NUM:-1500}             # generated showers, compared with the test split's
mkdir -p "$OUT"
BIN=.venv/bin
export PYTHONWARNINGS=ignore

echo "== 1/6 generate $SHOWERS parametrised ds2 showers"
"$BIN/pcdata" generate showers --geometry ds2 --num-showers "$SHOWERS" --seed 1 --workers 2 --out "$OUT/ds2.hdf5"
echo "== 2/6 ingest into a store on a 2-worker Dask cluster"
"$BIN/pcdata" ingest calochallenge "$OUT/ds2.hdf5" --geometry ds2 --out "$OUT/ds2.zarr" --workers 2 --overwrite
echo "== 3/6 inspect"
"$BIN/pcdata" inspect "$OUT/ds2.zarr"
echo "== 4/6 train CaloPointFlow II (small CPU config, $MINUTES minutes)"
rm -rf "$OUT/run"
"$BIN/pcmodels" train --store "$OUT/ds2.zarr" --config pcmodels/configs/calopointflow-small.yaml --epochs "$EPOCHS" \
    --set "train.max_minutes=$MINUTES" --out "$OUT/run"
echo "== 5/6 sample $NUM showers for the test split's incident energies (official CaloChallenge file)"
"$BIN/pcmodels" sample --run "$OUT/run" --num "$NUM" --incident "$OUT/ds2.zarr" --format calochallenge-hdf5 \
    --out "$OUT/generated.hdf5"
echo "== 6/6 evaluate against the test split (CaloChallenge metrics and the real-vs-real floor)"
"$BIN/pcmodels" evaluate --real "$OUT/ds2.zarr" --generated "$OUT/generated.hdf5" --out "$OUT/report" --num "$NUM"
echo "report: $OUT/report (metrics.json, summary.txt and plots)"
