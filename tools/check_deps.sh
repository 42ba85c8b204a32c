#!/usr/bin/env bash
# Checks the dependency direction of DESIGN.md: each src/ folder may include only the
# folders allowed below (core <- http <- {registry, resilience, cache, telemetry} <- gateway
# <- client). apps/ may include anything.
set -euo pipefail
cd "$(dirname "$0")/.."
declare -A allowed=(
  [core]="core"
  [http]="core http"
  [registry]="core http registry"
  [resilience]="core http resilience"
  [cache]="core http cache"
  [telemetry]="core http telemetry"
  [gateway]="core http registry resilience cache telemetry gateway"
  [client]="core http registry resilience cache telemetry gateway client"
)
bad=0
for dir in src/*/; do
  comp=$(basename "$dir")
  ok=${allowed[$comp]:-}
  if [[ -z "$ok" ]]; then
    echo "check_deps: src/$comp is not in the dependency table (tools/check_deps.sh)" >&2
    bad=1
    continue
  fi
  while IFS= read -r line; do
    file=${line%%:*}
    inc=$(sed -E 's/.*#include "([a-z_]+)\/.*/\1/' <<<"$line")
    if [[ " $ok " != *" $inc "* ]]; then
      echo "check_deps: $file includes \"$inc/...\", but src/$comp may include only: $ok" >&2
      bad=1
    fi
  done < <(grep -HE '^#include "[a-z_]+/' -r "$dir" || true)
done
exit $bad
