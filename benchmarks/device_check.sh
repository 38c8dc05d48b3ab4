#!/usr/bin/env bash
# GPU checks, for a machine with CUDA (not run by CI). From the repo root:
#   OUT=/tmp/out bash benchmarks/device_check.sh
# 1. tests/test_cuda.py: Glow and CNF train, resume and save on CUDA; a seed gives the same sample on
#    CPU and GPU; torchrun trains with the nccl backend.
# 2. The shipped Glow's configuration trained on CUDA for STEPS steps (training windows per second).
# Pure-Python dependencies the machine lacks can be put in .site/ (it goes first on PYTHONPATH).
set -o pipefail
OUT=${OUT:-/tmp/musicflow-device}
STEPS=${STEPS:-300}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/.site:$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
python3 -m pytest -q -p no:cacheprovider -o addopts="" tests/test_cuda.py 2>&1 | tee "$OUT/test_cuda.log"
python3 -m musicflow train --model glow --device cuda --out "$OUT/glow-cuda.pt" --steps "$STEPS" \
  --valid-every "$STEPS" --batch-size 128 --set steps=4 --set hidden=64 --set depth=3 \
  --set dequantization=variational --set autoregressive=true --context-noise 0.5 --seed 0 --quiet \
  2>&1 | tee "$OUT/train.log"
python3 - "$OUT/glow-cuda.pt" "$STEPS" <<'PY' | tee "$OUT/train_speed.json"
import json, sys
from musicflow.checkpoint import load_checkpoint
info = load_checkpoint(sys.argv[1]).info
steps, batch = int(info["step"]), int(info["train_config"]["batch_size"])
print(json.dumps({"steps": steps, "wall_time_s": info["wall_time_s"],
                  "train_windows_per_s": round(steps * batch / info["wall_time_s"], 1),
                  "valid_bpd": info["valid_bpd"]}))
PY
