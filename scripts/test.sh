#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test: repository checks, unit,
# integration (real switchboard + real upstream processes on 127.0.0.1), benchmark smoke
# runs and fuzz-corpus replays in a debug build; then unit + integration again under
# AddressSanitizer + UndefinedBehaviorSanitizer.
#   SB_WERROR=1        warnings are errors (CI sets it)
#   SB_SKIP_SANITIZERS=1  only the debug pass
#   SB_TSAN=1          also a ThreadSanitizer pass
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --test

echo "== repository checks" >&2
tools/check_deps.sh
tools/check_clock.sh

echo "== debug build and tests" >&2
scripts/build.sh debug
ctest --test-dir build/debug --output-on-failure -j "$(nproc)" --timeout 300

if [[ "${SB_SKIP_SANITIZERS:-0}" != "1" ]]; then
  echo "== asan+ubsan build and tests" >&2
  scripts/build.sh asan
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    SB_TEST_TIMEOUT_SCALE=3 ctest --test-dir build/asan --output-on-failure -j "$(nproc)" \
    -L 'unit|integration|fuzz' --timeout 600
fi
if [[ "${SB_TSAN:-0}" == "1" ]]; then
  echo "== tsan build and tests" >&2
  scripts/build.sh tsan
  TSAN_OPTIONS=halt_on_error=1 SB_TEST_TIMEOUT_SCALE=4 \
    ctest --test-dir build/tsan --output-on-failure -j "$(nproc)" -L 'unit|integration' --timeout 600
fi
echo "== all tests passed" >&2
