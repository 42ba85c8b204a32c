#!/usr/bin/env bash
# Installs what is missing, builds Switchboard (release) and runs it with the embedded
# defaults: the platform example configuration, listening on 127.0.0.1:8080.
# Extra arguments go to `switchboard serve` (e.g. --listen 127.0.0.1:9000).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
SB_JOBS=${SB_JOBS:-$(nproc)} scripts/build.sh release switchboard
exec build/release/apps/switchboard/switchboard serve --config examples/switchboard.yaml "$@"
