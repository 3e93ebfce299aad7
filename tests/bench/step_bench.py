#!/usr/bin/python3
"""Step benchmark (issue 21): what a step program costs, against mitmdump running the equivalent addon,
side by side in one run.

    tests/bench/step_bench.py [--sluice build/sluice] [--before OLD_SLUICE] [--duration 5] [--rounds 3]

With wrk (keep-alive, 1 thread, 16 connections) against a loopback nginx origin serving a 1 KiB body,
through reverse proxies that record every flow:
  sluice without a step | sluice --step (a pass-through Python step: it reads each unit and writes it
  back, the request and the response of every exchange; once as it came, once through json) | sluice
  --step with a step interested in another host only (its units take the fast path) | mitmdump -s (a Python addon whose request and
  response hooks run for every exchange) | with --before, an older sluice build without a step
(in rounds over all of them, medians reported). Prints requests/s and p50/p99 latency for each, and the
ratios: step against mitmdump's addon (the aim: >= 10x), the uninterested step against no step (the
aim: no-step speed), no step against the older build (the aim: within 3%). Needs nginx, mitmdump and wrk (scripts/setup --tests). Not a test: it prints numbers for
tests/bench/RESULTS.md.
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from http1_bench import (free_port, require_tools, settle, spawn, start_nginx, stop, wait_port,  # noqa: E402
                         wrk)

PASS_STEP = '''import sys
sys.stdin.readline()
for line in sys.stdin:
    sys.stdout.write(line)  # each unit back as it came: the lightest step there is
    sys.stdout.flush()
'''
PASS_JSON_STEP = '''import json, sys
sys.stdin.readline()
for line in sys.stdin:
    unit = json.loads(line)  # what a step that looks at the unit does
    sys.stdout.write(json.dumps(unit) + "\\n")
    sys.stdout.flush()
'''
ELSEWHERE_STEP = '''import json, sys
print(json.dumps({"type": "interest", "filter": "~d only.example.com"}), flush=True)
sys.stdin.readline()
for line in sys.stdin:
    sys.stdout.write(line)
    sys.stdout.flush()
'''
ADDON = '''class Touch:
    def request(self, flow):
        flow.request.headers.get("host")
    def response(self, flow):
        flow.response.headers.get("content-type")
addons = [Touch()]
'''


def start_sluice(binary, origin_port, work, name, extra=()):
    proc = spawn([binary, "proxy", "--mode", "reverse:http://127.0.0.1:%d@0" % origin_port, *extra,
                  "-w", os.path.join(work, name + ".zst")], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    while True:
        line = proc.stderr.readline().decode()
        if not line:
            sys.exit("step_bench: %s did not start" % name)
        m = re.search(r"listening on [\d.]+:(\d+)", line)
        if m:
            return proc, int(m.group(1))


def measure_rounds(peers, rounds, duration, connections):
    """wrk against each (name, process, port) in turn, `rounds` times over all of them, each peer idle
    first; prints and returns the medians of requests/s and p50/p99 latency by name."""
    results = {name: [] for name, _, _ in peers}
    for _ in range(rounds):
        for name, proc, port in peers:
            settle([proc.pid])
            r = wrk("http://127.0.0.1:%d/1k" % port, duration, connections)
            if r["errors"]:
                print("%s: %d errors" % (name, r["errors"]), file=sys.stderr)
            results[name].append(r)
    med = {name: {k: statistics.median(r[k] for r in rs) for k in ("rps", "p50", "p99")} for name, rs in results.items()}
    print("%-28s %10s %9s %9s" % ("1 KiB, %d connections" % connections, "req/s", "p50 ms", "p99 ms"))
    for name in results:
        print("%-28s %10.0f %9.2f %9.2f" % (name, med[name]["rps"], med[name]["p50"], med[name]["p99"]))
    return med


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sluice", default=os.path.join(os.path.dirname(__file__), "..", "..", "build", "sluice"))
    ap.add_argument("--before", help="an older sluice build, measured without a step")
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--skip-mitmdump", action="store_true")
    args = ap.parse_args()
    require_tools("step_bench", ["nginx", "wrk"] + ([] if args.skip_mitmdump else ["mitmdump"]),
                  "nginx-light wrk mitmproxy")

    work = tempfile.mkdtemp(prefix="sluice-step-bench-")
    with open(os.path.join(work, "1k"), "wb") as f:
        f.write(b"x" * 1024)
    for name, text in (("pass.py", PASS_STEP), ("pass_json.py", PASS_JSON_STEP), ("elsewhere.py", ELSEWHERE_STEP),
                       ("addon.py", ADDON)):
        with open(os.path.join(work, name), "w") as f:
            f.write(text)
    origin, origin_port = start_nginx(work, "origin", 1, "server { listen 127.0.0.1:%%d; location / { root %s; } }"
                                      % work)
    peers = [("sluice, no step",) + start_sluice(args.sluice, origin_port, work, "nostep"),
             ("sluice --step pass.py",) + start_sluice(args.sluice, origin_port, work, "step",
                                                       ["--step", "/usr/bin/python3 %s/pass.py" % work]),
             ("sluice --step pass_json.py",) + start_sluice(args.sluice, origin_port, work, "step_json",
                                                            ["--step", "/usr/bin/python3 %s/pass_json.py" % work]),
             ("sluice --step elsewhere.py",) + start_sluice(args.sluice, origin_port, work, "step_elsewhere",
                                                            ["--step", "/usr/bin/python3 %s/elsewhere.py" % work])]
    if args.before:
        peers.append(("before, no step",) + start_sluice(args.before, origin_port, work, "before"))
    if not args.skip_mitmdump:
        port = free_port()
        mitm = spawn(["mitmdump", "-q", "-p", str(port), "--mode", "reverse:http://127.0.0.1:%d" % origin_port,
                      "-s", os.path.join(work, "addon.py"), "-w", os.path.join(work, "mitm.flows")],
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(port, 60)
        peers.append(("mitmdump -s addon.py", mitm, port))

    med = measure_rounds(peers, args.rounds, args.duration, args.connections)
    if "mitmdump -s addon.py" in med:
        for step in ("sluice --step pass.py", "sluice --step pass_json.py"):
            print("%s / mitmdump -s addon.py: %.1fx" % (step, med[step]["rps"] / med["mitmdump -s addon.py"]["rps"]))
    print("step interested in another host / no step: %.3f" % (med["sluice --step elsewhere.py"]["rps"] /
                                                               med["sluice, no step"]["rps"]))
    if "before, no step" in med:
        print("no step / before: %.3f" % (med["sluice, no step"]["rps"] / med["before, no step"]["rps"]))
    for name, proc, port in peers:
        stop(proc)
    stop(origin)


if __name__ == "__main__":
    main()
