#!/usr/bin/env bash
# User-space instructions per proxied request on the worker thread, under callgrind:
# switchboard (--threads 1, access log off) in front of an nginx upstream answering 35
# bytes, wrk -t1 -c16 for 20 s through /svc/echo/. Instruction counts do not depend on what
# else the machine is doing, so two builds compare in any run.
#   bench/callgrind-per-request.sh [BINARY [OUTDIR]]   (default: the release build)
# Needs nginx, wrk and valgrind (apt-get install nginx-light wrk valgrind). Loopback only,
# ports 19380 (nginx) and 19383 (switchboard).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-build/release/apps/switchboard/switchboard}
out=${2:-$(mktemp -d)}
[[ -x "$bin" ]] || { echo "no binary at $bin (scripts/build.sh release switchboard)" >&2; exit 2; }
for tool in nginx wrk valgrind curl; do
  command -v "$tool" >/dev/null || { echo "needs $tool" >&2; exit 2; }
done
mkdir -p "$out"; rm -f "$out"/callgrind.*
cat > "$out"/nginx.conf <<NG
worker_processes 1; daemon off; error_log stderr error; pid $out/nginx.pid;
events { worker_connections 1024; }
http { access_log off; server { listen 127.0.0.1:19380; location / { return 200 "hello world, this is a small body\n"; } } }
NG
nginx -c "$out"/nginx.conf -p "$out" & ng=$!
for i in $(seq 50); do curl -s -o /dev/null http://127.0.0.1:19380/ && break; sleep 0.1; done
printf 'logging:\n  access_log: false\n' > "$out"/sb.yaml
valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file="$out"/callgrind.%p \
  "$bin" serve --config "$out"/sb.yaml --listen 127.0.0.1:19383 --threads 1 --service echo=http://127.0.0.1:19380 --data-dir "$out"/data > "$out"/sb.log 2>&1 & sb=$!
for i in $(seq 100); do curl -s -o /dev/null http://127.0.0.1:19383/svc/echo/ && break; sleep 0.3; done
wrk -t1 -c16 -d20s http://127.0.0.1:19383/svc/echo/ > "$out"/wrk.txt
kill -INT $sb; wait $sb || true
kill $ng; wait $ng 2>/dev/null || true
reqs=$(awk '/requests in/ {print $1}' "$out"/wrk.txt)
for f in "$out"/callgrind.*-*; do echo "$f $(grep -m1 '^summary:' "$f" | awk '{print $2}')"; done | sort -k2 -n | tail -1 > "$out"/worker.txt
ir=$(awk '{print $2}' "$out"/worker.txt)
echo "requests=$reqs worker_Ir=$ir per_request=$((ir / reqs))"
