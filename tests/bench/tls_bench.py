#!/usr/bin/python3
"""TLS termination benchmark: new TLS connections per second through sluice and its anchors, side by side.

    tests/bench/tls_bench.py [--sluice build/sluice] [--duration 5] [--connections 16] [--tls-origin]

wrk (1 thread, N connections, "Connection: close": a new TCP connection and TLS handshake for every
request) against TLS-terminating reverse proxies in front of one loopback nginx origin serving 1 KiB over
plain HTTP:
  nginx (ssl, keepalive upstream; its 1.22 default protocols, and with TLS 1.3 enabled) |
  mitmdump reverse with a given certificate | sluice reverse,
  recording every flow and handshake to a zstd file, with a leaf from its CA (minted once, cached)
All present an ECDSA P-256 certificate, so the signatures cost the same. Rounds over all of
them, medians reported, with requests/s (= handshakes/s), p50/p99 latency, peak RSS, the CPU time
each handshake cost the proxy, wrk and the origin, sluice's ratios, and the machine's ceiling (all
cores at nginx's cost per handshake). Not a test: it asserts nothing and prints numbers for tests/bench/RESULTS.md.

With --tls-origin the origin serves over TLS too (TLS 1.3, session tickets, nginx's defaults) and every
proxy speaks TLS to it, verifying its certificate: nginx through its keepalive pool (it reuses upstream
connections, and their sessions when it must reconnect), mitmdump and sluice with a new server
connection per client connection; sluice once as it runs by default (the origin's session resumed) and
once with --no-tls-resume (a full handshake on both legs).
"""
import argparse
import json
import os
import resource
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from http1_bench import (add_worker_args, cpu_seconds, nginx_workers, peak_rss_mib, raise_fd_limit,  # noqa: E402
                         require_tools, settle, sluice_worker_args, start_nginx,
                         start_tls_reverse_peers, stop, tls_origin_setup, wrk)


def client_cpu_seconds():
    """CPU time of this script's finished children: wrk, once each run has returned."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def server_sessions_resumed(sluice, capture):
    """(resumed, all) of the server-side handshakes in a capture."""
    out = subprocess.run([sluice, "show", "--jsonl", capture], capture_output=True, check=True).stdout
    resumed = total = 0
    for line in out.splitlines():
        r = json.loads(line)
        if r.get("protocol") == "tls-handshake" and r["message"].get("side") == "server":
            total += 1
            resumed += r.get("tags", {}).get("resumed") == "true"
    return resumed, total


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sluice", default=os.path.join(os.path.dirname(__file__), "..", "..", "build", "sluice"))
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=3, help="rounds over all configurations; medians reported")
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--skip-mitmdump", action="store_true")
    ap.add_argument("--tls-origin", action="store_true", help="the proxies speak TLS to the origin too")
    add_worker_args(ap)
    args = ap.parse_args()
    require_tools("tls_bench", ("nginx", "wrk", "openssl") + (() if args.skip_mitmdump else ("mitmdump",)),
                  "nginx-light mitmproxy wrk")
    raise_fd_limit()

    work, key, cert, origin, origin_port = tls_origin_setup("sluice-tls-bench-", tls=args.tls_origin)
    upstream = ("https://origin; proxy_ssl_trusted_certificate %s; proxy_ssl_verify on; proxy_ssl_name localhost;"
                " proxy_ssl_server_name on;" % cert) if args.tls_origin else "http://origin;"
    # nginx 1.22's default protocols stop at TLS 1.2 (where wrk's resumed sessions skip the key exchange
    # altogether); nginx >= 1.23.4 enables TLS 1.3 by default, which sluice and mitmdump negotiate. Both
    # are measured.
    peers = []
    for name, protocols in (("nginx TLS reverse proxy (1.22 defaults: TLS 1.2)", ""),
                            ("nginx TLS reverse proxy, TLS 1.3", "ssl_protocols TLSv1.2 TLSv1.3;")):
        proc, port = start_nginx(work, "proxy%d" % len(peers), nginx_workers(args), """upstream origin { server 127.0.0.1:%d; keepalive 64; }
