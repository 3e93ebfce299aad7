#!/usr/bin/env bash
# A client's tests with no network: the orders API they talk to is answered by `sluice proxy
# --serve-from` from the capture committed beside them (examples/captures/orders.jsonl, recorded once
# through a reverse proxy in front of the real API). Nothing listens where the API was; every answer
# comes from the recording, and a request that was never recorded gets a 502 naming it instead of
# hanging. Runs as is from the source tree after a build (SLUICE overrides the binary).
set -euo pipefail
SLUICE=${SLUICE:-$(command -v sluice || echo build/sluice)}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
export XDG_DATA_HOME=${XDG_DATA_HOME:-$work/xdg}

# The stand-in API: match on method, path, query and body (not on the host and port it was recorded
# at), so it can listen anywhere.
"$SLUICE" proxy --mode "reverse:http://orders.invalid@0" --serve-from "$here/captures/orders.jsonl" \
    --match method,path,query,body -w "$work/offline.zst" 2>"$work/proxy.err" &
proxy=$!
until grep -q 'listening on' "$work/proxy.err"; do sleep 0.05; done
grep 'serving' "$work/proxy.err"
export ORDERS_API="http://$(sed -n 's/.*listening on \(127.0.0.1:[0-9]*\).*/\1/p' "$work/proxy.err")"

# The client's test suite, as its CI would run it.
/usr/bin/python3 - <<'PY'
import json, os, unittest, urllib.error, urllib.request

API = os.environ["ORDERS_API"]

def call(path, body=None):
    req = urllib.request.Request(API + path, data=body and json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"} if body else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        text = e.read().decode()
        return e.code, json.loads(text) if e.headers.get("Content-Type") == "application/json" else text

class OrdersClient(unittest.TestCase):
    def test_order_total_includes_tax(self):
        self.assertEqual(call("/orders/1"), (200, {"id": 1, "item": "kettle", "net": 40.0, "total": 48.0}))

    def test_unknown_order(self):
        self.assertEqual(call("/orders/9"), (404, {"error": "no such order"}))

    def test_create_order(self):
        status, doc = call("/orders", {"item": "cups", "net": 10})
        self.assertEqual((status, doc["total"]), (201, 12.0))

    def test_what_was_never_recorded_is_named(self):
        status, text = call("/orders/3")
        self.assertEqual(status, 502)
        self.assertIn("no recorded response matches GET", text)

unittest.main(argv=["orders-client"], verbosity=2)
PY

kill -INT "$proxy" && wait "$proxy"
echo "== what the tests got"
"$SLUICE" show "$work/offline.zst"
