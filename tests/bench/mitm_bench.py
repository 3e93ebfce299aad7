#!/usr/bin/python3
"""mitmproxy flow file benchmark: `sluice import` of an N-flow file and `sluice filter EXPR` straight on
it, against `mitmdump -nr FILE EXPR` (mitmproxy reading the same file with the same filter), side by
side in one run.

    tests/bench/mitm_bench.py [--sluice build/sluice] [--flows 100000] [--filter '~d h03 & ~c 200']

The file is what mitmproxy 8.1's own FlowWriter writes for an HTTP flow (mitmproxy.test.tflow: a
request and a response with small bodies), repeated N times with its path and host varied in place
(20 hosts), so both tools read the same N flows. Each side runs once; the script checks that sluice's
filter and mitmdump select the same number of flows. Not a test: it prints numbers for
tests/bench/RESULTS.md (smoke-run small in ctest so it keeps working).
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

from mitmproxy.io import tnetstring
from mitmproxy.test import tflow


def make_file(path, flows):
    f = tflow.tflow(resp=True)
    f.request.host = "h00.example.com"
    f.request.path = "/p0000000"
    f.response.status_code = 200
    f.id = "00000000-0000-4000-8000-000000000000"
    template = tnetstring.dumps(f.get_state())
    assert template.count(b"h00.example.com") >= 1 and template.count(b"/p0000000") == 1
    with open(path, "wb") as out:
        for i in range(flows):
            one = (template.replace(b"/p0000000", b"/p%07d" % i).replace(b"h00.example.com", b"h%02d.example.com" % (i % 20))
                   .replace(b"8000-000000000000", b"8000-%012d" % i))  # each flow its own id
            if i % 7 == 0:
                one = one.replace(b"11:status_code;3:200#", b"11:status_code;3:404#")
            out.write(one)


def timed(cmd, **kw):
    start = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, **kw)
    took = time.monotonic() - start
    if p.returncode not in (0, 1):
        sys.exit("failed: %s\n%s" % (" ".join(cmd), p.stderr.decode(errors="replace")[-2000:]))
    return took, p


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sluice", default=os.path.join(os.path.dirname(__file__), "..", "..", "build", "sluice"))
    ap.add_argument("--flows", type=int, default=100000)
    ap.add_argument("--filter", default="~d h03 & ~c 200")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "flows.mitm")
        make_file(path, args.flows)
        size = os.path.getsize(path)
        t_import, _ = timed([args.sluice, "import", "-w", os.path.join(tmp, "out.zst"), path])
        t_filter, p = timed([args.sluice, "filter", "--no-compress", args.filter, path])
        ours = len({json.loads(line)["flow_id"] for line in p.stdout.splitlines()
                    if line.startswith(b'{"type":"envelope"')})
        t_mitm, m = timed(["mitmdump", "-n", "-r", path, args.filter], env=dict(os.environ, TERM="dumb"))
        theirs = len(re.findall(rb"<< \d{3}", m.stdout))
        if ours != theirs:
            sys.exit("the filters disagree: sluice %d flows, mitmdump %d" % (ours, theirs))
        print("%d flows, %.1f MB, filter %r selects %d" % (args.flows, size / 1e6, args.filter, ours))
        print("| step | seconds | flows/s | vs mitmdump -nr |")
        print("|---|---|---|---|")
        for name, t in (("sluice import", t_import), ("sluice filter", t_filter), ("mitmdump -nr FILE EXPR", t_mitm)):
            print("| %s | %.2f | %.0f | %.1fx |" % (name, t, args.flows / t, t_mitm / t))


if __name__ == "__main__":
    main()
