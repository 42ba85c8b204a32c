#!/usr/bin/env bash
# Time is injected (src/core/clock.hpp): outside src/core/clock.* no code reads a clock
# (::now()) or sleeps. Tests use a manual clock; integration tests wait on conditions.
set -euo pipefail
cd "$(dirname "$0")/.."
hits=$(grep -nE '(steady_clock|system_clock|high_resolution_clock)::now\(|\bsleep\(|usleep\(|sleep_for\(|sleep_until\(' \
         -r src apps --include='*.cpp' --include='*.hpp' | grep -v '^src/core/clock\.' || true)
if [[ -n "$hits" ]]; then
  echo "check_clock: read the time through sb::core::Clock, and never sleep:" >&2
  echo "$hits" >&2
  exit 1
fi
