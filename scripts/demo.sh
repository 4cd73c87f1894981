#!/usr/bin/env bash
# The main job: set up, compile a Stable Diffusion pipeline for WebGPU, render
# one image headless as a smoke test, then serve the app and print its URL.
#
#   bash scripts/demo.sh                      # the built-in tiny-sd15 (random weights, no download)
#   WSD_MODEL=/path/to/sd15-diffusers-dir bash scripts/demo.sh   # your own SD 1.5 directory
#
# WSD_PRECISION=fp16 builds half precision (needs a browser with shader-f16);
# WSD_DEMO_SERVE=0 stops after the headless render; WSD_PORT picks the port.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
bash scripts/setup.sh
export PATH="$root/.venv/bin:$PATH"
precision=${WSD_PRECISION:-fp32}
if [ -n "${WSD_MODEL:-}" ]; then
  source_args=(--model "$WSD_MODEL"); name=$(basename "$WSD_MODEL")
else
  source_args=(--preset tiny-sd15); name=tiny-sd15
fi
out=${WSD_DEMO_OUT:-build/$name-$precision}
echo "== compile $name ($precision) for WebGPU into $out"
rm -rf "$out"
wsd-compile sd15 "${source_args[@]}" --out "$out" --precision "$precision" -v
wsd-artifacts verify "$out"
if [ "$precision" = fp32 ]; then
  echo "== render one image in headless Chromium (WebGPU on this machine; SwiftShader without a GPU)"
  wsd-web render "$out" --prompt "a watercolor painting of a lighthouse at dawn" --steps 8 --out "build/$name.png"
fi
if [ "${WSD_DEMO_SERVE:-1}" != 0 ]; then
  exec wsd-web serve "$out" --port "${WSD_PORT:-8000}"
fi