server { listen 127.0.0.1:%%d ssl; ssl_certificate %s; ssl_certificate_key %s; %s
  location / { proxy_pass %s proxy_http_version 1.1; proxy_set_header Connection ""; } }"""
                                 % (origin_port, cert, key, protocols, upstream))
        peers.append((name, proc, port))
    started, capture = start_tls_reverse_peers(work, origin_port, args.sluice, sluice_worker_args(args), args.skip_mitmdump,
                                               "mitmdump 8.1 reverse, TLS", "sluice reverse, TLS, recording",
                                               tls_origin=args.tls_origin,
                                               more_sluices=[("sluice reverse, TLS, recording, --no-tls-resume",
                                                              ["--no-tls-resume"])] if args.tls_origin else [])
    peers += started
    sluices = [proc for name, proc, _ in started if name.startswith("sluice")]

    runs = {}
    for _ in range(args.repeat):
        for name, proc, port in peers:
            # CPU per handshake of the client (wrk), the proxy and the origin: where the machine's two
            # cores go, whatever the throughput.
            before = (client_cpu_seconds(), cpu_seconds([proc.pid]), cpu_seconds([origin.pid]))
            r = wrk("https://localhost:%d/1k" % port, args.duration, args.connections, ["Connection: close"])
            after = (client_cpu_seconds(), cpu_seconds([proc.pid]), cpu_seconds([origin.pid]))
            handshakes = max(r["rps"] * args.duration, 1)
            for key, b, a in zip(("wrk_us", "proxy_us", "origin_us"), before, after):
                r[key] = (a - b) / handshakes * 1e6
            runs.setdefault(name, []).append(r)
            settle([origin.pid] + [p.pid for _, p, _ in peers])
    results = {name: {k: sorted(r[k] for r in rs)[len(rs) // 2]
                      for k in ("rps", "p50", "p99", "errors", "wrk_us", "proxy_us", "origin_us")}
               for name, rs in runs.items()}
    rss = {name: peak_rss_mib(proc.pid) for name, proc, _ in peers}

    for proc in sluices:
        stop(proc)
    for _, proc, _ in peers:
        if proc not in sluices:
            stop(proc)
    stop(origin)
    capture_mib = os.path.getsize(capture) / (1 << 20)
    resumed = server_sessions_resumed(args.sluice, capture) if args.tls_origin else None
    shutil.rmtree(work, ignore_errors=True)

    print("wrk -t1 -c%d -d%ds -H 'Connection: close' (a TLS handshake per request), 1 KiB from a loopback nginx "
          "origin%s; %d cores; proxies with %d workers/threads; median of %d rounds"
          % (args.connections, args.duration, " over TLS" if args.tls_origin else "", os.cpu_count(), args.workers,
             args.repeat))
    print("| configuration | handshakes (req)/s | p50 ms | p99 ms | peak RSS MiB | CPU us/handshake: proxy | wrk | origin |")
    print("|---|---|---|---|---|---|---|---|")
    for name, _, _ in peers:
        r = results[name]
        err = " (%d errors)" % r["errors"] if r["errors"] else ""
        print("| %s | %.0f%s | %.2f | %.2f | %.1f | %.0f | %.0f | %.0f |" % (
            name, r["rps"], err, r["p50"], r["p99"], rss[name], r["proxy_us"], r["wrk_us"], r["origin_us"]))
    print()
    # What the whole machine could do if every core did nothing but this: the client's, the best proxy's
    # (nginx at TLS 1.3) and the origin's CPU per handshake, summed, into all the cores.
    best = results["nginx TLS reverse proxy, TLS 1.3"]
    ceiling = os.cpu_count() * 1e6 / (best["wrk_us"] + best["proxy_us"] + best["origin_us"])
    print("ceiling of this machine at nginx's TLS 1.3 cost per handshake (client + proxy + origin, all %d cores "
          "busy): %.0f handshakes/s%s" % (os.cpu_count(), ceiling, "" if args.skip_mitmdump else
                                           " = %.1fx mitmdump" % (ceiling / results["mitmdump 8.1 reverse, TLS"]["rps"])))
    s = results["sluice reverse, TLS, recording"]["rps"]
    ratios = ["%.2fx nginx (TLS 1.2)" % (s / results["nginx TLS reverse proxy (1.22 defaults: TLS 1.2)"]["rps"]),
              "%.2fx nginx (TLS 1.3)" % (s / results["nginx TLS reverse proxy, TLS 1.3"]["rps"])]
    if not args.skip_mitmdump:
        ratios.append("%.1fx mitmdump" % (s / results["mitmdump 8.1 reverse, TLS"]["rps"]))
    if args.tls_origin:
        full = results["sluice reverse, TLS, recording, --no-tls-resume"]
        ratios.append("%.2fx itself with --no-tls-resume (CPU per handshake %.0f vs %.0f us)"
                      % (s / full["rps"], results["sluice reverse, TLS, recording"]["proxy_us"], full["proxy_us"]))
    print("sluice new TLS connections/s: %s" % ", ".join(ratios))
    print("sluice capture written: %.1f MiB" % capture_mib)
    if resumed is not None:
        print("sluice's handshakes with the origin: %d of %d resumed" % resumed)
        if resumed[0] == 0:
            sys.exit("tls_bench: sluice resumed no session with the origin")


if __name__ == "__main__":
    main()
