# Sourced on the GPU machine (which reaches no package registry) to set up
# what travelled in .carry/ (filled by ../shared/tools/gpu-carry.sh and
# scripts/gpu_wheels.sh): the Vulkan loader libraries, Node, Dawn's
# `webgpu` package and the diffusers wheel. Idempotent.
#   source scripts/gpu_env.sh
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
carry="$root/.carry"
if [ ! -d "$carry" ]; then
  echo "gpu_env.sh: $carry is missing: run ../shared/tools/gpu-carry.sh here and send .carry along" >&2
  return 1
fi
vendor="$root/packages/wsd-web/src/wsd_web/static/vendor"
if [ ! -f "$vendor/tvmjs/index.js" ]; then
  echo "gpu_env.sh: $vendor is missing (scripts/setup.sh builds it; git ignores it): name packages/wsd-web/src/wsd_web/static/vendor in the run's carry list" >&2
  return 1
fi
for deb in "$carry"/debs/*.deb; do dpkg -x "$deb" /; done
ldconfig
[ -x "$carry/node" ] || { xz -dkf "$carry/node.xz" && chmod +x "$carry/node"; }
dawn="$carry/webgpu/dist/linux-x64/dawn.node"
[ -f "$dawn" ] || xz -dkf "$dawn.xz"
mkdir -p "$root/packages/wsd-web/node_modules"
[ -d "$root/packages/wsd-web/node_modules/webgpu" ] || cp -r "$carry/webgpu" "$root/packages/wsd-web/node_modules/webgpu"
export PATH="$carry:$PATH" NODE_PATH="$carry"
export VK_DRIVER_FILES=${VK_DRIVER_FILES:-/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json}
# diffusers for the PyTorch side (and what it imports that the machine may
# lack), unpacked from the wheels scripts/gpu_wheels.sh fetched: no pip needed.
mkdir -p "$carry/site"
for wheel in "$carry"/wheels/*.whl; do
  [ -f "$wheel" ] || continue
  dist=$(basename "$wheel" | cut -d- -f1)
  case $dist in pillow) module=PIL ;; *) module=$dist ;; esac
  if [ ! -e "$carry/site/.$dist" ] && ! python3 -c "import $module" 2>/dev/null; then
    python3 -m zipfile -e "$wheel" "$carry/site" && touch "$carry/site/.$dist"
  fi
done
export PYTHONPATH="$root/packages/wsd-capture/src:$root/packages/wsd-web/src:$root/packages/wsd-artifacts/src:$carry/site${PYTHONPATH:+:$PYTHONPATH}"
