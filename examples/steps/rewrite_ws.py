#!/usr/bin/python3
"""A sluice step (formats/STEP.md): rewrites a word in WebSocket text messages, both ways (from the
client and from the server), and passes everything else on unchanged. sluice makes the frame again
from the changed message: masked from a client, compressed when the original was.

    sluice proxy --step 'python3 examples/steps/rewrite_ws.py hello howdy'
"""
import json
import sys

old, new = (sys.argv[1], sys.argv[2]) if len(sys.argv) > 2 else ("hello", "howdy")
print(json.dumps({"type": "interest", "protocols": ["ws"]}), flush=True)  # only WebSocket messages
sys.stdin.readline()  # the stream's header record: no answer
for line in sys.stdin:
    unit = json.loads(line)
    m = unit.get("message", {})
    # A text message (binary comes as {"base64": ...}). Units sent before the interest was read may be
    # of any protocol: they go back unchanged.
    if unit["protocol"] == "ws" and m.get("opcode") == 1 and isinstance(m.get("payload"), str):
        m["payload"] = m["payload"].replace(old, new)
    print(json.dumps(unit), flush=True)  # the same "ask" goes back with it
