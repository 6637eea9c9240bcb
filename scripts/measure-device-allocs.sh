#!/usr/bin/env bash
# What the device allocates and how many goroutines it runs per viewer (docs/performance.md,
# "The viewer's RTCP taken where Pion delivers it"): a device with its profiler on (busy test
# pattern, 720p30, 1 Mbit/s, video only) and VIEWERS `bench viewers` on loopback; it prints the
# goroutine count idle and once they all watch, and the bytes allocated over 10 s of
# watching (the Go runtime's TotalAlloc from /debug/pprof/allocs). Run after `make build`;
# BIN=… measures another build (e.g. an older commit's bin/p2pcast) for an A/B.
#   scripts/measure-device-allocs.sh [VIEWERS] [RUNS]
set -euo pipefail
viewers=${1:-50}
runs=${2:-2}
bin=${BIN:-$(cd "$(dirname "$0")/.." && pwd)/bin/p2pcast}
http=127.0.0.1:18081
pprof=127.0.0.1:16061
goroutines() { curl -fsS "http://$pprof/debug/pprof/goroutine?debug=1" | awk 'NR == 1 {print $NF}'; }
allocated() { curl -fsS "http://$pprof/debug/pprof/allocs?debug=1" | awk '/^# TotalAlloc/ {print $4}'; }
one() {
  local dir dev bench g0 g1 a1 a2
  dir=$(mktemp -d)
  "$bin" device --http $http --ice-udp-port 41001 --pattern busy --bitrate 1M --pprof $pprof \
    --data "$dir/data" --max-viewers $((viewers * 2)) --max-per-source "$viewers" >"$dir/device.log" 2>&1 &
  dev=$!
  trap 'kill $dev 2>/dev/null || true' EXIT
  for _ in $(seq 50); do curl -fsS -o /dev/null "http://$http/" 2>/dev/null && break; sleep 0.1; done
  kill -0 "$dev" || { cat "$dir/device.log"; exit 1; } # not another device on the port
  g0=$(goroutines)
  "$bin" bench viewers --url "http://$http/whep" --viewers "$viewers" --join-interval 20ms --duration 25s >"$dir/bench.log" 2>&1 &
  bench=$!
  sleep 12 # the joins (viewers × 20 ms) and a settle: the bench reports nothing to wait on meanwhile
  g1=$(goroutines)
  a1=$(allocated)
  sleep 10
  a2=$(allocated)
  wait "$bench" || true
  kill "$dev" 2>/dev/null || true
  wait "$dev" 2>/dev/null || true
  trap - EXIT
  rm -rf "$dir"
  printf 'goroutines idle %s, with %s viewers %s; allocated %.2f MB/s\n' "$g0" "$viewers" "$g1" "$(echo "($a2-$a1)/10/1000000" | bc -l)"
}
for _ in $(seq "$runs"); do one; done
