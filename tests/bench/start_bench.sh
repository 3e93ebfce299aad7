#!/usr/bin/env bash
# The README's start command on a fresh clone: how long until the build shows progress and until a
# recording proxy listens, against the full build (`scripts/build`: every test, fuzz and bench target)
# of another fresh clone. Run by hand on an idle machine (each clone builds from nothing: minutes).
#
#   tests/bench/start_bench.sh [REPO]        (default: this tree's repository, its HEAD)
set -euo pipefail
repo=$(cd "${1:-$(dirname "$0")/../..}" && pwd)
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
git clone -q "$repo" "$work/start"
git clone -q "$repo" "$work/full"

# scripts/start, stdout a file (so -w is needed to record; a terminal would record by default too).
t0=$(date +%s.%N)
"$work/start/scripts/start" --mode regular@0 -w "$work/cap.zst" >/dev/null 2>"$work/start.err" &
start=$!
first_progress="" listening=""
while kill -0 "$start" 2>/dev/null; do
  now=$(date +%s.%N)
  [[ -z $first_progress ]] && grep -q '^\[[0-9]*/[0-9]*\]' "$work/start.err" && first_progress=$now
  if grep -q 'recording to' "$work/start.err"; then listening=$now; break; fi
  sleep 0.2
done
kill -INT "$start" 2>/dev/null || true
wait "$start" || true
[[ -n $listening ]] || { cat "$work/start.err" >&2; echo "start_bench: the proxy did not start" >&2; exit 1; }

t1=$(date +%s.%N)
"$work/full/scripts/build" build >/dev/null
t2=$(date +%s.%N)

awk -v p="$first_progress" -v l="$listening" -v t0="$t0" -v t1="$t1" -v t2="$t2" 'BEGIN {
  printf "scripts/start: first build progress after %.1f s, recording proxy after %.1f s\n", p - t0, l - t0
  printf "scripts/build (everything): %.1f s\n", t2 - t1
  printf "start / full build: %.2f\n", (l - t0) / (t2 - t1)
}'
