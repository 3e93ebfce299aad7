#!/usr/bin/env bash
# Record a TCP conversation through `sluice proxy`, then look at it three ways.
# Runs as is from the source tree after a build (SLUICE overrides the binary).
set -euo pipefail
SLUICE=${SLUICE:-$(command -v sluice || echo build/sluice)}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

# A loopback echo server on a free port (it prints the port).
/usr/bin/python3 -u -c '
import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(); print(s.getsockname()[1])
c, _ = s.accept()
while (d := c.recv(65536)):
    c.sendall(d)
' >"$work/echo.port" &
until [[ -s $work/echo.port ]]; do sleep 0.05; done

# The proxy on a free port; it reports the address it bound on stderr.
: >"$work/proxy.err"
"$SLUICE" proxy --mode "tcp:127.0.0.1:$(cat "$work/echo.port")@0" -w "$work/capture.zst" 2>"$work/proxy.err" &
proxy=$!
until grep -q 'listening on' "$work/proxy.err"; do sleep 0.05; done
port=$(sed -n 's/.*listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$work/proxy.err")

# A client: send two lines, read the echo, close.
/usr/bin/python3 -c '
import socket, sys
c = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
for line in (b"hello\n", b"world\n"):
    c.sendall(line); assert c.recv(100) == line
c.close()
' "$port"

sleep 0.2
kill -INT "$proxy"
wait "$proxy"

echo "== one line per flow"
"$SLUICE" show "$work/capture.zst"
echo "== what the client sent, from the raw bytes"
"$SLUICE" show --jsonl "$work/capture.zst" |
  jq -j 'select(.type == "envelope" and .direction == "send") | .raw | @base64d'
echo "== the same capture in the binary encoding"
"$SLUICE" show --format cbor -w "$work/capture.cbor.zst" "$work/capture.zst"
"$SLUICE" show "$work/capture.cbor.zst"
