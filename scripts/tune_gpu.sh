#!/usr/bin/env bash
# Per-kernel GPU times of every tile variant that `scripts/tune_tiles.py build`
# packed, on the GPU machine (step 2 of the recipe in scripts/tune_tiles.py):
#   bash scripts/tune_gpu.sh BUILDS OUT
# BUILDS holds one directory per variant (model.wasm.xz, manifest, weight
# index, tokenizers); OUT gets VARIANT.json per variant (wsd-web bench --json).
set -euo pipefail
builds=$1 out=$2
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/gpu_env.sh
source "$root/scripts/gpu_env.sh"
mkdir -p "$out"
for dir in "$builds"/*/; do
  name=$(basename "$dir")
  [ -f "$dir/model.wasm" ] || xz -dk "$dir/model.wasm.xz"
  echo "+ $name"
  python3 -m wsd_web bench "$dir" --steps 2 --warmup 2 --repeats 5 --robustness on \
    --random-weights 1 --json "$out/$name.json" | grep -E "UNet step|pipeline compile" || true
done
