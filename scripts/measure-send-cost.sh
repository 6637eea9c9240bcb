#!/bin/bash
# What the shared socket's send system call costs per packet, with and without loopback's
# delivery into receiving sockets (root: a private network namespace with a TUN interface).
#
# On loopback the kernel delivers each packet into its receiver's socket inside the sender's
# sendmmsg, so `bench viewers` charges the device for its viewers' receive work; a TUN
# interface nobody has opened takes each packet as a NIC driver would and drops it, leaving the sender's
# own part (docs/performance.md, "300 viewers on loopback"). Runs udpbatch's BenchmarkSend
# (30 destinations × 40 packets of 1200 bytes per batch: one sendto each, raw; sendmmsg with
# GSO runs of 40, viewer-major; and with no runs, interleaved) both ways, COUNT times each
# (default 5), on the CPU given by CPU (default 0), and prints the sender's CPU ns per packet.
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=${COUNT:-5}
CPU=${CPU:-0}
go test -c -o /tmp/udpbatch.test ./internal/udpbatch
trap 'rm -f /tmp/udpbatch.test' EXIT
unshare -n -- sh -c "
  ip link set lo up
  ip tuntap add dev sink0 mode tun && ip addr add 198.51.100.1/24 dev sink0 && ip link set sink0 up
  for where in loopback tun; do
    if [ \$where = tun ]; then export P2PCAST_BENCH_SINK=198.51.100.2; fi
    echo \"== \$where\"
    taskset -c $CPU /tmp/udpbatch.test -test.run '^\$' -test.bench 'BenchmarkSend/(viewer-major|interleaved)/(raw|gso)\$' \
      -test.count $COUNT -test.benchtime 2000x | grep -E '^Benchmark' |
      sed -E 's/^BenchmarkSend\/([a-z-]+\/[a-z]+)-?[0-9]*.* ([0-9.]+) cpu-ns\/packet.*/\1 \2/'
  done
"
