#!/usr/bin/python3
"""Filter benchmark: `sluice filter '~d X & ~c 200'` against `zstdcat | jq -c 'select(...)'` on the same
capture, side by side in one run.

    tests/bench/filter_bench.py [--sluice build/sluice] [--flows 200000]

The capture is JSONL + zstd, as `sluice proxy` writes it: FLOWS HTTP/1.1 exchanges (a request and a
response with small JSON bodies) spread over 20 hosts and 4 status codes. Both sides compute the same
answer, the flows whose host is api3.example.com and whose response was 200: sluice passes those
flows, jq selects their response envelopes; the script checks that the flow ids agree. Best of 3 runs
each. Then sluice's peak memory on the same exchanges with each connection's `end` record, as the
proxy writes them: 10 exchanges per connection, and all in one keep-alive connection (whose flows a
filter must not remember whole until it ends). Not a test: it prints numbers for tests/bench/RESULTS.md.
"""
import argparse
import base64
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time


def make_capture(path, flows, per_conn=10, ends=False, secrets=False):
    """FLOWS exchanges, PER_CONN to a connection; with ENDS, each connection's `end` after its last; with
    SECRETS, each request carries a bearer token and each response body an e-mail address."""
    rng = random.Random(7)
    statuses = [200, 200, 200, 404, 500, 302]
    with subprocess.Popen(["zstd", "-q", "-1", "-o", path], stdin=subprocess.PIPE) as z:
        out = z.stdin
        out.write((json.dumps({"type": "header", "format": "sluice-stream", "version": 1, "producer": "bench",
                               "time": "2026-11-21T10:00:00.000000Z", "listeners": []}) + "\n").encode())
        for i in range(flows):
            host = "api%d.example.com" % rng.randrange(20)
            status = rng.choice(statuses)
            ctx = {"conn_id": "c%d" % (i // per_conn), "client": "127.0.0.1:%d" % (40000 + i % 20000),
                   "server": host + ":443", "opened": "2026-11-21T10:00:00.000000Z"}
            req_headers = [["Host", host], ["Accept", "application/json"]]
            body = {"id": i, "name": "item %d" % i, "tags": ["a", "b"]}
            if secrets:
                req_headers.append(["Authorization", "Bearer tok%032x" % rng.getrandbits(128)])
                body["owner"] = "user%d@example.com" % i
            body = json.dumps(body)
            req_raw = ("GET /items/%d HTTP/1.1\r\n%s\r\n" % (i, "".join("%s: %s\r\n" % (k, v) for k, v in req_headers))).encode()
            resp_raw = ("HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                        % (status, len(body), body)).encode()
            for seq, (direction, raw, msg) in enumerate([
                ("send", req_raw, {"kind": "request", "method": "GET", "scheme": "https", "authority": host,
                                   "path": "/items/%d" % i, "version": "HTTP/1.1",
                                   "headers": req_headers, "body": ""}),
                ("receive", resp_raw, {"kind": "response", "status": status, "reason": "X", "version": "HTTP/1.1",
                                       "headers": [["Content-Type", "application/json"],
                                                   ["Content-Length", str(len(body))]], "body": body})]):
                out.write((json.dumps({"type": "envelope", "stream_id": ctx["conn_id"], "flow_id": "f%d" % i,
                                       "seq": seq, "direction": direction, "protocol": "http",
                                       "time": "2026-11-21T10:00:01.000000Z",
                                       "raw": base64.b64encode(raw).decode(), "message": msg,
                                       "context": ctx}) + "\n").encode())
            if ends and ((i + 1) % per_conn == 0 or i + 1 == flows):
                out.write((json.dumps({"type": "end", "scope": "stream", "stream_id": ctx["conn_id"],
                                       "time": "2026-11-21T10:00:02.000000Z", "reason": "closed",
                                       "bytes_sent": 0, "bytes_received": 0}) + "\n").encode())


def best_of(n, fn):
    times, result = [], None
    for _ in range(n):
        t = time.monotonic()
        result = fn()
        times.append(time.monotonic() - t)
    return min(times), result


def peak_rss_mib(cmd):
    """Runs `cmd` (output discarded) and returns its peak resident set size in MiB, as /usr/bin/time
    reports it (a child of ours would count this script's own memory: Linux keeps the peak across
    fork and exec)."""
    p = subprocess.run(["/usr/bin/time", "-f", "%M", *cmd], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if p.returncode not in (0, 1):  # 1: nothing matched
        sys.exit("filter_bench: %s failed (exit %d): %s" % (cmd[0], p.returncode, p.stderr.decode()[-300:]))
    return int(p.stderr.decode().split()[-1]) / 1024.0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sluice", default=os.path.join(os.path.dirname(__file__), "..", "..", "build", "sluice"))
    ap.add_argument("--flows", type=int, default=200000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    for tool in ("zstd", "zstdcat", "jq", "/usr/bin/time"):
        if not shutil.which(tool):
            sys.exit("filter_bench: %s is missing (apt-get install zstd jq time)" % tool)
    work = tempfile.mkdtemp(prefix="sluice-filter-bench-")
    capture = os.path.join(work, "capture.jsonl.zst")
    make_capture(capture, args.flows)

    query = "~d ^api3\\.example\\.com$ & ~c 200"

    # Only the commands are timed; their answers are read afterwards.
    def sluice():
        return subprocess.run([args.sluice, "filter", "--no-compress", query, capture],
                              capture_output=True, check=True).stdout

    def jq():
        return subprocess.run("zstdcat %s | jq -c 'select(.type == \"envelope\" and .message.kind == \"response\" and "
                              ".message.status == 200 and (.context.server | test(\"^api3\\\\.example\\\\.com:\")))'"
                              % capture, shell=True, capture_output=True, check=True).stdout

    t_sluice, out_sluice = best_of(args.repeat, sluice)
    t_jq, out_jq = best_of(args.repeat, jq)
    # Memory, on captures that end their connections as the proxy's do.
    rss = []
    for per_conn in (10, args.flows):
        shape = os.path.join(work, "per-connection-%d.jsonl.zst" % per_conn)
        make_capture(shape, args.flows, per_conn=per_conn, ends=True)
        rss.append(peak_rss_mib([args.sluice, "filter", "--no-compress", query, shape]))
    flows_sluice = {r["flow_id"] for r in map(json.loads, out_sluice.splitlines()) if r["type"] == "envelope"}
    flows_jq = {json.loads(l)["flow_id"] for l in out_jq.splitlines()}
    size = os.path.getsize(capture) / (1 << 20)
    shutil.rmtree(work, ignore_errors=True)
    if flows_sluice != flows_jq:
        sys.exit("filter_bench: the answers differ (%d flows vs %d)" % (len(flows_sluice), len(flows_jq)))
    print("%d flows (%d envelopes, %.1f MiB JSONL+zstd), %d matching; best of %d" %
          (args.flows, 2 * args.flows, size, len(flows_sluice), args.repeat))
    print("| tool | seconds | flows/s |")
    print("|---|---|---|")
    print("| sluice filter | %.2f | %.0f |" % (t_sluice, args.flows / t_sluice))
    print("| zstdcat \\| jq -c select | %.2f | %.0f |" % (t_jq, args.flows / t_jq))
    print()
    print("sluice filter: %.1fx jq" % (t_jq / t_sluice))
    print()
    print("sluice filter peak RSS: %.1f MiB (10 exchanges per connection), %.1f MiB (all %d in one connection)"
          % (rss[0], rss[1], args.flows))


if __name__ == "__main__":
    main()
