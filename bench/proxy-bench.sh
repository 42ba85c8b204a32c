#!/usr/bin/env bash
# Runs ../shared/bench/proxy-bench with the freshly built switchboard beside nginx and
# HAProxy (one core each). Switchboard runs as deployed: routing via /svc/echo,
# correlation ids, text access log to stdout (the harness keeps it in its log file).
#   bench/proxy-bench.sh [proxy-bench options...]   e.g. --scenarios small --rounds 3
set -euo pipefail
cd "$(dirname "$0")/.."
harness=${PROXY_BENCH:-../shared/bench/proxy-bench}
scripts/install-deps.sh
SB_JOBS=${SB_JOBS:-$(nproc)} scripts/build.sh release switchboard
bin=$(pwd)/build/release/apps/switchboard/switchboard
stamp=$(date -u +%Y%m%dT%H%M%SZ)
exec "$harness" --gateway-name switchboard \
  --gateway-cmd "exec $bin serve --listen 127.0.0.1:{PORT} --threads {THREADS} --service echo={UPSTREAM}" \
  --gateway-path /svc/echo --out "/tmp/proxy-bench-$stamp.json" --md "/tmp/proxy-bench-$stamp.md" "$@"
