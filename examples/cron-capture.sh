#!/usr/bin/env bash
# What an hourly cron job runs to keep a rolling capture of a service: a recording reverse proxy piped
# into `sluice record`, which writes a directory of segments (a new one every hour, or past 256 MiB),
# syncing every second so that a crash or a `kill -9` loses at most the last second.
#
#   crontab:  0 * * * *  timeout 3590 /path/to/cron-capture.sh /var/lib/captures
#
# Here it runs for a few requests against a loopback service, then reads the directory back.
# Runs as is from the source tree after a build (SLUICE overrides the binary).
set -euo pipefail
SLUICE=${SLUICE:-$(command -v sluice || echo build/sluice)}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
captures=${1:-$work/captures}
export XDG_DATA_HOME=${XDG_DATA_HOME:-$work/xdg}  # where the proxy keeps its CA

# The service: Python's http.server on a free port.
mkdir "$work/site" && echo "status: ok" >"$work/site/health"
/usr/bin/python3 -u -c '
import functools, http.server, sys
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[1])
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
print(server.server_address[1]); server.serve_forever()
' "$work/site" >"$work/site.port" 2>/dev/null &
until [[ -s $work/site.port ]]; do sleep 0.05; done

# The job: proxy | record, segments named by the hour they start in. The pipe is a named one so that
# the proxy's own process id is known: stopping it by that id (never by a pattern of its command line)
# stops this job's proxy and no other.
: >"$work/proxy.err"
mkfifo "$work/stream"
"$SLUICE" record --rotate-every 1h --rotate-size 256MiB --name 'capture-%Y%m%d-%H' --sync interval \
  "$captures/" <"$work/stream" &
record=$!
"$SLUICE" proxy --mode "reverse:http://127.0.0.1:$(cat "$work/site.port")@0" >"$work/stream" 2>"$work/proxy.err" &
proxy=$!
until grep -q 'listening on' "$work/proxy.err"; do sleep 0.05; done
port=$(sed -n 's/.*listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$work/proxy.err")

for i in 1 2 3; do curl -sS -o /dev/null "http://127.0.0.1:$port/health?check=$i"; done

kill -INT "$proxy"  # the proxy ends; record sees the end of its input and exits
wait "$proxy" "$record"

echo "== segments"
ls "$captures"
echo "== the directory read back as one capture"
"$SLUICE" show "$captures"
