#!/usr/bin/env bash
# Runs ../shared/bench/proxy-bench with the freshly built switchboard beside nginx and
# HAProxy (one core each). Switchboard routes via /svc/echo and generates correlation ids,
# as deployed. The harness runs nginx with `access_log off` and HAProxy with no log, so by
# default Switchboard runs without its access log too (like for like); SB_ACCESS_LOG=on
# keeps it (text, to stdout: the harness keeps it in its log file).
#   bench/proxy-bench.sh [proxy-bench options...]   e.g. --scenarios small --rounds 3
#   SB_ACCESS_LOG=on bench/proxy-bench.sh --scenarios small
set -euo pipefail
cd "$(dirname "$0")/.."
harness=${PROXY_BENCH:-../shared/bench/proxy-bench}
access_log=${SB_ACCESS_LOG:-off}
case "$access_log" in
  on) access_log=true ;;
  off) access_log=false ;;
  *) echo "SB_ACCESS_LOG must be on or off, not '$access_log'" >&2; exit 2 ;;
esac
scripts/install-deps.sh
SB_JOBS=${SB_JOBS:-$(nproc)} scripts/build.sh release switchboard
bin=$(pwd)/build/release/apps/switchboard/switchboard
stamp=$(date -u +%Y%m%dT%H%M%SZ)
config=$(mktemp --suffix=.yaml)
trap 'rm -f "$config"' EXIT
printf 'logging:\n  access_log: %s\n' "$access_log" > "$config"
"$harness" --gateway-name switchboard \
  --gateway-cmd "exec $bin serve --config $config --listen 127.0.0.1:{PORT} --threads {THREADS} --service echo={UPSTREAM} --data-dir {WORKDIR}/data" \
  --gateway-path /svc/echo --out "/tmp/proxy-bench-$stamp.json" --md "/tmp/proxy-bench-$stamp.md" "$@"
