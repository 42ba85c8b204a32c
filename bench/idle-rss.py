#!/usr/bin/env python3
"""Resident memory of a proxy holding N idle keep-alive client connections.

Opens N connections to 127.0.0.1:PORT, sends one GET PATH on each and reads its answer,
then leaves them all open and idle, and prints the RSS of process PID (VmRSS from
/proc/PID/status) before the first connection and with all N open:
  bench/idle-rss.py --port 8080 --pid 1234 [--connections 512] [--path /svc/echo/]
Standard library only.
"""

import argparse
import socket
import sys


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


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
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--connections", type=int, default=512)
    ap.add_argument("--path", default="/svc/echo/")
    args = ap.parse_args()
    before = rss_kib(args.pid)
    conns = [one_request(args.port, args.path) for _ in range(args.connections)]
    after = rss_kib(args.pid)
    print(f"rss_before_kib {before}")
    print(f"rss_with_{len(conns)}_idle_kib {after}")
    print(f"per_connection_bytes {(after - before) * 1024 // len(conns)}")
    for c in conns:
        c.close()


if __name__ == "__main__":
    sys.exit(main())
