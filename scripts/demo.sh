#!/usr/bin/env bash
# The main job: set up, build the tvmjs runtime (once per machine), compile and
# link the runtime-check model for WebGPU, run it in headless Chromium against
# numpy, then serve it so you can open the same page in your own browser.
# WSD_DEMO_SERVE=0 skips the server at the end.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
bash scripts/setup.sh
export PATH="$root/.venv/bin:$PATH"
out=${WSD_DEMO_OUT:-build/runtime-check}
echo "== tvmjs runtime objects"; wsd-compile runtime
echo "== compile + link the runtime check for WebGPU"; rm -rf "$out"; wsd-compile check --out "$out"
echo "== run it in headless Chromium (WebGPU on SwiftShader)"; wsd-web check "$out"
if [ "${WSD_DEMO_SERVE:-1}" != 0 ]; then
  exec wsd-web serve "$out" --port "${WSD_PORT:-8000}"
fi
