#!/usr/bin/env bash
# A rule file (--rules, formats/rules.schema.json) for what the mitmproxy flags cannot say: a JSON
# member of every order posted set, a response status changed; then the file edited and read again on
# SIGHUP while the proxy runs. Runs as is from the source tree after a build (SLUICE overrides the binary).
set -euo pipefail
SLUICE=${SLUICE:-$(command -v sluice || echo build/sluice)}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
export XDG_DATA_HOME=${XDG_DATA_HOME:-$work/xdg}

/usr/bin/python3 "$here/orders-service.py" >"$work/port" &
until [[ -s $work/port ]]; do sleep 0.05; done
api="http://127.0.0.1:$(cat "$work/port")"

cat >"$work/rules.json" <<'JSON'
{"rules": [
  {"name": "cheap-kettles", "filter": "~m POST & ~u /orders", "direction": "request",
   "actions": [{"action": "json_set", "path": "/net", "value": 1}]},
  {"name": "accepted", "filter": "~m POST", "direction": "response",
   "actions": [{"action": "set_status", "status": 202}]}
]}
JSON
"$SLUICE" proxy --mode "reverse:$api@0" --rules "$work/rules.json" -w "$work/live.zst" 2>"$work/proxy.err" &
proxy=$!
until grep -q 'listening on' "$work/proxy.err"; do sleep 0.05; done
via="http://$(sed -n 's/.*listening on \(127.0.0.1:[0-9]*\).*/\1/p' "$work/proxy.err")"

order() { curl -sS -w ' (%{http_code})\n' "$via/orders" -H 'Content-Type: application/json' --data '{"item": "kettle", "net": 20}'; }
echo "== with the rules"
order
echo "== the file edited, then SIGHUP"
sed -i 's/"value": 1}/"value": 2}/' "$work/rules.json"
kill -HUP "$proxy"
until grep -q 'rules: reloaded' "$work/proxy.err"; do sleep 0.05; done
grep 'rules: reloaded' "$work/proxy.err" | sed "s|$work/||"
order
kill -INT "$proxy"; wait "$proxy"
