#!/usr/bin/env bash
# What recording costs the device's memory (docs/performance.md "Recording"): the device
# (busy test pattern, 720p30, 2 Mbit/s, test tone) with one `p2pcast view`, its RSS after 25 s,
# without and with --record-dir, alternated RUNS times. GOGC and GOMEMLIMIT pass through:
# GOGC=25 GOMEMLIMIT=40MiB is what the device build sets itself. Run after `make build`.
#   scripts/measure-record-memory.sh [RUNS]
set -euo pipefail
runs=${1:-2}
bin=$(cd "$(dirname "$0")/.." && pwd)/bin
port=18090
one() {
  local dir dev view rss
  dir=$(mktemp -d)
  local args=(device --http 127.0.0.1:$port --pattern busy --bitrate 2M --audio-in testtone --data "$dir/data")
  [ "$1" = with ] && args+=(--record-dir "$dir/rec" --record-segment 10s)
  "$bin/p2pcast" "${args[@]}" >"$dir/device.log" 2>&1 &
  dev=$!
  sleep 2 # the device starting: nothing to wait on from here
  "$bin/p2pcast" view --duration 27s "http://127.0.0.1:$port/" >/dev/null 2>&1 &
  view=$!
  sleep 25
  rss=$(awk '/VmRSS/ {print $2}' "/proc/$dev/status")
  kill "$view" "$dev" 2>/dev/null || true
  wait "$view" "$dev" 2>/dev/null || true
  rm -rf "$dir"
  printf '%-8s %6.1f MiB\n' "$1" "$(echo "$rss/1024" | bc -l)"
}
for _ in $(seq "$runs"); do
  one without
  one with
done
