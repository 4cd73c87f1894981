# Sourced where Node + Dawn runs without a GPU (scripts/test.sh,
# SWIFTSHADER=1 scripts/gpu_parity.sh): Vulkan pointed at SwiftShader,
# Chromium's Vulkan on the CPU, as wsd_web.bench.runner.swiftshader_environment()
# does for Python. Debian's chromium brings it (scripts/setup.sh installs it).
#   source scripts/swiftshader_env.sh
swiftshader=/usr/lib/chromium
if [ ! -f "$swiftshader/vk_swiftshader_icd.json" ]; then
  echo "swiftshader_env.sh: no SwiftShader at $swiftshader/vk_swiftshader_icd.json: install Debian's chromium (scripts/setup.sh)" >&2
  return 1
fi
export VK_ICD_FILENAMES=$swiftshader/vk_swiftshader_icd.json
export LD_LIBRARY_PATH=$swiftshader${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
unset VK_DRIVER_FILES
