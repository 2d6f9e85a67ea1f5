#!/bin/bash
# Remote lazy restore from images: full criu dump to IMG, then on the "source"
# criu page-server --lazy-pages -D IMG serves the pages to the target's lazy-pages daemon.
# Same page_pipe_read() path as dump --lazy-pages, so it needs the same fs.pipe-max-size.
# usage: [PIPE_MAX=4194304] ps-lazy.sh MIB [PORT]
set -u
MIB=${1:-64}; PORT=${2:-27200}; CRIU=${CRIU:-/usr/local/sbin/criu}; HERE=$(cd "$(dirname "$0")" && pwd)
OUT=$(mktemp -d /dev/shm/pcp.XXXXXX); mkdir -p "$OUT/img"
[ -x /tmp/pc-work ] || gcc -O2 -o /tmp/pc-work "$HERE/work.c" || exit 1
OLD=$(cat /proc/sys/fs/pipe-max-size); [ -n "${PIPE_MAX:-}" ] && echo "$PIPE_MAX" > /proc/sys/fs/pipe-max-size
trap 'echo $OLD > /proc/sys/fs/pipe-max-size' EXIT
echo "pipe-max-size=$(cat /proc/sys/fs/pipe-max-size)"
unshare --pid --fork setsid sh -c "exec /tmp/pc-work $MIB $OUT/work.log" </dev/null >/dev/null 2>&1 &
UNS=$!
for i in $(seq 600); do grep -q ' 3 ok' "$OUT/work.log" 2>/dev/null && break; sleep 0.1; done
PID=$(pgrep -P $UNS)
$CRIU dump -t "$PID" -D "$OUT/img" -v4 -o dump.log || { echo "dump failed"; exit 1; }
mkfifo "$OUT/ps.ready" "$OUT/lazy.ready"
$CRIU page-server --lazy-pages -D "$OUT/img" --address 127.0.0.1 --port "$PORT" --status-fd 3 -v4 -o ps.log 3>"$OUT/ps.ready" & PS=$!
head -c1 "$OUT/ps.ready" >/dev/null
$CRIU lazy-pages --page-server --address 127.0.0.1 --port "$PORT" -D "$OUT/img" --status-fd 3 -v4 -o lazy.log 3>"$OUT/lazy.ready" & LAZY=$!
head -c1 "$OUT/lazy.ready" >/dev/null
$CRIU restore -D "$OUT/img" --lazy-pages -d --pidfile "$OUT/r.pid" -v4 -o restore.log; RC=$?
timeout 30 tail -s 0.01 --pid=$LAZY -f /dev/null; kill -9 $LAZY 2>/dev/null; wait $LAZY; RCL=$?
timeout 10 tail -s 0.01 --pid=$PS -f /dev/null; kill -9 $PS 2>/dev/null; wait $PS; RCP=$?
sleep 1.2
echo "rc: restore=$RC lazy-pages=$RCL page-server=$RCP; BAD ticks: $(grep -c BAD "$OUT/work.log")"
grep -hE "Error|tee pipe|transferred" "$OUT/img/ps.log" "$OUT/img/lazy.log" | grep -v RLIMIT | head -5
R=$(cat "$OUT/r.pid" 2>/dev/null); [ -n "$R" ] && kill -9 "$R" 2>/dev/null
rm -rf "$OUT"
