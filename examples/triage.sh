#!/usr/bin/env bash
# Morning triage: take yesterday's capture, keep the exchanges that got a server error (5xx), and hand
# them over as a HAR file (for a browser's network panel or a bug report) and as curl commands that
# replay them. Here "yesterday's capture" is made first, from a loopback service that fails now and
# then. Runs as is from the source tree after a build (SLUICE overrides the binary).
set -euo pipefail
SLUICE=${SLUICE:-$(command -v sluice || echo build/sluice)}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
export XDG_DATA_HOME=${XDG_DATA_HOME:-$work/xdg}  # where the proxy keeps its CA

# A service whose /orders/N fails for odd N.
/usr/bin/python3 -u -c '
import http.server
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        n = int(self.path.rsplit("/", 1)[1])
        status, body = (503, b"{\"error\": \"database unavailable\"}") if n % 2 else (200, b"{\"order\": %d}" % n)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
print(server.server_address[1]); server.serve_forever()
' >"$work/api.port" &
until [[ -s $work/api.port ]]; do sleep 0.05; done

# Yesterday: a recording reverse proxy in front of it, and some traffic.
: >"$work/proxy.err"
"$SLUICE" proxy --mode "reverse:http://127.0.0.1:$(cat "$work/api.port")@0" -w "$work/yesterday.zst" 2>"$work/proxy.err" &
proxy=$!
until grep -q 'listening on' "$work/proxy.err"; do sleep 0.05; done
port=$(sed -n 's/.*listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$work/proxy.err")
for n in 1 2 3 4 5 6; do curl -s -o /dev/null "http://127.0.0.1:$port/orders/$n"; done
sleep 0.2
kill -INT "$proxy" && wait "$proxy"

# Today: the triage.
"$SLUICE" filter '~c 500 | ~c 502 | ~c 503 | ~c 504' "$work/yesterday.zst" >"$work/errors.zst"
echo "== server errors"
"$SLUICE" show "$work/errors.zst"
"$SLUICE" export --format har -w "$work/errors.har" "$work/errors.zst"
echo "== HAR entries"
jq -r '.log.entries[] | "\(.response.status) \(.request.url) \(.response.content.text)"' "$work/errors.har"
echo "== to replay them"
"$SLUICE" export --format curl "$work/errors.zst" | grep -v '^#'
