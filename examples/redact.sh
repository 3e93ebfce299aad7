#!/usr/bin/env bash
# Secrets kept out of captures: a proxy in front of the orders API that records with --redact while
# the API still gets the real token and card number; then a capture recorded without it, redacted
# afterwards (`sluice redact`) and exported as a HAR that is safe to attach to a bug report. Runs as is
# from the source tree after a build (SLUICE overrides the binary).
set -euo pipefail
SLUICE=${SLUICE:-$(command -v sluice || echo build/sluice)}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
export XDG_DATA_HOME=${XDG_DATA_HOME:-$work/xdg}
token=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbm4iLCJyb2xlIjoiYnV5ZXIifQ.c2lnbmF0dXJlLW9mLXRoZS10b2tlbg

/usr/bin/python3 "$here/orders-service.py" >"$work/port" &
until [[ -s $work/port ]]; do sleep 0.05; done
api="http://127.0.0.1:$(cat "$work/port")"

for redact in --redact ""; do
    "$SLUICE" proxy --mode "reverse:$api@0" $redact -w "$work/capture${redact:+-redacted}.zst" 2>"$work/proxy.err" &
    proxy=$!
    until grep -q 'listening on' "$work/proxy.err"; do sleep 0.05; done
    via="http://$(sed -n 's/.*listening on \(127.0.0.1:[0-9]*\).*/\1/p' "$work/proxy.err")"
    curl -sS "$via/orders" -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
        --data '{"item": "kettle", "net": 20, "card": "4111 1111 1111 1111", "email": "ann@example.com"}' >/dev/null
    kill -INT "$proxy"; wait "$proxy"
done

echo "== recorded with --redact: what the order request looks like"
"$SLUICE" show --jsonl "$work/capture-redacted.zst" | /usr/bin/python3 -c '
import json, sys
for line in sys.stdin:
    r = json.loads(line)
    if r["type"] == "envelope" and r["message"].get("kind") == "request" and r.get("variant", "original") == "original":
        m = r["message"]
        print("Authorization:", dict(m["headers"])["Authorization"])
        print("body:", m["body"])
        print("tagged redacted:", r["tags"]["redacted"])'

echo "== a capture recorded without it, redacted afterwards and exported as HAR"
"$SLUICE" redact "$work/capture.zst" | "$SLUICE" export --format har -w "$work/bug-report.har"
"$SLUICE" show --jsonl "$work/capture-redacted.zst" >"$work/redacted.jsonl"
if grep -q -e "$token" -e 4111 -e ann@example.com "$work/bug-report.har" "$work/redacted.jsonl"; then
    echo "a secret was left" >&2; exit 1
fi
grep -q "$token" <("$SLUICE" show --jsonl "$work/capture.zst")  # (the plain capture has it)
/usr/bin/python3 -c '
import json, sys
entries = json.load(open(sys.argv[1]))["log"]["entries"]
print("bug-report.har:", len(entries), "entry,", entries[0]["request"]["method"], entries[0]["request"]["url"],
      "- no token, card or e-mail in it")' "$work/bug-report.har"
