#!/usr/bin/env bash
# The main job on built-in data: Pythia 8 top jets -> JetNet-layout file -> store (on a local Dask
# cluster) -> inspect -> export back to the JetNet layout and check it equals the input.
# Usage: bash scripts/main.sh [OUTDIR] (default: demo/)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
OUT=${1:-demo}
mkdir -p "$OUT"
BIN=.venv/bin
"$BIN/pcdata" generate jets --process top --num-jets 2000 --num-particles 30 --seed 1 --workers 2 --out "$OUT/t.hdf5"
"$BIN/pcdata" ingest jetnet "$OUT/t.hdf5" --out "$OUT/top30.zarr" --workers 2 --rows-per-fragment 500 --overwrite
"$BIN/pcdata" inspect "$OUT/top30.zarr"
"$BIN/pcdata" export "$OUT/top30.zarr" --format jetnet-hdf5 --out "$OUT/t-export.hdf5"
"$BIN/python" - "$OUT/t.hdf5" "$OUT/t-export.hdf5" <<'PY'
import sys, h5py, numpy as np
with h5py.File(sys.argv[1]) as a, h5py.File(sys.argv[2]) as b:
    same = all(np.array_equal(a[k][:], b[k][:]) for k in ("particle_features", "jet_features"))
print("export equals the generated input:", same)
sys.exit(0 if same else 1)
PY
echo "store: $OUT/top30.zarr"
