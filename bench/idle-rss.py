#!/usr/bin/env python3
"""Memory of a proxy holding N idle keep-alive client connections.

Opens N connections to 127.0.0.1:PORT, sends one GET PATH on each and reads its answer,
then leaves them all open and idle, and prints, before the first connection and with all
N open, the RSS (VmRSS) and the own memory (Pss_Anon + Pss_Shmem from smaps_rollup: heap
and buffers, each page counted once; code and libraries left out, as ../shared/bench/
proxy-bench counts it) summed over the given processes (e.g. nginx's master and worker):
  bench/idle-rss.py --port 8080 --pid 1234 [--pid 1235] [--connections 512] [--path /svc/echo/]
Standard library only.
"""

import argparse
import socket
import sys


def rss_kib(pids):
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/status") as f:
            total += next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    return total


def own_kib(pids):
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            total += sum(int(line.split()[1]) for line in f
                         if line.startswith(("Pss_Anon:", "Pss_Shmem:")))
    return total


def one_request(port, path):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            raise RuntimeError("closed before a response head")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = s.recv(65536)
        if not chunk:
            raise RuntimeError("closed mid-body")
        body += chunk
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"answer: {head.splitlines()[0]!r}")
    return s


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pid", type=int, action="append", required=True)
    ap.add_argument("--connections", type=int, default=512)
    ap.add_argument("--path", default="/svc/echo/")
    args = ap.parse_args()
    rss0, own0 = rss_kib(args.pid), own_kib(args.pid)
    conns = [one_request(args.port, args.path) for _ in range(args.connections)]
    rss1, own1 = rss_kib(args.pid), own_kib(args.pid)
    n = len(conns)
    print(f"rss_kib before {rss0} with_{n}_idle {rss1} per_connection_bytes {(rss1 - rss0) * 1024 // n}")
    print(f"own_kib before {own0} with_{n}_idle {own1} per_connection_bytes {(own1 - own0) * 1024 // n}")
    for c in conns:
        c.close()


if __name__ == "__main__":
    sys.exit(main())
