#!/usr/bin/env bash
# A training job through the real worker on the device: queue -> worker -> child -> model.
#   bash bench/gpu_worker_job.sh [DATA_DIR]     (default .gpu/neu_surface, carried to the box)
# DEVICE=cpu runs the same path on a machine without a GPU. Prints one JSON object: the job row
# as `jobs show --json` gives it (status, progress, model_id, metrics per epoch) plus timings.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-.gpu/neu_surface}
DEVICE=${DEVICE:-cuda}
CLI=${CLI:-defectlens}
command -v "$CLI" >/dev/null 2>&1 || CLI=.venv/bin/defectlens
export DEFECTLENS_HOME=${DEFECTLENS_HOME:-$(mktemp -d)}
"$CLI" init --json >/dev/null
ds=$("$CLI" dataset import "$DATA" --name bench --json | python3 -c "import json,sys; print(json.load(sys.stdin)['id'])")
job=$("$CLI" jobs submit --dataset "$ds" --device "$DEVICE" ${EXTRA:-} --json | python3 -c "import json,sys; print(json.load(sys.stdin)['id'])")
t0=$(date +%s.%N)
"$CLI" worker --once
t1=$(date +%s.%N)
"$CLI" jobs show "$job" --json | python3 -c "
import json, sys
job = json.load(sys.stdin)
job['worker_wall_seconds'] = round($t1 - $t0, 1)
print(json.dumps(job, default=str))"
