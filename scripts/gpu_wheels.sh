#!/usr/bin/env bash
# Wheels for the GPU machine of the PyTorch benchmark (python -m wsd_capture.bench):
# it has torch (CUDA) and transformers but no diffusers, and no network. This
# downloads, once, the diffusers wheel of the version installed in .venv into
# .carry/wheels (git-ignored; it travels with the working tree), and the wheels
# of what `import diffusers` needs that transformers does not bring.
#
# diffusers 0.42's Requires-Dist, and why each is or is not carried:
#   huggingface-hub, safetensors, numpy, regex, filelock
#       transformers' own requirements: assumed present (not carried)
#   importlib_metadata
#       imported only on Python < 3.8: not carried (so install with --no-deps)
#   Pillow, requests
#       imported by `import diffusers` (diffusers.utils) but not required by
#       transformers 5: carried, with requests' own requirements (urllib3, idna,
#       charset_normalizer, certifi)
# Each wheel is the version installed in .venv, for this machine's Python and
# platform (Pillow's and charset_normalizer's are binary: the GPU machine needs
# the same Python version and a manylinux x86_64 platform).
#
# On the GPU machine, scripts/gpu_env.sh unpacks the diffusers wheel onto
# PYTHONPATH. Where `import PIL` or `import requests` fails there, the others
# need the same, or (from the repository root):
#   python -m pip install --no-index --no-deps .carry/wheels/*.whl
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
say() { printf '\033[1m[gpu-wheels]\033[0m %s\n' "$*"; }

python=.venv/bin/python
[ -x "$python" ] || { echo "gpu_wheels.sh: no .venv: run scripts/setup.sh first" >&2; exit 1; }
out=.carry/wheels
mkdir -p "$out"

for dist in diffusers pillow requests urllib3 idna charset_normalizer certifi; do
  version=$("$python" -c 'import importlib.metadata as m, sys; print(m.version(sys.argv[1]))' "$dist")
  # Wheel file names spell the name lower-case with "_" for "-" and ".".
  stem=$(printf '%s' "$dist" | tr 'A-Z.-' 'a-z__')-$version-
  have=$(find "$out" -maxdepth 1 -iname "$stem*.whl" -print -quit)
  if [ -n "$have" ]; then
    say "$dist==$version: already there ($have)"
    continue
  fi
  "$python" -m pip download -q --no-deps --only-binary=:all: -d "$out" "$dist==$version"
  have=$(find "$out" -maxdepth 1 -iname "$stem*.whl" -print -quit)
  [ -n "$have" ] || { echo "gpu_wheels.sh: pip downloaded no wheel named $stem*.whl" >&2; exit 1; }
  say "$dist==$version: downloaded $have"
done
say "wheels in $out: $(find "$out" -maxdepth 1 -name '*.whl' | wc -l) ($(du -sh "$out" | cut -f1))"
