#!/usr/bin/env bash
# The main job: set up, compile a Stable Diffusion pipeline for WebGPU, render
# one image headless as a smoke test, then serve the app and print its URL.
#
#   bash scripts/demo.sh                      # the built-in tiny-sd15 (random weights, no download)
#   WSD_PRESET=tiny-sdxl bash scripts/demo.sh # the built-in tiny-sdxl
#   WSD_MODEL=/path/to/diffusers-dir bash scripts/demo.sh   # your own SD 1.5 or SDXL directory
#
# WSD_PRECISION=fp16 builds half precision (needs a browser with shader-f16);
# WSD_DEMO_SERVE=0 stops after the headless render; WSD_PORT picks the port.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
bash scripts/setup.sh
export PATH="$root/.venv/bin:$PATH"
precision=${WSD_PRECISION:-fp32}
# The kind (sd15, sdxl, ...) from the model-kind registry: a preset's own, or the
# kind whose diffusers pipeline class the directory's model_index.json names.
kind_of() {
  python - "$@" <<'PY'
import json, sys
from wsd_capture.kinds import PRESET_KINDS, kind_of_pipeline_class
what, value = sys.argv[1:]
if what == "preset":
    print(PRESET_KINDS.get(value, "sd15"))
else:
    with open(f"{value}/model_index.json", encoding="utf-8") as f:
        kind = kind_of_pipeline_class(json.load(f).get("_class_name", ""))
    print(kind.name if kind else "sd15")
PY
}
if [ -n "${WSD_MODEL:-}" ]; then
  source_args=(--model "$WSD_MODEL"); name=$(basename "$WSD_MODEL")
  kind=$(kind_of model "$WSD_MODEL" 2>/dev/null || echo sd15)
else
  name=${WSD_PRESET:-tiny-sd15}; source_args=(--preset "$name")
  kind=$(kind_of preset "$name")
fi
out=${WSD_DEMO_OUT:-build/$name-$precision}
echo "== compile $name ($kind, $precision) for WebGPU into $out"
rm -rf "$out"
wsd-compile "$kind" "${source_args[@]}" --out "$out" --precision "$precision" -v
wsd-artifacts verify "$out"
if [ "$precision" = fp32 ]; then
  echo "== render one image in headless Chromium (WebGPU on this machine; SwiftShader without a GPU)"
  wsd-web render "$out" --prompt "a watercolor painting of a lighthouse at dawn" --steps 8 --out "build/$name.png"
fi
if [ "${WSD_DEMO_SERVE:-1}" != 0 ]; then
  exec wsd-web serve "$out" --port "${WSD_PORT:-8000}"
fi
