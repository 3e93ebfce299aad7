#!/usr/bin/python3
"""Redaction benchmark (issue 23): `sluice redact` over a large capture, and beside it, in the same
run, the same capture passed through unchanged (`sluice redact --policy` with an empty policy file: the
reading, decoding, encoding and writing alone), so the cost of looking for secrets shows as a ratio.

    tests/bench/redact_bench.py [--sluice build/sluice] [--flows 200000]

The capture is filter_bench's generator with a secret in every message (a bearer token in each
request's Authorization header, an e-mail address in each response body): the script checks that
every one of the 2 x FLOWS messages is tagged redacted and that no token is left. Prints flows/s, best
of 3. Not a test: it prints numbers for tests/bench/RESULTS.md.
"""
import argparse
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from filter_bench import best_of, make_capture  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sluice", default=os.path.join(os.path.dirname(__file__), "..", "..", "build", "sluice"))
    ap.add_argument("--flows", type=int, default=200000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="redact_bench.")
    capture, out = os.path.join(work, "capture.zst"), os.path.join(work, "out.zst")
    make_capture(capture, args.flows, secrets=True)
    empty = os.path.join(work, "none.json")
    with open(empty, "w") as f:
        f.write('{"kinds": []}')

    def redact(policy):
        return lambda: subprocess.run([args.sluice, "redact", "-p", policy, capture, "-w", out], check=True)
    passed, _ = best_of(args.repeat, redact(empty))
    seconds, _ = best_of(args.repeat, redact("default"))
    shown = subprocess.run([args.sluice, "show", "--jsonl", out], capture_output=True, check=True).stdout
    tagged = shown.count(b'"redacted":')
    if tagged != 2 * args.flows or b"Bearer tok" in shown.replace(b"Bearer tok*", b"") or b"@example.com" in shown:
        sys.exit("redact_bench: %d of %d messages redacted, or a secret left" % (tagged, 2 * args.flows))
    print("sluice redact, %d flows (a secret in every message, all %d redacted): %.2f s, %.0f flows/s"
          % (args.flows, tagged, seconds, args.flows / seconds))
    print("the same capture passed through unchanged (empty policy): %.2f s, %.0f flows/s; redact / that: %.2f"
          % (passed, args.flows / passed, passed / seconds))


if __name__ == "__main__":
    main()
