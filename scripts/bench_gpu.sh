#!/usr/bin/env bash
# The GPU benchmark, WebGPU and PyTorch side by side in one run on one machine
# (the command behind docs/benchmarks/*.json). Run on the GPU machine from
# the repository root, with .carry/ beside it (see docs/benchmarks.md):
#   bash scripts/bench_gpu.sh KIND NAME OUT STEPS BUILD [BUILD...]
# KIND: the architecture for PyTorch (sd15 or sdxl), at the builds' size.
# NAME: the result's name (docs/benchmarks/NAME.json); OUT: where to write.
# STEPS: the steps of a generation (20 in the published results).
# BUILD: a wsd-compile output of KIND; give several (an fp32 and an fp16
#   build, say), all at one image size, to measure each of them; DIR:PATH
#   runs the build's kernel path PATH (e.g. BUILD:fp32, an fp16 build's
#   fallback), DIR alone the first path the device runs; +tiles (VAE decode
#   in tiles) and +offload (sequential offload) after either set the build's
#   memory modes (DIR:shader-f16+tiles+offload), and +tvmjs dispatches with
#   tvmjs' own dispatch instead of kept bindings (wsd-web bench
#   --tvmjs-dispatch: what they save, in one run). Only
#   manifest.json, model.wasm, tensor-cache.json and the tokenizer(s) are
#   needed: the weights are generated from a seed (--random-weights), on
#   both sides.
# Each build is benchmarked with wsd-web bench (robustness on and off), then
# PyTorch once (fp32 and fp16), then wsd-web report makes one result with a
# WebGPU record per build.
# WARMUP and REPEATS (environment; default 3 and 10) set the runs per stage;
# ROBUSTNESS (on, off or both, the default) which WebGPU robustness modes run.
set -euo pipefail
usage="usage: bash scripts/bench_gpu.sh KIND NAME OUT STEPS BUILD [BUILD...]"
if [ $# -lt 5 ]; then
  echo "$usage" >&2
  exit 2
fi
kind=$1 name=$2 out=$3 steps=$4
shift 4
builds=("$@")
case $kind in
  sd15 | sdxl) ;;
  *) echo "bench_gpu.sh: KIND must be sd15 or sdxl, not '$kind' (the builds come last now); $usage" >&2; exit 2 ;;
esac
if ! [[ $steps =~ ^[1-9][0-9]*$ ]]; then
  echo "bench_gpu.sh: STEPS must be a positive integer, not '$steps'; $usage" >&2
  exit 2
fi
runs="--warmup ${WARMUP:-3} --repeats ${REPEATS:-10}"
case ${ROBUSTNESS:-both} in
  on | off | both) ;;
  *) echo "bench_gpu.sh: ROBUSTNESS must be on, off or both, not '$ROBUSTNESS'" >&2; exit 2 ;;
esac
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# One BUILD argument: DIR[:PATH][+tiles][+offload][+tvmjs] -> $build, $path_arg, $mode_args.
parse_spec() {
  local spec=$1 mods="" mode
  if [[ $spec == *+* ]]; then mods=${spec#*+} spec=${spec%%+*}; fi
  build=${spec%%:*} path_arg="" mode_args=""
  if [ "$spec" != "$build" ]; then path_arg="--kernel-path ${spec#*:}"; fi
  for mode in ${mods//+/ }; do
    case $mode in
      tiles) mode_args+=" --vae-tiles on" ;;
      offload) mode_args+=" --offload" ;;
      tvmjs) mode_args+=" --tvmjs-dispatch" ;;
      *) echo "bench_gpu.sh: unknown mode +$mode in $1 (the modes are +tiles, +offload and +tvmjs)" >&2; exit 2 ;;
    esac
  done
}
# Every build: its kind, size and precision from its manifest; all of KIND, at one size.
size=""
for spec in "${builds[@]}"; do
  parse_spec "$spec"
  if [ ! -f "$build/manifest.json" ]; then
    echo "bench_gpu.sh: $build has no manifest.json: give directories written by wsd-compile" >&2
    exit 2
  fi
  info=$(python3 -c "import json,sys; m=json.load(open(sys.argv[1])); print(m['kind'], '%dx%d' % (m['image']['height'], m['image']['width']))" "$build/manifest.json")
  read -r build_kind build_size <<<"$info"
  if [ "$build_kind" != "$kind" ]; then
    echo "bench_gpu.sh: $build is a $build_kind build, not $kind" >&2
    exit 2
  fi
  if [ -n "$size" ] && [ "$build_size" != "$size" ]; then
    echo "bench_gpu.sh: $build is $build_size but ${builds[0]} is $size: give builds of one size" >&2
    exit 2
  fi
  size=$build_size
done
height=${size%x*} width=${size#*x}
# shellcheck source=scripts/gpu_env.sh
source "$root/scripts/gpu_env.sh"
# The PyTorch half runs last: find out now, not after minutes of WebGPU runs, that it cannot.
if ! python3 -c "import torch, diffusers" 2>/dev/null; then
  echo "bench_gpu.sh: the PyTorch half needs torch and diffusers here: run scripts/gpu_wheels.sh before sending .carry (it fetches the diffusers wheels), or install them" >&2
  exit 2
fi
mkdir -p "$out"
commands=() webgpu_args=() placeholders=()
i=0
for spec in "${builds[@]}"; do
  i=$((i + 1))
  parse_spec "$spec"
  json="$out/$name-webgpu-$i.json"
  webgpu="python3 -m wsd_web bench $build $path_arg$mode_args --steps $steps $runs --robustness ${ROBUSTNESS:-both} --random-weights 1 --json $json"
  echo "+ $webgpu"; $webgpu
  commands+=("$webgpu") webgpu_args+=(--webgpu "$json") placeholders+=(BUILD)
done
pytorch="python3 -m wsd_capture.bench --kind $kind --height $height --width $width --steps $steps --precision fp32 fp16 --device cuda $runs --json $out/$name-pytorch.json"
echo "+ $pytorch"; $pytorch
commands+=("$pytorch")
machine=$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | head -1)
mkdir -p "$out/docs/benchmarks"
cp "$root"/docs/benchmarks/*.json "$out/docs/benchmarks/" 2>/dev/null || true
env_prefix=""
[ -n "${WARMUP:-}" ] && env_prefix+="WARMUP=$WARMUP "
[ -n "${REPEATS:-}" ] && env_prefix+="REPEATS=$REPEATS "
[ -n "${ROBUSTNESS:-}" ] && env_prefix+="ROBUSTNESS=$ROBUSTNESS "
joined=$(printf ' ; %s' "${commands[@]}")
python3 -m wsd_web report "${webgpu_args[@]}" --pytorch "$out/$name-pytorch.json" \
  --command "${env_prefix}bash scripts/bench_gpu.sh $kind $name OUT $steps ${placeholders[*]}  # ${joined:3}" \
  --machine "$machine, $(nproc) CPU cores" --name "$name" --out-dir "$out/docs"
