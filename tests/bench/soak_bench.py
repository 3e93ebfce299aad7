#!/usr/bin/python3
"""Hostile soak: normal traffic through a proxy while hostile clients and servers run beside it, sluice
and nginx side by side in one run.

    tests/bench/soak_bench.py [--sluice build/sluice] [--duration 60] [--clients 50]

For each proxy (sluice reverse, recording to a zstd file; nginx as a reverse proxy, keepalive upstream),
wrk measures normal traffic (1 KiB bodies from a loopback nginx origin) first alone, then for the same
time while these run beside it, all on loopback and each bounded:
  slowloris    --clients connections sending a header byte a second
  silent       --clients connections that connect and say nothing
  non-reading  --clients connections asking for 8 MiB each and never reading
  garbage      connections sending random bytes, as fast as the proxy answers them
  slow server  requests to a server that trickles its answer, a byte every 50 ms
  aborting     requests to a server that sends half its answer and resets
  self-loop    requests for the proxy's own address (sluice only: nginx is no forward proxy)
It reports requests/s and p99 alone and under load, the proxy's peak RSS, its descriptors before and
after (a leak shows), and its CPU while idle for 2 s, from 1 s after the load stopped. Not a test: it asserts
nothing and prints numbers for tests/bench/RESULTS.md.
"""
import argparse
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from http1_bench import (cpu_seconds, free_port, peak_rss_mib, raise_fd_limit, require_tools, spawn,  # noqa: E402
                         start_nginx, stop, wait_port, wrk)


class HostileServer:
    """A loopback server whose every answer is hostile: `slow` trickles a 40-byte body a byte every
    50 ms; `abort` sends its head and half the body, then resets."""

    def __init__(self, kind):
        self.kind = kind
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn):
        try:
            conn.settimeout(10)
            buf = b""
            while b"\r\n\r\n" not in buf:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                buf += chunk
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 40\r\nConnection: close\r\n\r\n")
            if self.kind == "slow":
                for _ in range(40):
                    conn.sendall(b"s")
                    time.sleep(0.05)
            else:
                conn.sendall(b"a" * 20)
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        except OSError:
            pass
        finally:
            conn.close()


class Hostile:
    """The hostile clients against one proxy until stop(); `http_port` takes HTTP, `forward_port` (when
    the proxy has one) forward-proxy requests."""

    def __init__(self, http_port, clients, paths, forward_port=None):
        self.http_port, self.clients, self.paths, self.forward_port = http_port, clients, paths, forward_port
        self.server_port = forward_port or http_port  # where requests for the hostile servers go
        self.done = threading.Event()
        self.threads = []
        self.held = []
        self.counts = {}

    def _count(self, name):
        self.counts[name] = self.counts.get(name, 0) + 1

    def _connect(self):
        s = socket.create_connection(("127.0.0.1", self.http_port), timeout=10)
        self.held.append(s)
        return s

    def _loop(self, name, once):
        def run():
            while not self.done.is_set():
                try:
                    once()
                    self._count(name)
                except OSError:
                    self._count(name + " failed")
        t = threading.Thread(target=run, daemon=True)
        t.start()
        self.threads.append(t)

    def start(self):
        for _ in range(self.clients):
            try:
                self._connect()  # silent
                s = self._connect()  # non-reading
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                s.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % self.paths["big"])
            except OSError:
                self._count("refused")
        slow = []
        for _ in range(self.clients):
            try:
                s = self._connect()
                s.sendall(b"GET /1k HTTP/1.1\r\n")
                slow.append(s)
            except OSError:
                self._count("refused")

        def slowloris():
            i = 0
            while not self.done.wait(1.0):
                for s in slow:
                    try:
                        s.sendall(b"X-%d: y\r\n" % i)
                    except OSError:
                        pass
                i += 1
        t = threading.Thread(target=slowloris, daemon=True)
        t.start()
        self.threads.append(t)

        def garbage():
            with socket.create_connection(("127.0.0.1", self.http_port), timeout=5) as s:
                s.sendall(random.randbytes(512))
                s.recv(4096)
        self._loop("garbage", garbage)

        def request(path, port=None, target=None):
            def once():
                with socket.create_connection(("127.0.0.1", port or self.http_port), timeout=10) as s:
                    s.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % (target or path))
                    while s.recv(65536):
                        pass
            return once
        self._loop("slow server", request(self.paths["slow"], self.server_port))
        self._loop("aborting server", request(self.paths["abort"], self.server_port))
        if self.forward_port:
            self._loop("self-loop", request(None, self.forward_port,
                                            b"http://127.0.0.1:%d/1k" % self.forward_port))

    def stop(self):
        self.done.set()
        for t in self.threads:
            t.join(15)
        for s in self.held:
            s.close()


def descriptors(pids):
    n = 0
    for pid in pids:
        try:
            n += len(os.listdir("/proc/%d/fd" % pid))
        except OSError:
            pass
    return n


def worker_pids(proc):
    """The proxy's processes: sluice itself; nginx's master and workers."""
    try:
        children = open("/proc/%d/task/%d/children" % (proc.pid, proc.pid)).read().split()
    except OSError:
        children = []
    return [proc.pid] + [int(c) for c in children]


