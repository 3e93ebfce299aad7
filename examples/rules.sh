#!/usr/bin/env bash
# Rules that change traffic without a program, in mitmproxy's syntax: a proxy in front of the orders API
# that adds a header to every request, rewrites a word in the responses and blocks an admin path; then
# the same rules over a recorded capture (`sluice transform`), replayed so that the service receives the
# changed requests. Runs as is from the source tree after a build (SLUICE overrides the binary).
set -euo pipefail
SLUICE=${SLUICE:-$(command -v sluice || echo build/sluice)}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
export XDG_DATA_HOME=${XDG_DATA_HOME:-$work/xdg}

/usr/bin/python3 "$here/orders-service.py" >"$work/port" &
until [[ -s $work/port ]]; do sleep 0.05; done
api="http://127.0.0.1:$(cat "$work/port")"

"$SLUICE" proxy --mode "reverse:$api@0" \
    -H '/~q/X-Env/staging' \
    -B '/~s & ~u orders/kettle/KETTLE' \
    --block-list '/~u admin/403' \
    -w "$work/live.zst" 2>"$work/proxy.err" &
proxy=$!
until grep -q 'listening on' "$work/proxy.err"; do sleep 0.05; done
via="http://$(sed -n 's/.*listening on \(127.0.0.1:[0-9]*\).*/\1/p' "$work/proxy.err")"

echo "== through the proxy"
curl -sS "$via/orders/1"; echo
curl -sS -o /dev/null -w 'GET /admin: %{http_code}\n' "$via/admin"
curl -sS "$via/orders/1" | grep -q KETTLE
kill -INT "$proxy"; wait "$proxy"
echo "== what was recorded: each change a variant named after its rules"
"$SLUICE" show --jsonl "$work/live.zst" | /usr/bin/python3 -c '
import json, sys
for line in sys.stdin:
    r = json.loads(line)
    if r["type"] == "envelope" and r.get("modified_by", "sluice") != "sluice":
        print(r["direction"], r["message"].get("path") or r["message"].get("status"), "changed by", r["modified_by"])'

echo "== the same rules over a capture, replayed"
"$SLUICE" transform -H '/~q/X-Env/staging' "$here/captures/orders.jsonl" |
    "$SLUICE" replay --target "$api" - >"$work/replayed.zst"
"$SLUICE" show --jsonl "$work/replayed.zst" | grep -c '"X-Env","staging"' | sed 's/^/requests sent with X-Env: /'
