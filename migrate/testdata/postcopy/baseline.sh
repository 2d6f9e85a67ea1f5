#!/bin/bash
# Baseline for post-copy figures: stop-and-copy (criu dump to tmpfs, criu restore) of the same
# workload, measured the same way as run.sh (longest tick gap = downtime seen by the workload).
# usage: baseline.sh MIB
set -u
MIB=${1:-256}; CRIU=${CRIU:-/usr/local/sbin/criu}; HERE=$(cd "$(dirname "$0")" && pwd)
OUT=$(mktemp -d /dev/shm/pcb.XXXXXX); mkdir -p "$OUT/img"
[ -x /tmp/pc-work ] || gcc -O2 -o /tmp/pc-work "$HERE/work.c" || exit 1
ms() { date +%s%3N; }
unshare --pid --fork setsid sh -c "exec /tmp/pc-work $MIB $OUT/work.log" </dev/null >/dev/null 2>&1 &
UNS=$!
for i in $(seq 600); do grep -q ' 3 ok' "$OUT/work.log" 2>/dev/null && break; sleep 0.1; done
PID=$(pgrep -P $UNS)
T0=$(ms); $CRIU dump -t "$PID" -D "$OUT/img" -v4 -o dump.log; RC1=$?; T1=$(ms)
$CRIU restore -D "$OUT/img" -d --pidfile "$OUT/r.pid" -v4 -o restore.log; RC2=$?; T2=$(ms)
sleep 1.2
echo "baseline mib=$MIB: dump rc=$RC1 $((T1-T0)) ms, restore rc=$RC2 $((T2-T1)) ms"
awk '$2 ~ /^[0-9]+$/ { if (p && $1-p > g) g=$1-p; p=$1 } END { print "workload: longest tick gap", g, "ms" }' "$OUT/work.log"
echo "BAD ticks: $(grep -c BAD "$OUT/work.log")"
kill -9 "$(cat "$OUT/r.pid")" 2>/dev/null
rm -rf "$OUT"
