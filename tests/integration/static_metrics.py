#!/usr/bin/env python3
"""A scrape target with a fixed exposition, for testing the Prometheus harness.

Python standard library only. Usage: static_metrics.py FILE
Binds 127.0.0.1:0, prints "PORT <n>" on stdout when ready, and answers GET /metrics with
the bytes of FILE (read again on every request, so a test can change them), as
`text/plain; version=0.0.4`. Any other path is a 404. Logs "SCRAPE accept=<Accept header>"
for every /metrics request. Exits on SIGTERM.
"""

import http.server
import signal
import sys
import threading


class Handler(http.server.BaseHTTPRequestHandler):
    path_to_serve = ""

    def do_GET(self):
        if self.path.split("?", 1)[0] != "/metrics":
            self.send_error(404)
            return
        print(f"SCRAPE accept={self.headers.get('Accept', '')}", flush=True)
        with open(self.path_to_serve, "rb") as f:
            body = f.read()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):  # the SCRAPE line is the log
        pass


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: static_metrics.py FILE")
    Handler.path_to_serve = sys.argv[1]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print(f"PORT {server.server_address[1]}", flush=True)
    server.serve_forever(poll_interval=0.05)
    server.server_close()


if __name__ == "__main__":
    main()
