#!/usr/bin/env bash
# The project's test command (CI runs exactly this through .ci/run): set-up,
# then lint, static types, Python + browser + Node tests with coverage gates.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
# A full run needs several GB of disk (fresh venvs, compiled builds, renders under the
# temp dir). Say so up front instead of failing an hour in on "No space left on device".
for dir in "$root" "${TMPDIR:-/tmp}"; do
  free_gib=$(( $(df -Pk "$dir" | awk 'NR==2 {print $4}') / 1048576 ))
  if [ "$free_gib" -lt "${WSD_MIN_FREE_GIB:-8}" ]; then
    echo "error: ${free_gib} GiB free on the filesystem of $dir; the tests need at least ${WSD_MIN_FREE_GIB:-8} GiB." >&2
    echo "       Free some (old pytest temp dirs: ${TMPDIR:-/tmp}/pytest-of-$(id -un)), or set WSD_MIN_FREE_GIB." >&2
    exit 1
  fi
done
bash scripts/setup.sh
export PATH="$root/.venv/bin:$PATH"
# Dawn (Node WebGPU) on machines without a GPU: Chromium's SwiftShader Vulkan driver.
if [ -z "${VK_ICD_FILENAMES:-}${VK_DRIVER_FILES:-}" ]; then
  # shellcheck source=scripts/swiftshader_env.sh
  source scripts/swiftshader_env.sh
fi
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "lockfiles: .venv vs requirements/dev.lock, node_modules + static/vendor vs package-lock.json"
python scripts/check_lock.py
(cd packages/wsd-web && node scripts/check_lock.mjs)

step "ruff"
ruff check .
ruff format --check .
step "mypy --strict"
mypy packages/*/src
step "tsc --checkJs"
(cd packages/wsd-web && npx --no-install tsc -p jsconfig.json)
step "bandit (Python security scan)"
bandit -c pyproject.toml -r packages/*/src -q
step "eslint (JS lint with security rules)"
(cd packages/wsd-web && npx --no-install eslint --max-warnings 0 .)

# V8 coverage of every Node process (the Dawn runs inside pytest too) lands here.
rm -rf coverage && mkdir -p coverage/js-v8
export NODE_V8_COVERAGE="$root/coverage/js-v8"
step "pytest (Python, Node + Dawn, headless Chromium)"
# Two workers (pytest-xdist), a test file each at a time: a browser or Dawn session
# compiles its shaders on SwiftShader on one core, so two sessions use both.
# WSD_TEST_WORKERS=0 runs everything in this process.
pytest -n "${WSD_TEST_WORKERS:-2}" --dist loadfile --cov --cov-report=term "$@"
step "node --test"
(cd packages/wsd-web && npx --no-install c8 --temp-directory "$NODE_V8_COVERAGE" --clean=false \
  --all --src src/wsd_web/static/js --include 'src/wsd_web/static/js/**' --exclude 'src/wsd_web/static/vendor/**' \
  --check-coverage --lines 80 --reporter text node --test tests/js/)
step "docs build (sphinx -W -n)"
sphinx-build -W -n --keep-going -q -b html docs build/docs
step "all checks passed"
