#!/usr/bin/env bash
# Debian packages of the real services some tests start (tests/ingest/test_batch.py: a single-node
# SLURM, scripts/slurm-local.sh; tests/ingest/test_xrootd.py: an XRootD server). Idempotent and quick once installed; without root or without
# apt-get it only says so, and those tests skip with the reason.
set -uo pipefail
want=(slurm-wlm munge xrootd-server xrootd-client)
missing=()
for pkg in "${want[@]}"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "services: cannot install ${missing[*]} (needs root and apt-get); their tests will skip" >&2
    exit 0
fi
echo "services: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null 2>&1 || true
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1 \
    || echo "services: apt-get install ${missing[*]} failed; their tests will skip" >&2
exit 0
