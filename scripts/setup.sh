#!/usr/bin/env bash
# Idempotent set-up of a Debian 12 machine (root, Python 3.11, Node 20) for wsd:
# Debian emscripten + chromium, a virtual environment in .venv with torch
# pinned first, the four packages in editable mode with the dev tools, and
# wsd-web's npm dependencies from its lockfile (vendored into package data).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

# 1. System packages (only what is missing).
missing=()
command -v emcc >/dev/null || missing+=(emscripten)
[ -x /usr/bin/chromium ] || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  say "apt-get install ${missing[*]}"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# 2. Python: torch first and pinned (an unpinned torch pulls GBs of CUDA wheels).
[ -x .venv/bin/python ] || { say "python3 -m venv .venv"; python3 -m venv .venv; }
pip=(.venv/bin/python -m pip install -q --disable-pip-version-check)
.venv/bin/python -c 'import sys; import pip; sys.exit(int(pip.__version__.split(".")[0]) < 25)' \
  || "${pip[@]}" 'pip>=25.1'
.venv/bin/python -c 'import torch, sys; sys.exit(torch.__version__.split("+")[0] != "2.13.0")' 2>/dev/null \
  || { say "pip install torch==2.13.0"; "${pip[@]}" torch==2.13.0; }
stamp=.venv/.wsd-installed
inputs=$(cat pyproject.toml packages/*/pyproject.toml | sha256sum | cut -c1-16)
if [ "$(cat $stamp 2>/dev/null)" != "$inputs" ]; then
  say "pip install -e packages/* --group dev"
  "${pip[@]}" torch==2.13.0 --group dev \
    -e packages/wsd-artifacts -e packages/wsd-capture -e packages/wsd-compile -e packages/wsd-web
  echo "$inputs" > $stamp
fi

# 3. JavaScript: wsd-web's dependencies from the committed lockfile.
web=packages/wsd-web
if ! cmp -s $web/package-lock.json $web/node_modules/.wsd-lock 2>/dev/null; then
  say "npm ci ($web)"
  (cd $web && npm ci --no-audit --no-fund --loglevel=error && cp package-lock.json node_modules/.wsd-lock)
fi
(cd $web && npm run --silent vendor)
