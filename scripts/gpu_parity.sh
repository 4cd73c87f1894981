#!/usr/bin/env bash
# The GPU half of scripts/gpu_parity.py: render every case of OUT/cases.json
# with its build through Node + Dawn (asking for shader-f16 on NVIDIA's
# Vulkan driver) on the case's kernel path, one JSON report per case in
# OUT/webgpu/. Run on the GPU
# machine from the repository root, with .carry/ and OUT beside it:
#   bash scripts/gpu_parity.sh OUT
# or, on a machine without a GPU, on SwiftShader (Chromium's Vulkan on the
# CPU; Node and the npm packages of scripts/setup.sh, no .carry/):
#   SWIFTSHADER=1 bash scripts/gpu_parity.sh OUT
set -euo pipefail
out=$1
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ "${SWIFTSHADER:-0}" = 1 ]; then
  # shellcheck source=scripts/swiftshader_env.sh
  source "$root/scripts/swiftshader_env.sh" || exit 2
else
  # shellcheck source=scripts/gpu_env.sh
  source "$root/scripts/gpu_env.sh"
fi
mkdir -p "$out/webgpu"
python3 - "$out" <<'PY' | while IFS=$'\t' read -r name build options; do
import json, sys
out = sys.argv[1]
for case in json.load(open(f"{out}/cases.json")):
    options = {
        "prompt": case["prompt"], "negativePrompt": case["negative_prompt"], "seed": case["seed"],
        "steps": case["steps"], "scheduler": case["scheduler"],
        "returnLatents": True, "returnPixels": True, "kernelPath": case["kernel_path"],
        **case.get("render_options", {}),
    }
    build = case.get("build") or f"{case['preset']}-{case['precision']}"
    print(case["name"], f"{out}/builds/{build}", json.dumps(options), sep="\t")
PY
  echo "+ $name"
  node "$root/packages/wsd-web/src/wsd_web/node/render.mjs" "$build" "$options" > "$out/webgpu/$name.json"
done
