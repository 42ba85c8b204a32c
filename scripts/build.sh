#!/usr/bin/env bash
# Configures and builds one preset (release by default): scripts/build.sh [PRESET] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
preset=${1:-release}
shift || true
jobs=${SB_JOBS:-$(nproc)}
extra=()
[[ "${SB_WERROR:-0}" == "1" ]] && extra+=(-DSB_WERROR=ON)
cmake --preset "$preset" "${extra[@]}" >/dev/null
if [[ $# -gt 0 ]]; then
  cmake --build "build/$preset" -j "$jobs" --target "$@"
else
  cmake --build "build/$preset" -j "$jobs"
fi
