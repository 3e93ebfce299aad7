#!/usr/bin/env bash
# Put a recording reverse proxy in front of a local HTTP service, send it a few requests with curl,
# then read the capture: one line per exchange, and a request's exact bytes next to what the server got.
# Runs as is from the source tree after a build (SLUICE overrides the binary).
set -euo pipefail
SLUICE=${SLUICE:-$(command -v sluice || echo build/sluice)}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

# The service: Python's http.server on a free port, serving one file.
mkdir "$work/site" && echo "hello over HTTP/1.1" >"$work/site/hello.txt"
/usr/bin/python3 -u -c '
import functools, http.server, sys
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[1])
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
print(server.server_address[1]); server.serve_forever()
' "$work/site" >"$work/site.port" 2>/dev/null &
until [[ -s $work/site.port ]]; do sleep 0.05; done

# sluice in front of it, on a free port it reports on stderr.
: >"$work/proxy.err"
"$SLUICE" proxy --mode "reverse:http://127.0.0.1:$(cat "$work/site.port")@0" -w "$work/capture.zst" \
  2>"$work/proxy.err" &
proxy=$!
until grep -q 'listening on' "$work/proxy.err"; do sleep 0.05; done
port=$(sed -n 's/.*listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$work/proxy.err")

curl -sS "http://127.0.0.1:$port/hello.txt"
curl -sS -o /dev/null "http://127.0.0.1:$port/missing"

sleep 0.2
kill -INT "$proxy"
wait "$proxy"

echo "== one line per exchange"
"$SLUICE" show "$work/capture.zst"
echo "== the first request as the client sent it, then as the server received it (Host rewritten)"
"$SLUICE" show --jsonl "$work/capture.zst" |
  jq -s -j '[.[] | select(.type == "envelope" and .direction == "send")] | .[0:2][] | .raw | @base64d'
