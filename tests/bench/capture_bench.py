#!/usr/bin/python3
"""Capture size benchmark: bytes a capture takes per byte of traffic it records, for responses of
1 KiB, 100 KiB and 4 MiB, uncompressed JSONL and CBOR, beside `mitmdump -w` recording the same
exchanges in one run.

    tests/bench/capture_bench.py [--sluice build/sluice] [--before OLD_SLUICE] [--skip-mitmdump] [--small]

Each side is a reverse proxy in front of one loopback origin that answers GET /N with N random
(incompressible) bytes; a client sends the same keep-alive requests through each. Traffic bytes are what
the client sent and received (request and response, heads and bodies, as on the wire). `--before` runs
an older sluice build beside (one that stored each body twice: in `raw` and in `message.body`).
Exits 1 when the largest body's capture is over the issue's aim (CBOR <= 1.05, JSONL <= 1.4 bytes per
traffic byte, JSONL carrying base64's 4/3). Not a timing: sizes are the same on every run.
"""
import argparse
import http.server
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(__file__))
from http1_bench import free_port, spawn, wait_port  # noqa: E402  (stopped however the bench exits)

SIZES = [("1 KiB", 1024, 400), ("100 KiB", 100 * 1024, 40), ("4 MiB", 4 << 20, 4)]
SMALL = [("1 KiB", 1024, 20), ("100 KiB", 100 * 1024, 3), ("4 MiB", 4 << 20, 1)]
AIM = {"cbor": 1.05, "jsonl": 1.4}


class Origin(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    bodies = {}

    def do_GET(self):
        n = int(self.path.strip("/").split("?")[0])
        body = self.bodies.setdefault(n, os.urandom(n))
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(n))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def exchange(port, size, count):
    """COUNT keep-alive GETs of SIZE bytes; returns the bytes sent plus the bytes received."""
    total = 0
    with socket.create_connection(("127.0.0.1", port)) as c:
        for i in range(count):
            req = ("GET /%d?i=%d HTTP/1.1\r\nHost: bench\r\nUser-Agent: capture-bench\r\n\r\n" % (size, i)).encode()
            c.sendall(req)
            total += len(req)
            buf = b""
            while b"\r\n\r\n" not in buf:
                buf += c.recv(65536)
            head, rest = buf.split(b"\r\n\r\n", 1)
            length = int([l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0])
            while len(rest) < length:
                chunk = c.recv(1 << 20)
                if not chunk:
                    raise SystemExit("the proxy closed the connection")
                rest += chunk
            assert len(rest) == length, (len(rest), length)
            total += len(head) + 4 + length
    return total


def sluice_capture(binary, origin, path, encoding, size, count):
    proc = spawn([binary, "proxy", "--mode", "reverse:http://127.0.0.1:%d@0" % origin, "-w", path,
                             "--format", encoding, "--no-compress"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    port = None
    for line in proc.stderr:
        if b"listening on" in line:
            port = int(line.split(b"listening on 127.0.0.1:")[1].split()[0])
            break
    if port is None:
        raise SystemExit("%s did not start" % binary)
    traffic = exchange(port, size, count)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)
    if proc.returncode != 0:
        raise SystemExit("%s exited %d" % (binary, proc.returncode))
    return traffic, os.path.getsize(path)


def mitmdump_capture(origin, path, size, count):
    port = free_port()
    proc = spawn(["mitmdump", "-q", "--mode", "reverse:http://127.0.0.1:%d" % origin,
                             "--listen-host", "127.0.0.1", "-p", str(port), "-w", path],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, 30)
        traffic = exchange(port, size, count)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    return traffic, os.path.getsize(path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sluice", default="build/sluice")
    ap.add_argument("--before", help="an older sluice build to measure beside")
    ap.add_argument("--skip-mitmdump", action="store_true")
    ap.add_argument("--small", action="store_true", help="few requests (a smoke run)")
    args = ap.parse_args()
    if not args.skip_mitmdump and not shutil.which("mitmdump"):
        raise SystemExit("mitmdump is missing (scripts/setup --tests installs it)")

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Origin)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    origin = server.server_address[1]

    sides = [("sluice jsonl", "jsonl", args.sluice), ("sluice cbor", "cbor", args.sluice)]
    if args.before:
        sides += [("before jsonl", "jsonl", args.before), ("before cbor", "cbor", args.before)]
    work = tempfile.mkdtemp(prefix="sluice-capture-bench-")
    failed = []
    try:
        print("%-8s %-14s %12s %12s %9s" % ("body", "recorder", "traffic B", "capture B", "B/B"))
        for label, size, count in (SMALL if args.small else SIZES):
            for name, encoding, binary in sides:
                path = os.path.join(work, "%s-%d.%s" % (name.replace(" ", "-"), size, encoding))
                traffic, captured = sluice_capture(binary, origin, path, encoding, size, count)
                ratio = captured / traffic
                print("%-8s %-14s %12d %12d %9.3f" % (label, name, traffic, captured, ratio), flush=True)
                if size == SIZES[-1][1] and binary == args.sluice and ratio > AIM[encoding]:
                    failed.append("%s %s: %.3f > %.2f" % (label, name, ratio, AIM[encoding]))
            if not args.skip_mitmdump:
                path = os.path.join(work, "mitmdump-%d.mitm" % size)
                traffic, captured = mitmdump_capture(origin, path, size, count)
                print("%-8s %-14s %12d %12d %9.3f" % (label, "mitmdump -w", traffic, captured, captured / traffic),
                      flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        server.shutdown()
    if failed:
        print("over the aim: " + "; ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
