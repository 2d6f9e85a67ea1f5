#!/bin/bash
# Lazy restore from local images (no page server): full criu dump to tmpfs, then
# criu lazy-pages -D (reads pages from the image files) + criu restore --lazy-pages.
# This path never calls page_pipe_read()/tee, so it does not need fs.pipe-max-size raised.
# usage: local-lazy.sh MIB
set -u
MIB=${1:-256}; CRIU=${CRIU:-/usr/local/sbin/criu}; HERE=$(cd "$(dirname "$0")" && pwd)
OUT=$(mktemp -d /dev/shm/pcl.XXXXXX); mkdir -p "$OUT/img"
[ -x /tmp/pc-work ] || gcc -O2 -o /tmp/pc-work "$HERE/work.c" || exit 1
ms() { date +%s%3N; }
echo "pipe-max-size=$(cat /proc/sys/fs/pipe-max-size)"
unshare --pid --fork setsid sh -c "exec /tmp/pc-work $MIB $OUT/work.log" </dev/null >/dev/null 2>&1 &
UNS=$!
for i in $(seq 600); do grep -q ' 3 ok' "$OUT/work.log" 2>/dev/null && break; sleep 0.1; done
PID=$(pgrep -P $UNS)
T0=$(ms); $CRIU dump -t "$PID" -D "$OUT/img" -v4 -o dump.log; RC1=$?; T1=$(ms)
mkfifo "$OUT/lazy.ready"
$CRIU lazy-pages -D "$OUT/img" --status-fd 3 -v4 -o lazy.log 3>"$OUT/lazy.ready" & LAZY=$!
head -c1 "$OUT/lazy.ready" >/dev/null
$CRIU restore -D "$OUT/img" --lazy-pages -d --pidfile "$OUT/r.pid" -v4 -o restore.log; RC2=$?; T2=$(ms)
wait $LAZY; RC3=$?; T3=$(ms)
sleep 1.2
echo "local lazy mib=$MIB: dump rc=$RC1 $((T1-T0)) ms, restore rc=$RC2 +$((T2-T1)) ms, lazy-pages rc=$RC3 done +$((T3-T1)) ms"
grep -h "transferred pages" "$OUT/img/lazy.log"
awk '$2 ~ /^[0-9]+$/ { if (p && $1-p > g) g=$1-p; p=$1 } END { print "workload: longest tick gap", g, "ms" }' "$OUT/work.log"
echo "BAD ticks: $(grep -c BAD "$OUT/work.log")"
kill -9 "$(cat "$OUT/r.pid")" 2>/dev/null
rm -rf "$OUT"
