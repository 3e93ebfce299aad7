#!/usr/bin/python3
"""A sluice step (formats/STEP.md): replaces bytes in a raw TCP stream, both ways, and passes
everything else on unchanged. A raw unit is a chunk as it arrived: a pattern cut in two by the network
is not found (a protocol with messages has its own units).

    sluice proxy --mode tcp:db.internal:5432@15432 --step 'python3 examples/steps/replace_bytes.py prod_db test_db'
"""
import base64
import json
import sys

old, new = (sys.argv[1].encode(), sys.argv[2].encode()) if len(sys.argv) > 2 else (b"ping", b"PONG")
print(json.dumps({"type": "interest", "protocols": ["raw"]}), flush=True)  # only raw chunks
sys.stdin.readline()  # the stream's header record: no answer
for line in sys.stdin:
    unit = json.loads(line)
    if unit["protocol"] == "raw":  # units sent before the interest was read may be of any protocol
        unit["raw"] = base64.b64encode(base64.b64decode(unit["raw"]).replace(old, new)).decode()
    print(json.dumps(unit), flush=True)  # the same "ask" goes back with it
