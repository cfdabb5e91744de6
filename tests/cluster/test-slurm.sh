#!/usr/bin/env bash
# `make test-slurm`: the tiny preset end to end through workflow/profiles/slurm on a real
# single-node SLURM cluster (tests/cluster/start-slurm.sh), then the same preset locally,
# then tests/cluster/check_slurm_run.py: every job a SLURM job (sacct), the profile's
# mem_mb / runtime / cpus_per_task in sbatch, the summary, validation and alignment CSVs
# equal. The daemons are stopped on exit. ~2x the time of the tiny preset (two runs).
set -euo pipefail
PY=${PY:-.venv/bin/python}
SNAKE=${SNAKE:-.venv/bin/snakemake}
CORES=${CORES:-all}
OUT=${OUT:-results-slurm-test}
HERE=$(cd "$(dirname "$0")" && pwd)
export SLURM_CONF=${SLURM_TEST_DIR:-/tmp/swift-slurm}/etc/slurm.conf

trap '"$HERE/stop-slurm.sh"' EXIT
"$HERE/start-slurm.sh"
rm -rf "$OUT"; mkdir -p "$OUT"
echo "== the tiny preset through SLURM (workflow/profiles/slurm)"
"$SNAKE" --workflow-profile workflow/profiles/slurm --configfile config/tiny.yaml \
  --config results="$OUT/slurm" --jobs 4 --slurm-logdir "$OUT/slurm-logs" 2>&1 | tee "$OUT/slurm-run.log"
echo "== the tiny preset locally"
"$SNAKE" --workflow-profile workflow/profiles/default --cores "$CORES" --configfile config/tiny.yaml \
  --config results="$OUT/local" > "$OUT/local-run.log" 2>&1 || { tail -n 50 "$OUT/local-run.log"; exit 1; }
echo "== checks"
"$PY" "$HERE/check_slurm_run.py" --log "$OUT/slurm-run.log" --profile workflow/profiles/slurm \
  --local "$OUT/local" --slurm "$OUT/slurm"
