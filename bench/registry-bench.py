#!/usr/bin/env python3
"""registry-bench: the registry's performance figures, measured on the real binary.

  bench/registry-bench.py [--binary PATH] [--instances 10000] [--interval-ms 1000]
                          [--measure-s 10] [--ports 20] [--rounds 20]

1. Active checks at scale: Switchboard checks --instances instances (100 per service, spread
   over --ports nginx listeners that answer `return 200`) every --interval-ms. After a warm-up
   the process's CPU time (all threads, from /proc) over --measure-s seconds gives the share
   of one core; the status document's `checks` block gives how late checks started against
   their schedule (p50/p99/max over the last 10-20 s) and how many ran.
2. Change visibility: a new service is registered through the API while keep-alive
   connections (spread over the workers by SO_REUSEPORT) wait; the time from the API's 201
   until every connection has routed a request to it (the answer carries the new
   instance's response, not 404) is the visibility delay. Repeated --rounds times.

Needs nginx (Debian package). Everything listens on 127.0.0.1. Prints a Markdown summary.
"""

import argparse
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime


def get(port, path):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", path)
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, body


def wait_ready(port, deadline):
    while time.monotonic() < deadline:
        try:
            status, _ = get(port, "/health/live")
            if status == 200:
                return True
        except OSError:
            pass
        time.sleep(0.05)
    return False


def start_nginx(work, ports):
    servers = "\n".join(
        f"  server {{ listen 127.0.0.1:{p} backlog=4096; access_log off; "
        f"location / {{ return 200 'ok'; }} }}" for p in ports)
    conf = os.path.join(work, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""worker_processes 1;
daemon off;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log warn;
events {{ worker_connections 16384; }}
http {{
  keepalive_requests 1000000;
{servers}
}}
""")
    return subprocess.Popen(["nginx", "-c", conf, "-p", work], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def checks_at_scale(args, work):
    ports = [free_port() for _ in range(args.ports)]
    nginx = start_nginx(work, ports)
    lines = ["services:"]
    per_service = 100
    for s in range(args.instances // per_service):
        lines.append(f"  s{s}:")
        urls = ", ".join(
            f'"http://127.0.0.1:{ports[(s * per_service + i) % len(ports)]}/i{i}"'
            for i in range(per_service))
        lines.append(f"    instances: [{urls}]")
        lines.append("    health_check: {path: /hc, timeout: 2s}")
    cfg = os.path.join(work, "checks.yaml")
    with open(cfg, "w") as f:
        f.write("\n".join(lines) + "\n")
    port = free_port()
    env = dict(os.environ, HEALTH_CHECK_INTERVAL=str(args.interval_ms))
    sb = subprocess.Popen([args.binary, "serve", "--config", cfg, "--listen", f"127.0.0.1:{port}",
                           "--threads", "2", "--data-dir", "", "--log-level", "warn"],
                          env=env, cwd=work, stdout=subprocess.DEVNULL,
                          stderr=open(os.path.join(work, "sb-checks.log"), "w"))
    try:
        if not wait_ready(port, time.monotonic() + 30):
            sys.exit("switchboard did not start; see " + work)
        time.sleep(args.warmup_s)  # the first round checks everything at once
        import json
        before = json.loads(get(port, "/api/services/status")[1])["checks"]["started_total"]
        c0, t0 = cpu_seconds(sb.pid), time.monotonic()
        time.sleep(args.measure_s)
        c1, t1 = cpu_seconds(sb.pid), time.monotonic()
        status = json.loads(get(port, "/api/services/status")[1])
        checks = status["checks"]
        healthy = sum(1 for s in status["services"] for i in s["instances"]
                      if i["state"] == "healthy")
        return {
            "instances": args.instances,
            "healthy": healthy,
            "checks_per_s": (checks["started_total"] - before) / (t1 - t0),
            "cpu_share": (c1 - c0) / (t1 - t0),
            "late_p50_ms": checks["lateness_p50_ms"],
            "late_p99_ms": checks["lateness_p99_ms"],
            "late_max_ms": checks["lateness_max_ms"],
        }
    finally:
        sb.send_signal(signal.SIGTERM)
        sb.wait(timeout=30)
        nginx.send_signal(signal.SIGQUIT)
        nginx.wait(timeout=10)


def visibility(args, work):
    up_port = free_port()
    nginx = start_nginx(work, [up_port])
    port = free_port()
    sb = subprocess.Popen([args.binary, "serve", "--listen", f"127.0.0.1:{port}", "--threads", "2",
                           "--data-dir", "", "--log-level", "warn"], cwd=work,
                          stdout=subprocess.DEVNULL,
                          stderr=open(os.path.join(work, "sb-vis.log"), "w"))
    delays = []
    try:
        if not wait_ready(port, time.monotonic() + 30):
            sys.exit("switchboard did not start; see " + work)
        conns = [http.client.HTTPConnection("127.0.0.1", port, timeout=10) for _ in range(8)]
        for c in conns:  # open them (spread over both workers by SO_REUSEPORT)
            c.request("GET", "/health/live")
            c.getresponse().read()
        api = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        for n in range(args.rounds):
            body = f'{{"url":"http://127.0.0.1:{up_port}"}}'
            api.request("PUT", f"/api/services/vis-{n}/instances/a", body=body,
                        headers={"Content-Type": "application/json"})
            r = api.getresponse()
            r.read()
            if r.status != 201:
                sys.exit(f"registration answered {r.status}")
            t0 = time.monotonic()
            pending = list(conns)
            while pending:
                c = pending.pop(0)
                c.request("GET", f"/svc/vis-{n}/x")
                resp = c.getresponse()
                resp.read()
                if resp.status != 200:
                    pending.append(c)
            delays.append((time.monotonic() - t0) * 1000)
        return delays
    finally:
        sb.send_signal(signal.SIGTERM)
        sb.wait(timeout=30)
        nginx.send_signal(signal.SIGQUIT)
        nginx.wait(timeout=10)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--binary", default=os.path.join(ROOT, "build/release/apps/switchboard/switchboard"))
    p.add_argument("--instances", type=int, default=10000)
    p.add_argument("--interval-ms", type=int, default=1000)
    p.add_argument("--warmup-s", type=float, default=5)
    p.add_argument("--measure-s", type=float, default=10)
    p.add_argument("--ports", type=int, default=20)
    p.add_argument("--rounds", type=int, default=20)
    args = p.parse_args()
    if not shutil.which("nginx"):
        sys.exit("nginx is needed (apt-get install nginx-light)")
    work = tempfile.mkdtemp(prefix="registry-bench-")
    r = checks_at_scale(args, work)
    d = sorted(visibility(args, work))
    print("| figure | value | target |")
    print("| --- | --- | --- |")
    print(f"| instances checked (healthy) | {r['instances']} ({r['healthy']}) | 10000 |")
    print(f"| checks per second | {r['checks_per_s']:.0f} | {1000 * r['instances'] / args.interval_ms:.0f} |")
    print(f"| Switchboard CPU, share of one core | {100 * r['cpu_share']:.1f}% | < 25% |")
    print(f"| check start lateness p50 / p99 / max | {r['late_p50_ms']:.1f} / "
          f"{r['late_p99_ms']:.1f} / {r['late_max_ms']:.1f} ms | < 100 ms |")
    print(f"| registry change visible on 8 connections over 2 workers, median / max "
          f"| {d[len(d) // 2]:.2f} / {d[-1]:.2f} ms | < 10 ms |")
    print(f"\n(work directory: {work})")


if __name__ == "__main__":
    main()
