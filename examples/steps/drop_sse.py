#!/usr/bin/python3
"""A sluice step (formats/STEP.md): drops Server-Sent Events of one type (their `event:` field) and,
when given two more words, rewrites the first into the second in the data of the events it keeps.
sluice writes a changed event again as one block (`id`, `event`, `retry`, then `data` lines).

    sluice proxy --step 'python3 examples/steps/drop_sse.py heartbeat'
    sluice proxy --step 'python3 examples/steps/drop_sse.py heartbeat price PRICE'
"""
import json
import sys

drop = sys.argv[1] if len(sys.argv) > 1 else "heartbeat"
old, new = (sys.argv[2], sys.argv[3]) if len(sys.argv) > 3 else (None, None)
print(json.dumps({"type": "interest", "protocols": ["sse"]}), flush=True)  # only events
sys.stdin.readline()  # the stream's header record: no answer
for line in sys.stdin:
    unit = json.loads(line)
    m = unit.get("message", {})
    if unit["protocol"] == "sse" and m.get("event") == drop:
        print(json.dumps({"type": "verdict", "ask": unit["ask"], "outcome": "drop"}), flush=True)
        continue
    if unit["protocol"] == "sse" and old and isinstance(m.get("data"), str):
        m["data"] = m["data"].replace(old, new)
    print(json.dumps(unit), flush=True)  # the same "ask" goes back with it
