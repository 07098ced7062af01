#!/usr/bin/env bash
# Every CPU benchmark in docs/benchmarks.md, in order; JSON results land in bench/out/.
# The baseline is slow on 2 cores (tens of minutes); skip it with SKIP_BASELINE=1.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
mkdir -p bench/out
run() {  # name, command...: record load before and after every result
  local name=$1; shift
  echo "== $name  start $(date -u +%FT%TZ)  load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
  "$@" > "bench/out/$name.json" 2> "bench/out/$name.log"
  echo "== $name  end   $(date -u +%FT%TZ)  load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
}
run train_neu "$PY" bench/train_neu.py --save bench/out/models/neu
run inference_speed "$PY" bench/inference_speed.py --model bench/out/models/neu
run heatmap_speed "$PY" bench/heatmap_speed.py --model bench/out/models/neu
if [ -z "${SKIP_BASELINE:-}" ]; then
  run baseline_keras_style "$PY" bench/baseline_keras_style.py
fi
run train_casting "$PY" bench/train_casting.py --img-size 128 --epochs 12 --rot90
if [ ! -d bench/out/ingest_model_home/models ]; then
  DEFECTLENS_HOME=bench/out/ingest_model_home .venv/bin/defectlens train \
    --data ../shared/datasets/casting --split-file ../shared/datasets/casting/splits.csv \
    --name casting --epochs 3 --device cpu --json > bench/out/ingest_model_train.json
fi
(cd bench && "../$PY" ingest_speed.py --runs 2 > out/ingest_speed.json)
# Issue 9's production-like datasets: each against the issue-time recipe (about 1.5 h in all).
if [ -z "${SKIP_PRODUCTION:-}" ]; then
  for sc in neu_300_20 casting5 casting2 neu_square neu_canvas; do
    for recipe in issue default; do
      run "production_${sc}_${recipe}" "$PY" bench/production.py --scenario "$sc" --recipe "$recipe"
    done
  done
  run production_casting_rot90 "$PY" bench/production.py --scenario casting --extra=--rot90
fi
# Issue 12, hole 2: peak memory of a 2 GB zip against a 200 MB one (about 5 min, 2.4 GB of disk).
run ingest_memory "$PY" bench/ingest_memory.py
rm -rf bench/out/ingest_memory
# Issue 12: faults (about 20 min), concurrency (about 3 min; PostgreSQL when
# DEFECTLENS_TEST_PG_URL is set), 20 browser sessions (about 6 min), the decode fuzz (10 min).
run faults "$PY" bench/faults.py
run concurrency "$PY" bench/concurrency.py
run load_browsers "$PY" bench/load_browsers.py
run fuzz_decode "$PY" bench/fuzz_decode.py
# Issue 11: how often a stable line of the demo month shows a chance SPC signal (seconds).
run demo_story "$PY" bench/demo_story.py --seeds 300
# Issue 11: one training step of the demo's model (batch, threads, channels_last; seconds).
run train_step "$PY" bench/train_step.py
