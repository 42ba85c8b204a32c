#!/usr/bin/env python3
"""A real upstream for Switchboard's integration tests.

Python standard library only. Requests are parsed and responses written by hand on
asyncio streams, so the framing (including malformed framing) is fully under control.

Usage: upstream.py [--tls CERT KEY] [--name NAME]
Binds 127.0.0.1:0, prints "PORT <n>" on stdout when ready, logs "REQ <conn> <method>
<target>" for every request head it reads, and exits on SIGTERM (or when its parent dies).

Behaviour by path; the keyword is looked for from the end, so any prefix (a base path)
is allowed in front of it:
  /echo...            200 JSON: method, path, query, headers, body_len, body_sha256,
                      conn_id, name
  /echo-body          the request body echoed back (Content-Length framing, or chunked
                      with ?chunked=1). The whole body is read (spooled to a temporary
                      file past 8 MiB) before answering, as most applications do, so a
                      proxy that sends the whole request before reading the response
                      cannot deadlock against it.
  /bytes/<n>          n bytes of the pattern byte[i] = i % 251 (?chunked=1: chunked;
                      ?until_close=1: no length, head and body in one write, then the
                      connection closes, so the body's end and the FIN arrive together)
  /slow/<ms>          waits, then 200 "slow"
  /early/<code>       answers `code` at once, before reading the request body, then reads
                      and drops the body (the connection stays usable)
  /status/<code>      that status with a small body
  /close              200 with Connection: close, then closes
  /idle-close         200 kept alive (no Connection: close), then, 100 ms later (so that the
                      peer has taken the answer alone), closes the connection as if it had
                      idled out, and logs "CLOSED <conn>" once it is closed.
                      ?stray=1: instead writes an unsolicited "HTTP/1.1 408" on the kept
                      connection (as a server does just before it closes an idle one),
                      logs "STRAY <conn>", and keeps serving it (the FIN not yet sent).
  /bad/<kind>         a malformed response (status-line, cl-te, two-cl, header-bytes,
                      obs-fold, truncated) or a reset without an answer (reset)
  /stats              JSON: connections_accepted, requests (not counting /stats)
  /__control?status=N&delay_ms=M
                      sets the mode for every later request but /stats and /__control: wait
                      M ms first, then (N not 0) answer status N instead; status=0 and
                      delay_ms=0 reset. Answers 204. --delay-ms sets the initial delay.
Options: --port N binds that port (to restart an upstream where it was); default 0.
  /hook/<name>[/<codes>][?retry_after=V]
                      records the request (a webhook sink) and answers with the next of
                      the comma-separated statuses in <codes> (the last one repeats;
                      default 200). <name> must not be another keyword. With retry_after,
                      a 429 or 503 answer carries `Retry-After: V` (V as given).
  /hooks/<name>       JSON list of what /hook/<name> recorded, in arrival order: method,
                      path, query, headers (lower-case names -> list of values), body,
                      status, at (arrival, time.monotonic() seconds)
Every response echoes the request's X-Correlation-ID as X-Upstream-Saw-Correlation-ID.
"""

import argparse
import asyncio
import hashlib
import http
import json
import os
import signal
import socket
import ssl
import struct
import sys
import tempfile
import time
import urllib.parse

MAX_HEAD = 1 << 20  # bytes of one request head
IO_PIECE = 64 * 1024
PATTERN_PERIOD = 251
PATTERN_BLOCK = PATTERN_PERIOD * 256
# Two blocks, so a slice of up to one block can start at any phase of the pattern.
PATTERN = bytes(i % PATTERN_PERIOD for i in range(2 * PATTERN_BLOCK))
MALFORMED_BODY = b"MALFORMED-BODY"  # 14 bytes; tests check it is never relayed

MALFORMED = {
    "status-line": b"HTTP/1.1 2OO OK\r\nContent-Length: 14\r\nX-Malformed: 1\r\n\r\n"
    + MALFORMED_BODY,
    "cl-te": b"HTTP/1.1 200 OK\r\nContent-Length: 14\r\nTransfer-Encoding: chunked\r\n"
    b"X-Malformed: 1\r\n\r\ne\r\n" + MALFORMED_BODY + b"\r\n0\r\n\r\n",
    "two-cl": b"HTTP/1.1 200 OK\r\nContent-Length: 14\r\nContent-Length: 15\r\n"
    b"X-Malformed: 1\r\n\r\n" + MALFORMED_BODY + b"!",
    "header-bytes": b"HTTP/1.1 200 OK\r\nContent-Length: 14\r\nX-Malformed: a\x01b\r\n\r\n"
    + MALFORMED_BODY,
    "obs-fold": b"HTTP/1.1 200 OK\r\nContent-Length: 14\r\nX-Malformed: a\r\n folded\r\n\r\n"
    + MALFORMED_BODY,
    # A head promising 100 bytes, 14 of them, then the connection closes.
    "truncated": b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nX-Malformed: 1\r\n\r\n"
    + MALFORMED_BODY,
}


