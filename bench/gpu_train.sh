#!/usr/bin/env bash
# GPU check on the lent device machine (see docs/benchmarks.md). Needs .gpu/neu_surface carried.
#   bash bench/gpu_train.sh train   -> bench/train_neu.py --device cuda (time to >= 99 %)
#   bash bench/gpu_train.sh sweep   -> recipe sweep, one JSON line per run
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-bench/out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))"
case "${1:-train}" in
  sweep)
    python3 bench/sweep_neu.py --device cuda --seeds 0 1 --out "$OUT/sweep.jsonl" \
      --budget-s "${SWEEP_BUDGET_S:-230}" "${@:2}" > "$OUT/sweep.json"
    ;;
  train)
    for seed in 0 1 2; do
      python3 bench/train_neu.py --device cuda --seed "$seed" "${@:2}" \
        > "$OUT/gpu_train_seed$seed.json" 2> "$OUT/gpu_train_seed$seed.log"
      python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print({k: d[k] for k in ('device','val_accuracy','train_seconds','load_seconds','fit_wall_seconds','first_epoch_at_0.99','wall_s_to_0.99_incl_load')})" "$OUT/gpu_train_seed$seed.json"
    done
    ;;
esac
