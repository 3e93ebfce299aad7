#!/usr/bin/python3
"""HTTP/2 benchmark: h2load through sluice and its anchors, side by side, in one run.

    tests/bench/h2_bench.py [--sluice build/sluice] [--duration 5] [--repeat 3]

h2load (10 connections x 10 concurrent streams, TLS with ALPN h2) against reverse proxies in front of
one loopback nginx origin serving 1 KiB over plain HTTP/1.1:
  nginx (`listen ssl http2`, keepalive upstream) | mitmdump reverse with a given certificate |
  sluice reverse, recording every flow to a zstd file (each HTTP/2 stream translated to HTTP/1.1 for
  the origin, as nginx and mitmdump do)
Rounds over all of them, medians reported, with requests/s, mean and max request time and peak RSS,
and sluice's ratios. Not a test: it asserts nothing and prints numbers for tests/bench/RESULTS.md.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from http1_bench import (add_worker_args, nginx_workers, peak_rss_mib, raise_fd_limit, require_tools,  # noqa: E402
                         settle, sluice_worker_args, start_nginx,
                         start_tls_reverse_peers, stop, tls_origin_setup)


def h2load(url, duration, clients, streams):
    out = subprocess.run(["h2load", "-c", str(clients), "-m", str(streams), "-D", str(duration), url],
                         capture_output=True, text=True, timeout=duration + 120).stdout

    def ms(v, unit):
        return float(v) / 1000 if unit == "us" else float(v) * 1000 if unit == "s" else float(v)
    rps = float(re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out).group(1))
    m = re.search(r"time for request:\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)", out)
    done = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored",
                     out)
    proto = re.search(r"Application protocol: (\S+)", out)
    return {"rps": rps, "mean": ms(m.group(5), m.group(6)), "max": ms(m.group(3), m.group(4)),
            "errors": int(done.group(3)) + int(done.group(4)), "protocol": proto.group(1) if proto else "?"}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sluice", default=os.path.join(os.path.dirname(__file__), "..", "..", "build", "sluice"))
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=3, help="rounds over all configurations; medians reported")
    ap.add_argument("--clients", type=int, default=10)
    ap.add_argument("--streams", type=int, default=10, help="concurrent streams per connection")
    ap.add_argument("--skip-mitmdump", action="store_true")
    add_worker_args(ap)
    args = ap.parse_args()
    require_tools("h2_bench", ("nginx", "h2load", "openssl") + (() if args.skip_mitmdump else ("mitmdump",)),
                  "nginx-light mitmproxy nghttp2-client")
    raise_fd_limit()

    work, key, cert, origin, origin_port = tls_origin_setup("sluice-h2-bench-")
    peers = []
    proc, port = start_nginx(work, "proxy", nginx_workers(args), """upstream origin { server 127.0.0.1:%d; keepalive 64; }
server { listen 127.0.0.1:%%d ssl http2; ssl_certificate %s; ssl_certificate_key %s; http2_max_requests 1000000;
  location / { proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection ""; } }"""
                             % (origin_port, cert, key))
    peers.append(("nginx h2 reverse proxy", proc, port))
    started, capture = start_tls_reverse_peers(work, origin_port, args.sluice, sluice_worker_args(args), args.skip_mitmdump,
                                               "mitmdump 8.1 reverse", "sluice reverse, recording")
    peers += started
    sluice = started[-1][1]

    runs = {}
    for _ in range(args.repeat):
        for name, proc, port in peers:
            r = h2load("https://localhost:%d/1k" % port, args.duration, args.clients, args.streams)
            runs.setdefault(name, []).append(r)
            settle([origin.pid] + [p.pid for _, p, _ in peers])
    results = {name: {k: sorted(r[k] for r in rs)[len(rs) // 2] for k in ("rps", "mean", "max", "errors")}
               for name, rs in runs.items()}
    protocols = {name: rs[0]["protocol"] for name, rs in runs.items()}
    rss = {name: peak_rss_mib(proc.pid) for name, proc, _ in peers}

    stop(sluice)
    for _, proc, _ in peers:
        if proc is not sluice:
            stop(proc)
    stop(origin)
    capture_mib = os.path.getsize(capture) / (1 << 20)
    shutil.rmtree(work, ignore_errors=True)

    print("h2load -c%d -m%d -D%d over TLS (ALPN), 1 KiB from a loopback nginx origin (HTTP/1.1); %d cores; "
          "proxies with %d workers/threads; median of %d rounds"
          % (args.clients, args.streams, args.duration, os.cpu_count(), args.workers, args.repeat))
    print("| configuration | protocol | req/s | mean ms | max ms | peak RSS MiB |")
    print("|---|---|---|---|---|---|")
    for name, _, _ in peers:
        r = results[name]
        err = " (%d failed)" % r["errors"] if r["errors"] else ""
        print("| %s | %s | %.0f%s | %.2f | %.2f | %.1f |" % (name, protocols[name], r["rps"], err, r["mean"], r["max"],
                                                            rss[name]))
    print()
    s = results["sluice reverse, recording"]["rps"]
    ratios = ["%.2fx nginx" % (s / results["nginx h2 reverse proxy"]["rps"])]
    if not args.skip_mitmdump:
        ratios.append("%.1fx mitmdump" % (s / results["mitmdump 8.1 reverse"]["rps"]))
    print("sluice HTTP/2 requests/s: %s" % ", ".join(ratios))
    print("sluice capture written: %.1f MiB" % capture_mib)
    if any(p != "h2" for p in protocols.values()) or any(r["errors"] for r in results.values()):
        sys.exit("h2_bench: a peer did not speak h2 or requests failed (see the table)")


if __name__ == "__main__":
    main()