class BadRequest(Exception):
    pass


class Stats:
    connections_accepted = 0
    requests = 0
    hooks = {}  # name -> list of recorded requests


class Mode:
    status = 0    # not 0: every request answers this
    delay_ms = 0  # every request waits this long first


def pattern_slice(offset, n):
    start = offset % PATTERN_PERIOD
    return PATTERN[start:start + n]


class Request:
    def __init__(self, method, target, version, headers):
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers  # list of (name, value) as received
        split = urllib.parse.urlsplit(target)
        self.path = split.path
        self.query = split.query
        self.params = urllib.parse.parse_qs(split.query)

    def values(self, name):
        name = name.lower()
        return [v for (k, v) in self.headers if k.lower() == name]

    def first(self, name):
        v = self.values(name)
        return v[0] if v else None

    def tokens(self, name):
        out = []
        for v in self.values(name):
            out.extend(t.strip().lower() for t in v.split(",") if t.strip())
        return out

    def keep_alive(self):
        conn = self.tokens("connection")
        if self.version == "HTTP/1.0":
            return "keep-alive" in conn
        return "close" not in conn

    def wants_chunked(self):
        return self.params.get("chunked", ["0"])[0] == "1"


def parse_head(raw):
    try:
        text = raw.decode("latin-1")
    except UnicodeDecodeError:
        raise BadRequest("undecodable head")
    lines = text[:-4].split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise BadRequest("bad request line")
    headers = []
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise BadRequest("bad header line")
        headers.append((name, value.strip(" \t")))
    return Request(parts[0], parts[1], parts[2], headers)


async def read_body(reader, req, sink):
    """Reads the request body (Content-Length or chunked) into sink(bytes)."""
    te = req.tokens("transfer-encoding")
    if te:
        if te[-1] != "chunked":
            raise BadRequest("unsupported transfer-encoding")
        while True:
            line = await reader.readuntil(b"\r\n")
            size_text = line[:-2].split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise BadRequest("bad chunk size")
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass  # trailer fields
                return
            while size > 0:
                piece = await reader.readexactly(min(size, IO_PIECE))
                sink(piece)
                size -= len(piece)
            if await reader.readexactly(2) != b"\r\n":
                raise BadRequest("bad chunk end")
    lengths = set(v.strip() for v in req.values("content-length"))
    if not lengths:
        return
    if len(lengths) != 1 or not next(iter(lengths)).isdigit():
        raise BadRequest("bad content-length")
    remaining = int(next(iter(lengths)))
    while remaining > 0:
        piece = await reader.read(min(remaining, IO_PIECE))
        if not piece:
            raise asyncio.IncompleteReadError(b"", remaining)
        sink(piece)
        remaining -= len(piece)


