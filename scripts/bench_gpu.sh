#!/usr/bin/env bash
# The GPU benchmark, WebGPU and PyTorch side by side in one run on one machine
# (the command behind docs/benchmarks/*.json). Run on the GPU machine from
# the repository root, with .carry/ beside it (see docs/benchmarks.md):
#   bash scripts/bench_gpu.sh BUILD KIND NAME OUT [STEPS]
# BUILD: a wsd-compile output; only manifest.json, model.wasm,
#   tensor-cache.json and the tokenizer(s) are needed: the weights are
#   generated from a seed (--random-weights), on both sides.
# KIND: the architecture for PyTorch (sd15 or sdxl), at the build's size.
# NAME: the result's name (docs/benchmarks/NAME.json); OUT: where to write.
# WARMUP and REPEATS (environment; default 3 and 10) set the runs per stage.
set -euo pipefail
build=$1 kind=$2 name=$3 out=$4 steps=${5:-20}
runs="--warmup ${WARMUP:-3} --repeats ${REPEATS:-10}"
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/gpu_env.sh
source "$root/scripts/gpu_env.sh"
mkdir -p "$out"
size=$(python3 -c "import json,sys; m=json.load(open(sys.argv[1])); print(m['image']['height'], m['image']['width'])" "$build/manifest.json")
read -r height width <<<"$size"
webgpu="python3 -m wsd_web bench $build --steps $steps $runs --random-weights 1 --json $out/$name-webgpu.json"
pytorch="python3 -m wsd_capture.bench --kind $kind --height $height --width $width --steps $steps --precision fp32 fp16 --device cuda $runs --json $out/$name-pytorch.json"
echo "+ $webgpu"; $webgpu
echo "+ $pytorch"; $pytorch
machine=$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | head -1)
mkdir -p "$out/docs/benchmarks"
cp "$root"/docs/benchmarks/*.json "$out/docs/benchmarks/" 2>/dev/null || true
python3 -m wsd_web report --webgpu "$out/$name-webgpu.json" --pytorch "$out/$name-pytorch.json" \
  --command "bash scripts/bench_gpu.sh BUILD $kind $name OUT $steps  # $webgpu ; $pytorch" \
  --machine "$machine, $(nproc) CPU cores" --name "$name" --out-dir "$out/docs"
