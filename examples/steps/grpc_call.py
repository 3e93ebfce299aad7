#!/usr/bin/python3
"""A sluice step (formats/STEP.md) for gRPC and gRPC-Web calls: adds the metadata `x-sluice-step: seen` to every
call, answers one method itself (the first argument) with one message and status OK, and rewrites a
word (the second argument into the third) in the messages of the other calls, both ways. A message
comes as its bytes (text when they are UTF-8, else {"base64": ...}); sluice frames a changed one again.

    sluice proxy --step 'python3 examples/steps/grpc_call.py /pkg.Service/Method hello howdy'
"""
import json
import sys

answered = sys.argv[1] if len(sys.argv) > 1 else "/pkg.Service/Method"
old, new = (sys.argv[2], sys.argv[3]) if len(sys.argv) > 3 else ("hello", "howdy")
print(json.dumps({"type": "interest", "protocols": ["grpc", "grpc-web"]}), flush=True)  # only gRPC units
sys.stdin.readline()  # the stream's header record: no answer
for line in sys.stdin:
    unit = json.loads(line)
    m = unit.get("message", {})
    if m.get("kind") == "start":
        if "/%s/%s" % (m["service"], m["method"]) == answered:
            reply = {"grpc_status": 0, "messages": ["answered by the step"], "metadata": [["x-answered-by", "step"]]}
            print(json.dumps({"type": "verdict", "ask": unit["ask"], "outcome": "respond", "reply": reply}), flush=True)
            continue
        m["metadata"].append(["x-sluice-step", "seen"])
    elif m.get("kind") == "data" and isinstance(m.get("payload"), str):
        m["payload"] = m["payload"].replace(old, new)
    print(json.dumps(unit), flush=True)  # the same "ask" goes back with it