class Server:
    def __init__(self, name):
        self.name = name
        self.next_conn_id = 0

    def head(self, req, status, headers, keep_alive, reason=None):
        if reason is None:
            try:
                reason = http.HTTPStatus(status).phrase
            except ValueError:
                reason = "Status"
        out = [f"HTTP/1.1 {status} {reason}"]
        out.extend(f"{k}: {v}" for (k, v) in headers)
        out.append(f"X-Upstream-Name: {self.name}")
        cid = req.first("x-correlation-id") if req else None
        if cid is not None:
            out.append(f"X-Upstream-Saw-Correlation-ID: {cid}")
        if not keep_alive:
            out.append("Connection: close")
        elif req is not None and req.version == "HTTP/1.0":
            out.append("Connection: keep-alive")
        return ("\r\n".join(out) + "\r\n\r\n").encode("latin-1")

    async def send_simple(self, writer, req, status, body, content_type, keep_alive, extra=()):
        headers = [("Content-Type", content_type), ("Content-Length", str(len(body)))]
        headers += list(extra)
        writer.write(self.head(req, status, headers, keep_alive))
        if req.method != "HEAD":
            writer.write(body)
        await writer.drain()

    async def send_stream(self, writer, req, total, chunked, piece_at, keep_alive):
        """Sends `total` bytes produced by piece_at(offset, max_len)."""
        framing = ("Transfer-Encoding", "chunked") if chunked else ("Content-Length", str(total))
        headers = [("Content-Type", "application/octet-stream"), framing]
        writer.write(self.head(req, 200, headers, keep_alive))
        if req.method == "HEAD":
            await writer.drain()
            return
        offset = 0
        while offset < total:
            piece = piece_at(offset, min(PATTERN_BLOCK, total - offset))
            if chunked:
                writer.write(b"%x\r\n" % len(piece) + piece + b"\r\n")
            else:
                writer.write(piece)
            offset += len(piece)
            await writer.drain()
        if chunked:
            writer.write(b"0\r\n\r\n")
        await writer.drain()

    async def handle(self, reader, writer):
        Stats.connections_accepted += 1
        self.next_conn_id += 1
        conn_id = self.next_conn_id
        try:
            while True:
                try:
                    raw = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    return  # the peer closed between requests
                except asyncio.LimitOverrunError:
                    raise BadRequest("head too large")
                req = parse_head(raw)
                print(f"REQ {conn_id} {req.method} {req.target}", flush=True)
                keep_alive = await self.respond(reader, writer, req, conn_id)
                if not keep_alive:
                    return
        except BadRequest as e:
            body = f"bad request: {e}\n".encode()
            writer.write(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n"
                         b"Content-Length: %d\r\n\r\n" % len(body) + body)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            return
        finally:
            try:
                await writer.drain()
                writer.close()
            except (ConnectionError, ssl.SSLError, RuntimeError):
                pass

    async def respond(self, reader, writer, req, conn_id):
        """Answers one request; returns whether the connection stays open."""
        segments = req.path.split("/")
        keep_alive = req.keep_alive()
        if req.path == "/__control":
            await read_body(reader, req, lambda _piece: None)
            try:
                Mode.status = int(req.params.get("status", [str(Mode.status)])[0])
                Mode.delay_ms = int(req.params.get("delay_ms", [str(Mode.delay_ms)])[0])
            except ValueError:
                raise BadRequest("bad control value")
            writer.write(self.head(req, 204, [], keep_alive))
            await writer.drain()
            return keep_alive
        if not segments[-1].startswith("stats"):
            Stats.requests += 1
            if Mode.delay_ms:
                await asyncio.sleep(Mode.delay_ms / 1000.0)
            if Mode.status:
                await read_body(reader, req, lambda _piece: None)
                await self.send_simple(writer, req, Mode.status,
                                       f"forced status {Mode.status}\n".encode(),
                                       "text/plain", keep_alive)
                return keep_alive

        # Find the keyword from the end, so a base path may precede it.
        kind, arg = None, None
        for i in range(len(segments) - 1, -1, -1):
            seg = segments[i]
            nxt = segments[i + 1] if i + 1 < len(segments) else None
            if seg in ("bytes", "slow", "status", "bad", "early") and nxt:
                kind, arg = seg, nxt
                break
            if seg in ("hook", "hooks") and nxt:
                kind, arg = seg, segments[i + 1:]
                break
            if seg in ("echo-body", "close", "idle-close", "stats") or seg.startswith("echo"):
                kind = "echo-body" if seg == "echo-body" else (
                    "echo" if seg.startswith("echo") else seg)
                break

        if kind == "early":
            if not arg.isdigit() or not 200 <= int(arg) <= 599:
                raise BadRequest("bad status")
            await self.send_simple(writer, req, int(arg), b"early\n", "text/plain", keep_alive)
            await read_body(reader, req, lambda _piece: None)
            return keep_alive

        if kind == "echo-body":
            spool = tempfile.SpooledTemporaryFile(max_size=8 << 20)
            await read_body(reader, req, spool.write)
            total = spool.tell()
            spool.seek(0)
            await self.send_stream(writer, req, total, req.wants_chunked(),
                                   lambda _off, n: spool.read(n), keep_alive)
            spool.close()
            return keep_alive

        digest = hashlib.sha256()
        count = [0]

        chunks = []

        def sink(piece):
            digest.update(piece)
            count[0] += len(piece)
            if kind == "hook" and count[0] <= (1 << 20):
                chunks.append(piece)

        await read_body(reader, req, sink)
        body = b"".join(chunks)

        if kind in ("hook", "hooks"):
            name = arg[0]
            seen = Stats.hooks.setdefault(name, [])
            if kind == "hook":
                codes = [c for c in (arg[1] if len(arg) > 1 else "200").split(",") if c]
                if not all(c.isdigit() and 200 <= int(c) <= 599 for c in codes):
                    raise BadRequest("bad hook statuses")
                code = int(codes[min(len(seen), len(codes) - 1)])
                headers = {}
                for (k, v) in req.headers:
                    headers.setdefault(k.lower(), []).append(v)
                seen.append({"method": req.method, "path": req.path, "query": req.query,
                             "headers": headers, "body": body.decode("utf-8", "replace"),
                             "status": code, "at": time.monotonic()})
                extra = []
                retry_after = req.params.get("retry_after")
                if retry_after and code in (429, 503):
                    extra.append(("Retry-After", retry_after[0]))
                await self.send_simple(writer, req, code, f"status {code}\n".encode(),
                                       "text/plain", keep_alive, extra)
            else:
                await self.send_simple(writer, req, 200, json.dumps(seen).encode(),
                                       "application/json", keep_alive)
            return keep_alive

        if kind == "echo":
            headers = {}
            for (k, v) in req.headers:
                headers.setdefault(k.lower(), []).append(v)
            doc = {"method": req.method, "path": req.path, "query": req.query,
                   "headers": headers, "body_len": count[0],
                   "body_sha256": digest.hexdigest(), "conn_id": conn_id, "name": self.name}
            await self.send_simple(writer, req, 200, json.dumps(doc).encode(),
                                   "application/json", keep_alive)
        elif kind == "bytes":
            if not arg.isdigit():
                raise BadRequest("bad byte count")
            if req.params.get("until_close", ["0"])[0] == "1":
                head = self.head(req, 200, [("Content-Type", "application/octet-stream")], False)
                n = int(arg)
                writer.write(head + b"".join(pattern_slice(o, min(PATTERN_BLOCK, n - o))
                                             for o in range(0, n, PATTERN_BLOCK)))
                await writer.drain()
                return False
            await self.send_stream(writer, req, int(arg), req.wants_chunked(),
                                   pattern_slice, keep_alive)
        elif kind == "slow":
            if not arg.isdigit():
                raise BadRequest("bad delay")
            await asyncio.sleep(int(arg) / 1000.0)
            await self.send_simple(writer, req, 200, b"slow", "text/plain", keep_alive)
        elif kind == "status":
            if not arg.isdigit() or not 200 <= int(arg) <= 599:
                raise BadRequest("bad status")
            code = int(arg)
            if code in (204, 304):
                writer.write(self.head(req, code, [], keep_alive))
                await writer.drain()
            else:
                await self.send_simple(writer, req, code, f"status {code}\n".encode(),
                                       "text/plain", keep_alive)
        elif kind == "idle-close":
            await self.send_simple(writer, req, 200, b"idle-close", "text/plain", keep_alive)
            await asyncio.sleep(0.1)
            if req.params.get("stray", ["0"])[0] == "1":
                writer.write(b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n"
                             b"Content-Length: 0\r\n\r\n")
                await writer.drain()
                print(f"STRAY {conn_id}", flush=True)
                return keep_alive
            writer.close()
            await writer.wait_closed()
            print(f"CLOSED {conn_id}", flush=True)
            return False
        elif kind == "close":
            await self.send_simple(writer, req, 200, b"close", "text/plain", False)
            return False
        elif kind == "bad":
            if arg == "reset":
                sock = writer.get_extra_info("socket")
                if sock is not None:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                writer.transport.abort()
                raise ConnectionResetError("reset on purpose")
            if arg not in MALFORMED:
                raise BadRequest("unknown malformation")
            writer.write(MALFORMED[arg])
            await writer.drain()
            return False
        elif kind == "stats":
            doc = {"connections_accepted": Stats.connections_accepted,
                   "requests": Stats.requests}
            await self.send_simple(writer, req, 200, json.dumps(doc).encode(),
                                   "application/json", keep_alive)
        else:
            await self.send_simple(writer, req, 404, b"no such path\n", "text/plain",
                                   keep_alive)
        return keep_alive


async def watch_parent(parent, stop):
    while not stop.is_set():
        if os.getppid() != parent:
            stop.set()
            return
        await asyncio.sleep(0.5)


async def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    parser.add_argument("--name", default="upstream")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay-ms", type=int, default=0)
    args = parser.parse_args()
    Mode.delay_ms = args.delay_ms

    context = None
    if args.tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.tls[0], args.tls[1])

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)

    server = Server(args.name)
    srv = await asyncio.start_server(server.handle, "127.0.0.1", args.port, ssl=context,
                                     limit=MAX_HEAD, backlog=512, reuse_address=True)
    port = srv.sockets[0].getsockname()[1]
    print(f"PORT {port}", flush=True)
    watcher = asyncio.create_task(watch_parent(os.getppid(), stop))
    await stop.wait()
    watcher.cancel()
    srv.close()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    sys.exit(0)
