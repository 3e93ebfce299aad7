#!/usr/bin/python3
"""Rules benchmark (issue 23): 20 live rules against nginx doing the same edits and mitmdump with the
same flags, side by side in one run; `sluice transform` over a large capture.

    tests/bench/transform_bench.py [--sluice build/sluice] [--duration 5] [--rounds 3] [--flows 200000]

Live, with wrk (keep-alive, 1 thread, 16 connections) against a loopback nginx origin serving a 1 KiB
text body, through reverse proxies:
  sluice (records every flow) with 19 request header sets (-H '/~q/X-Rule-N/value-N') and a response
  body regex (-B '/~s/o(r)igin/ORIGIN') | sluice without rules | sluice with --safety default and
  --redact (every request judged, every record looked at for secrets) | nginx with the same edits
  (proxy_set_header x19, sub_filter) | mitmdump -q with the same -H/-B flags (records every flow)
(in rounds over all of them, medians reported). Each proxy is checked first to make the edits (the
origin echoes a rule header back in a response field; the body comes back replaced). Prints requests/s
and p50/p99 latency, and the ratios: rules / nginx (the aim: >= 0.7x), rules / mitmdump (>= 20x),
rules / no rules, and the guards' cost (--safety --redact / no rules).

Offline, `sluice transform` with the same 20 rules over a capture of FLOWS exchanges (filter_bench's
generator; every request and response is changed): flows/s, best of 3.
Needs nginx, wrk and mitmdump (scripts/setup --tests). Not a test: it prints numbers for
tests/bench/RESULTS.md.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from filter_bench import best_of, make_capture  # noqa: E402
from http1_bench import free_port, require_tools, spawn, start_nginx, stop, wait_port  # noqa: E402
from step_bench import measure_rounds, start_sluice  # noqa: E402

RULES = 19  # header sets, plus one body regex: 20


def sluice_rules():
    args = []
    for i in range(RULES):
        args += ["-H", "/~q/X-Rule-%d/value-%d" % (i, i)]
    return args + ["-B", "/~s/o(r)igin/ORIGIN"]


def check(port, name):
    """The edits were made: the origin saw X-Rule-7 (echoed as X-Seen-Rule-7) and the body changed."""
    with urllib.request.urlopen("http://127.0.0.1:%d/1k" % port, timeout=10) as r:
        body = r.read()
        seen = r.headers.get("X-Seen-Rule-7")
    if seen != "value-7" or b"ORIGIN" not in body or b"origin" in body:
        sys.exit("transform_bench: %s did not make the edits (X-Seen-Rule-7 %r, body %r)" % (name, seen, body[:40]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sluice", default=os.path.join(os.path.dirname(__file__), "..", "..", "build", "sluice"))
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--flows", type=int, default=200000)
    ap.add_argument("--skip-mitmdump", action="store_true")
    args = ap.parse_args()
    require_tools("transform_bench", ["nginx", "wrk", "zstd"] + ([] if args.skip_mitmdump else ["mitmdump"]),
                  "nginx-light wrk zstd mitmproxy")

    work = tempfile.mkdtemp(prefix="sluice-transform-bench-")
    text = (b"the origin says hello; " * 64)[:1024]
    with open(os.path.join(work, "1k"), "wb") as f:
        f.write(text)
    origin, origin_port = start_nginx(work, "origin", 1, (
        "server { listen 127.0.0.1:%%d; location / { root %s; default_type text/plain;"
        " add_header X-Seen-Rule-7 $http_x_rule_7; } }") % work)
    sets = "".join("proxy_set_header X-Rule-%d value-%d; " % (i, i) for i in range(RULES))
    edge, edge_port = start_nginx(work, "edge", 1, (
        "server { listen 127.0.0.1:%%d; location / { proxy_pass http://127.0.0.1:%d; proxy_http_version 1.1;"
        " proxy_set_header Connection ''; proxy_set_header Host $host; %s"
        " sub_filter 'origin' 'ORIGIN'; sub_filter_once off; sub_filter_types *; } }") % (origin_port, sets))
    peers = [("sluice, 20 rules",) + start_sluice(args.sluice, origin_port, work, "rules", sluice_rules()),
             ("sluice, no rules",) + start_sluice(args.sluice, origin_port, work, "norules"),
             ("sluice, --safety --redact",) + start_sluice(args.sluice, origin_port, work, "guards",
                                                           ["--safety", "default", "--redact"]),
             ("nginx, same edits", edge, edge_port)]
    if not args.skip_mitmdump:
        port = free_port()
        mitm = spawn(["mitmdump", "-q", "-p", str(port), "--mode", "reverse:http://127.0.0.1:%d" % origin_port,
                      *sluice_rules(), "-w", os.path.join(work, "mitm.flows")],
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(port, 60)
        peers.append(("mitmdump, same flags", mitm, port))
    for name, _, port in peers:
        if name not in ("sluice, no rules", "sluice, --safety --redact"):
            check(port, name)

    med = measure_rounds(peers, args.rounds, args.duration, args.connections)
    rules = med["sluice, 20 rules"]["rps"]
    print("20 rules / nginx with the same edits: %.2fx (aim >= 0.7x)" % (rules / med["nginx, same edits"]["rps"]))
    if "mitmdump, same flags" in med:
        print("20 rules / mitmdump with the same flags: %.1fx (aim >= 20x)" % (rules / med["mitmdump, same flags"]["rps"]))
    print("20 rules / no rules: %.2f" % (rules / med["sluice, no rules"]["rps"]))
    print("--safety default --redact / no rules: %.2f" % (med["sluice, --safety --redact"]["rps"] / med["sluice, no rules"]["rps"]))
    for name, proc, port in peers:
        stop(proc)
    stop(origin)

    capture = os.path.join(work, "capture.zst")
    make_capture(capture, args.flows)

    def transform():
        subprocess.run([args.sluice, "transform", *sluice_rules(), "-B", "/~s/item/ITEM", capture, "-w",
                        os.path.join(work, "out.zst")], check=True)
    seconds, _ = best_of(3, transform)
    out = subprocess.run([args.sluice, "show", "--jsonl", os.path.join(work, "out.zst")], capture_output=True, check=True)
    variants = out.stdout.count(b'"variant":"modified"')
    if variants != 2 * args.flows:
        sys.exit("transform_bench: %d variants for %d flows (every request and response is changed)" % (variants, args.flows))
    print("sluice transform, %d flows (21 rules, every message changed): %.2f s, %.0f flows/s"
          % (args.flows, seconds, args.flows / seconds))


if __name__ == "__main__":
    main()
