#!/usr/bin/python3
"""Server replay benchmark: `sluice proxy --serve-from` against mitmdump's --server-replay, side by side.

    tests/bench/serve_bench.py [--sluice build/sluice] [--duration 5] [--repeat 3] [--flows 100000]

A loopback origin (Python) serves /item/0../item/9 (1 KiB each); 10 of those exchanges are recorded
through `sluice proxy --mode reverse:` and through `mitmdump -w`. The sluice capture is then grown to
--flows flows (/item/0../item/N-1, the same records with other paths). The origin is stopped, and wrk
(1 thread, 16 keep-alive connections) asks for /item/7 of:
  mitmdump --server-replay (10 flows, nopop, lazy connections: the origin is gone) | sluice --serve-from --reuse (10 flows) |
  sluice --serve-from --reuse (--flows flows)
in rounds, medians reported, with each proxy's start-up time (capture load) and peak RSS. sluice
records every answered flow to a zstd file meanwhile, as it always does. Not a test: it asserts
nothing and prints numbers for tests/bench/RESULTS.md.
"""
import argparse
import base64
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from http1_bench import free_port, peak_rss_mib, require_tools, settle, spawn, stop, wait_port, wrk  # noqa: E402


class Item(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = (self.path + "\n").encode().ljust(1024, b".")
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def curl_all(port, n):
    for i in range(n):
        subprocess.run(["curl", "-sS", "-o", "/dev/null", "http://127.0.0.1:%d/item/%d" % (port, i)], check=True,
                       timeout=30)


def grow(small_jsonl, big_jsonl, flows):
    """The 10-flow capture's records repeated with other paths and flow ids, up to `flows` flows."""
    records = [json.loads(line) for line in open(small_jsonl)]
    header = records[0]
    by_flow = {}
    for r in records[1:]:
        if r.get("type") == "envelope" and r.get("protocol") == "http":
            by_flow.setdefault(r["flow_id"], []).append(r)
    template = list(by_flow.values())[0]
    old_path = [r for r in template if r["direction"] == "send"][0]["message"]["path"]
    with open(big_jsonl, "w") as out:
        out.write(json.dumps(header) + "\n")
        for i in range(flows):
            path = "/item/%d" % i
            for r in template:
                c = json.loads(json.dumps(r))
                c["flow_id"] = "grown-%d" % i
                c["stream_id"] = "grown-%d" % i
                raw = base64.b64decode(c["raw"]).replace(old_path.encode(), path.encode())
                c["raw"] = base64.b64encode(raw).decode()
                if c["direction"] == "send":
                    c["message"]["path"] = path
                elif isinstance(c["message"].get("body"), str):
                    c["message"]["body"] = c["message"]["body"].replace(old_path, path)
                out.write(json.dumps(c) + "\n")


def start(cmd, port_re=None, port=None):
    """Starts a proxy; returns (process, port, seconds until it listened)."""
    t0 = time.monotonic()
    proc = spawn(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE if port_re else subprocess.DEVNULL)
    if port_re:
        while True:
            line = proc.stderr.readline().decode()
            if not line:
                raise RuntimeError("%s ended: no listening line" % cmd[0])
            m = re.search(port_re, line)
            if m:
                port = int(m.group(1))
                break
        threading.Thread(target=proc.stderr.read, daemon=True).start()
    wait_port(port, 300)
    return proc, port, time.monotonic() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sluice", default=os.path.join(os.path.dirname(__file__), "..", "..", "build", "sluice"))
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--flows", type=int, default=100000)
    ap.add_argument("--skip-mitmdump", action="store_true")
    args = ap.parse_args()
    require_tools("serve_bench", ("wrk", "curl") + (() if args.skip_mitmdump else ("mitmdump",)),
                  "wrk curl mitmproxy")
    work = tempfile.mkdtemp(prefix="sluice-serve-bench-")
    ca_dir = os.path.join(work, "ca")  # the bench's own CA, not the caller's

    origin = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Item)
    threading.Thread(target=origin.serve_forever, daemon=True).start()
    target = "http://127.0.0.1:%d" % origin.server_address[1]

    # Record the 10 flows through each proxy.
    small = os.path.join(work, "small.jsonl")
    rec, port, _ = start([args.sluice, "proxy", "--mode", "reverse:%s@0" % target, "--ca-dir", ca_dir, "--no-compress",
                          "-w", small],
                         r"listening on [\d.]+:(\d+)")
    curl_all(port, 10)
    stop(rec)
    big = os.path.join(work, "big.jsonl")
    grow(small, big, args.flows)
    mitm_flows = os.path.join(work, "flows.mitm")
    if not args.skip_mitmdump:
        mport = free_port()
        rec, _, _ = start(["mitmdump", "-q", "-p", str(mport), "--mode", "reverse:" + target, "-w", mitm_flows],
                          port=mport)
        curl_all(mport, 10)
        stop(rec)
    origin.shutdown()
    origin.server_close()  # from here on, every answer comes from a recording

    peers = []
    if not args.skip_mitmdump:
        mport = free_port()
        proc, port, startup = start(["mitmdump", "-q", "-p", str(mport), "--mode", "reverse:" + target,
                                     "--server-replay", mitm_flows, "--set", "server_replay_nopop=true",
                                     "--set", "connection_strategy=lazy"], port=mport)
        peers.append(("mitmdump 8.1 --server-replay, 10 flows", proc, port, startup))
    for name, capture in (("sluice --serve-from, 10 flows", small),
                          ("sluice --serve-from, %d flows" % args.flows, big)):
        proc, port, startup = start([args.sluice, "proxy", "--mode", "reverse:%s@0" % target, "--serve-from", capture,
                                     "--ca-dir", ca_dir, "--reuse", "-w", os.path.join(work, "served-%d.zst" % len(peers))],
                                    r"listening on [\d.]+:(\d+)")
        peers.append((name, proc, port, startup))

    runs = {}
    for _ in range(args.repeat):
        for name, proc, port, _ in peers:
            runs.setdefault(name, []).append(wrk("http://127.0.0.1:%d/item/7" % port, args.duration, args.connections))
            settle([p.pid for _, p, _, _ in peers])
    print("| configuration | req/s | p50 ms | p99 ms | errors | start-up s | peak RSS MiB |")
    print("|---|---|---|---|---|---|---|")
    med = {}
    for name, proc, port, startup in peers:
        rs = sorted(runs[name], key=lambda r: r["rps"])
        m = rs[len(rs) // 2]
        med[name] = m
        print("| %s | %.0f | %.2f | %.2f | %d | %.2f | %.1f |" % (name, m["rps"], m["p50"], m["p99"],
                                                                sum(r["errors"] for r in rs), startup,
                                                                peak_rss_mib(proc.pid)))
    names = [n for n, _, _, _ in peers]
    small_name, big_name = names[-2], names[-1]
    print("\nsluice %d flows / 10 flows: %.2fx" % (args.flows, med[big_name]["rps"] / med[small_name]["rps"]))
    if not args.skip_mitmdump:
        print("sluice (10 flows) / mitmdump (10 flows): %.1fx" % (med[small_name]["rps"] / med[names[0]]["rps"]))
        print("sluice (%d flows) / mitmdump (10 flows): %.1fx" % (args.flows, med[big_name]["rps"] / med[names[0]]["rps"]))
    for _, proc, _, _ in peers:
        stop(proc)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
