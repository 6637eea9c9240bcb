#!/usr/bin/env bash
# Runs a make target RUNS times in a row (a test that fails once in twenty runs is a bug), one
# log per run under bin/repeat/TARGET/, and says how many passed. For the NAT suite it also
# sums up the time to first frame of every join by class (docs/performance.md).
# Usage: scripts/repeat.sh TARGET [RUNS]   (make repeat TARGET=test-nat RUNS=20)
set -uo pipefail
target=${1:?usage: scripts/repeat.sh TARGET [RUNS]}
runs=${2:-5}
dir=bin/repeat/$target
rm -rf "$dir" && mkdir -p "$dir"
pass=0
for i in $(seq 1 "$runs"); do
  start=$SECONDS
  if make "$target" >"$dir/$i.log" 2>&1; then pass=$((pass + 1)); result=passed; else result=FAILED; fi
  echo "$target run $i/$runs: $result in $((SECONDS - start)) s ($dir/$i.log)"
done
echo "$target: $pass of $runs runs passed"

# Joins of the NAT matrix: "device K viewer K turn T pair L → R PROTO first frame N ms".
joins=$(sed -nE 's/^device .* turn (\S+) +pair (\S+) +→ (\S+) +(\S+) first frame +([0-9]+) ms$/\1 \2 \3 \4 \5/p' "$dir"/*.log)
if [ -n "$joins" ]; then
  summary() { # label, then the numbers on stdin
    sort -n | awk -v label="$1" '{v[NR] = $1} END {
      if (NR == 0) exit
      p50 = v[int(NR * 0.50 + 0.999)]; p95 = v[int(NR * 0.95 + 0.999)]
      printf "%-28s joins %4d  first frame p50 %5d ms  p95 %5d ms  max %5d ms\n", label, NR, p50, p95, v[NR] }'
  }
  echo "$joins" | awk '$2 != "relay" && $3 != "relay" {print $5}' | summary "direct"
  echo "$joins" | awk '$2 != "relay" && $3 != "relay" && $4 == "udp" {print $5}' | summary "direct over UDP"
  echo "$joins" | awk '$2 != "relay" && $3 != "relay" && $4 == "tcp" {print $5}' | summary "direct over TCP"
  echo "$joins" | awk '($2 == "relay" || $3 == "relay") && $1 == "embedded" {print $5}' | summary "relayed, embedded TURN"
  echo "$joins" | awk '($2 == "relay" || $3 == "relay") && $1 != "embedded" {print $5}' | summary "relayed, coturn"
fi
[ "$pass" = "$runs" ]
