#!/usr/bin/env bash
# What a CI job runs: start the service under test, replay a committed capture against it with
# --check --junit, and fail the job on a mismatch. The capture (examples/captures/orders.jsonl) was
# recorded once through `sluice proxy --mode reverse:...` in front of a good build; it is plain JSONL
# (--no-compress), so a review sees what it holds. The job runs twice here: on a good build it passes,
# and on a build with a regression it fails with a readable report and a JUnit file a CI system
# displays. Runs as is from the source tree after a build (SLUICE overrides the binary).
set -euo pipefail
SLUICE=${SLUICE:-$(command -v sluice || echo build/sluice)}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

ci_job() {  # $1: where the JUnit report goes; the build under test comes from the environment
    /usr/bin/python3 "$here/orders-service.py" >"$work/port" &
    local service=$!
    until [[ -s $work/port ]]; do sleep 0.05; done
    local status=0
    "$SLUICE" replay --target "http://127.0.0.1:$(cat "$work/port")" --check --junit "$1" \
        "$here/captures/orders.jsonl" >"$work/replayed.zst" || status=$?
    kill "$service"; wait "$service" 2>/dev/null || true; : >"$work/port"
    return "$status"
}

echo "== good build"
ci_job "$work/good.xml"
grep -o '<testsuite [^>]*>' "$work/good.xml"

echo "== build with a regression"
if REGRESSION=1 ci_job "$work/bad.xml"; then
    echo "the regression went unnoticed" >&2
    exit 1
fi
grep -o '<testsuite [^>]*>' "$work/bad.xml"
grep -o '<failure [^>]*>' "$work/bad.xml"