def soak(name, proc, port, args, paths, forward_port=None):
    url = "http://127.0.0.1:%d/1k" % port
    alone = wrk(url, args.duration, args.connections)
    fds_before = descriptors(worker_pids(proc))
    hostile = Hostile(port, args.clients, paths, forward_port)
    hostile.start()
    loaded = wrk(url, args.duration, args.connections)
    hostile.stop()
    # What the hostile clients left behind is closed by now (their sockets are): the proxy lets go.
    deadline = time.monotonic() + 30
    fds_after = descriptors(worker_pids(proc))
    while fds_after > fds_before and time.monotonic() < deadline:
        time.sleep(0.5)
        fds_after = descriptors(worker_pids(proc))
    time.sleep(1)  # the recorder writes out what the load left queued
    before = cpu_seconds(worker_pids(proc))
    time.sleep(2)
    idle_cpu = cpu_seconds(worker_pids(proc)) - before
    return {"name": name, "alone": alone, "loaded": loaded, "rss": peak_rss_mib(proc.pid), "fds": (fds_before, fds_after),
            "idle_cpu": idle_cpu, "hostile": dict(hostile.counts)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sluice", default=os.path.join(os.path.dirname(__file__), "..", "..", "build", "sluice"))
    ap.add_argument("--duration", type=int, default=60, help="seconds of wrk, alone and under load (default 60)")
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--clients", type=int, default=50, help="slowloris, silent and non-reading clients each")
    args = ap.parse_args()
    require_tools("soak_bench", ("nginx", "wrk"), "nginx-light wrk")
    raise_fd_limit()

    work = tempfile.mkdtemp(prefix="sluice-soak-")
    with open(os.path.join(work, "1k"), "wb") as f:
        f.write(b"x" * 1024)
    with open(os.path.join(work, "8m"), "wb") as f:
        f.write(b"y" * (8 << 20))
    origin, origin_port = start_nginx(work, "origin", 1, "server { listen 127.0.0.1:%%d; location / { root %s; } }" % work)
    slow, abort = HostileServer("slow"), HostileServer("abort")
    # nginx plays the same part: the same origin, and the hostile servers behind two paths.
    nginx, nginx_port = start_nginx(work, "proxy", "%d" % os.cpu_count(), """upstream origin { server 127.0.0.1:%d; keepalive 64; }
server { listen 127.0.0.1:%%d; client_header_timeout 30s; send_timeout 75s;
  location / { proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection ""; }
  location /slow { proxy_pass http://127.0.0.1:%d; }
  location /abort { proxy_pass http://127.0.0.1:%d; } }""" % (origin_port, slow.port, abort.port))
    # sluice: a reverse listener for the traffic, and a forward listener that reaches the hostile
    # servers (and is asked for itself).
    capture = os.path.join(work, "capture.zst")
    sluice = spawn([args.sluice, "proxy", "--mode", "reverse:http://127.0.0.1:%d@0" % origin_port,
                    "--mode", "regular@0", "--threads", str(os.cpu_count()), "-w", capture],
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ports = []
    while len(ports) < 2:
        line = sluice.stderr.readline().decode()
        if not line:
            sys.exit("sluice did not start")
        if "listening on" in line:
            ports.append(int(line.split(" (")[0].rsplit(":", 1)[1]))
    threading.Thread(target=sluice.stderr.read, daemon=True).start()
    for p in ports:
        wait_port(p)

    results = [
        soak("nginx reverse proxy", nginx, nginx_port, args,
             {"big": b"/8m", "slow": b"/slow", "abort": b"/abort"}),
        soak("sluice reverse, recording", sluice, ports[0], args,
             {"big": b"/8m", "slow": b"http://127.0.0.1:%d/" % slow.port, "abort": b"http://127.0.0.1:%d/" % abort.port},
             forward_port=ports[1]),
    ]
    stop(sluice)
    stop(nginx)
    stop(origin)

    print("wrk -t1 -c%d -d%ds, 1 KiB from a loopback nginx origin; %d slowloris, %d silent and %d non-reading "
          "clients, garbage, slow-server, aborting-server (and self-loop for sluice) loops beside it; %d cores"
          % (args.connections, args.duration, args.clients, args.clients, args.clients, os.cpu_count()))
    print("| proxy | req/s alone | req/s under load | p99 ms alone | p99 ms under load | peak RSS MiB | "
          "descriptors before/after | CPU s over 2 s idle |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print("| %s | %.0f | %.0f | %.2f | %.2f | %.1f | %d/%d | %.2f |" % (
            r["name"], r["alone"]["rps"], r["loaded"]["rps"], r["alone"]["p99"], r["loaded"]["p99"], r["rss"],
            r["fds"][0], r["fds"][1], r["idle_cpu"]))
    for r in results:
        print("%s: under load %.2fx its own req/s alone, p99 %.2fx; hostile operations %s" % (
            r["name"], r["loaded"]["rps"] / r["alone"]["rps"], r["loaded"]["p99"] / max(r["alone"]["p99"], 0.001),
            ", ".join("%s %d" % kv for kv in sorted(r["hostile"].items()))))
    s, n = results[1], results[0]
    print("sluice/nginx req/s under load: %.2f" % (s["loaded"]["rps"] / n["loaded"]["rps"]))


if __name__ == "__main__":
    main()
