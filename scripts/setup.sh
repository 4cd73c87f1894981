#!/usr/bin/env bash
# Idempotent set-up of a Debian 12 machine (root, Python 3.11, Node 20) for wsd:
# Debian emscripten + chromium, a virtual environment in .venv with every Python
# distribution from requirements/dev.lock (torch pinned, first) and the four packages
# in editable mode, and wsd-web's npm dependencies from its lockfile (vendored into
# package data).
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

# 2. Python: every distribution from requirements/dev.lock, hash-checked, wheels only
# (scripts/check_lock.py --update writes it); pip first, then torch (an unpinned torch
# pulls GBs of CUDA wheels: the lock pins the CPU wheel), then the rest. Then the four
# packages in editable mode, with --no-deps (their dependencies are in the lock) and
# the locked build backend (--no-build-isolation). Skipped while the venv matches the lock.
[ -x .venv/bin/python ] || { say "python3 -m venv .venv"; python3 -m venv .venv; }
lock=requirements/dev.lock
pip=(.venv/bin/python -m pip install -q --disable-pip-version-check)
locked() {  # NAME: its entry of the lock (the name==version line and its hash lines)
  awk -v want="$1==" 'index($0, want) == 1 {p = 1} p {print} p && !/\\$/ {exit}' "$lock"
}
if ! .venv/bin/python scripts/check_lock.py --installed >/dev/null 2>&1; then
  say "pip install --require-hashes -r $lock"
  for first in pip torch; do
    "${pip[@]}" --require-hashes --no-deps --only-binary=:all: -r <(locked $first)
  done
  "${pip[@]}" --require-hashes --no-deps --only-binary=:all: -r "$lock"
fi
stamp=.venv/.wsd-installed
inputs=$(cat "$lock" pyproject.toml packages/*/pyproject.toml | sha256sum | cut -c1-16)
if [ "$(cat $stamp 2>/dev/null)" != "$inputs" ]; then
  say "pip install --no-deps -e packages/*"
  "${pip[@]}" --no-deps --no-build-isolation \
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
