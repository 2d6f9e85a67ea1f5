#!/bin/bash
# Shows that any TCP client that connects to the dump's lazy page server and closes cleanly makes
# criu dump report "Lazy pages transfer finished successfully" and KILL the source, although no
# page was ever sent (page-xfer.c: recv()==0 ends the session with ret=0 in lazy mode).
# With EXTRA_DUMP=--leave-stopped the source is only stopped and is resumed here with SIGCONT.
# usage: stray-connect.sh [PORT]
set -u
PORT=${1:-27150}; CRIU=${CRIU:-/usr/local/sbin/criu}; HERE=$(cd "$(dirname "$0")" && pwd)
OUT=$(mktemp -d /dev/shm/pcs.XXXXXX); mkdir -p "$OUT/img"
[ -x /tmp/pc-work ] || gcc -O2 -o /tmp/pc-work "$HERE/work.c" || exit 1
unshare --pid --fork setsid sh -c "exec /tmp/pc-work 64 $OUT/work.log" </dev/null >/dev/null 2>&1 &
UNS=$!
for i in $(seq 600); do grep -q ' 3 ok' "$OUT/work.log" 2>/dev/null && break; sleep 0.1; done
PID=$(pgrep -P $UNS)
mkfifo "$OUT/dump.ready"
$CRIU dump -t "$PID" -D "$OUT/img" --lazy-pages --address 127.0.0.1 --port "$PORT" --status-fd 3 ${EXTRA_DUMP:-} -v4 -o dump.log 3>"$OUT/dump.ready" &
DUMP=$!
head -c1 "$OUT/dump.ready" >/dev/null
exec 5<>/dev/tcp/127.0.0.1/$PORT; exec 5>&-     # connect, send nothing, close
wait $DUMP; echo "criu dump rc=$?"
grep -hE "Accepted connection|Session over|transfer finished|transfer FAILED|Dumping finished|Dumping FAILED" "$OUT/img/dump.log" | sed 's/^/  dump.log: /'
sleep 0.3
if [ -e /proc/$PID ]; then
	echo "source $PID state $(awk '{print $3}' /proc/$PID/stat) (T = stopped, kept by --leave-stopped): SIGCONT"
	n0=$(wc -l < "$OUT/work.log"); kill -CONT $PID; sleep 2.2
	echo "source after SIGCONT: $(tail -n +$((n0+1)) "$OUT/work.log" | wc -l) new ticks, BAD: $(grep -c BAD "$OUT/work.log"), sweeps: $(tail -n +$((n0+1)) "$OUT/work.log" | grep -c sweep)"
	kill -9 $PID
else echo "source $PID: gone (killed by criu)"; fi
rm -rf "$OUT"
