#!/usr/bin/python3
"""A sluice step (formats/STEP.md): adds `X-Sluice-Step: seen` to every HTTP request for one host
(the first argument; every host without one), and passes everything else on unchanged.

    sluice proxy --step 'python3 examples/steps/add_header.py api.example.com'
    sluice step 'python3 examples/steps/add_header.py api.example.com' capture.zst
"""
import json
import sys

host = sys.argv[1] if len(sys.argv) > 1 else None
sys.stdin.readline()  # the stream's header record: no answer
for line in sys.stdin:
    unit = json.loads(line)
    m = unit.get("message", {})
    if unit["protocol"] == "http" and m.get("kind") == "request" and host in (None, m.get("authority")):
        m["headers"].append(["X-Sluice-Step", "seen"])
    print(json.dumps(unit), flush=True)  # the same "ask" goes back with it
