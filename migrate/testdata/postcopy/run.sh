#!/bin/bash
# Post-copy (lazy pages) trial on one machine, loopback only.
# usage: run.sh MIB [PORT] [OUTDIR]
#   PIPE_MAX=<bytes>   set fs.pipe-max-size for the run (old value restored on exit);
#                      4194304 makes lazy pages work without CAP_SYS_RESOURCE (see POSTCOPY.md)
#   WORK=<cmd>         workload (default /tmp/pc-work from work.c; or "/usr/bin/python3 DIR/work.py",
#                      or /tmp/pc-gowork built from gowork/)
#   EXTRA_DUMP=...     extra criu dump options (e.g. --leave-stopped)
#   SRC_FREEZER=1      put the source in freezer cgroup v1 pc-src-PORT, freeze it before the dump and
#                      pass --freeze-cgroup: when CRIU itself reports the failure it re-freezes the
#                      cgroup instead of letting the source run (it does not help if criu dump dies)
#   ABORT=1            after the transfer ended, run the abort protocol of POSTCOPY.md: SIGKILL the
#                      restored copy and wait until it is gone, then thaw / SIGCONT the source and
#                      check that it runs on with intact memory
#   FAULT=kill-lazy|kill-dump|kill-restored|cut-tcp  FAULT_MS=<ms after restore -d returned>  inject a failure
#                      into the background page transfer
# Source: criu dump --lazy-pages --address 127.0.0.1 --port PORT (the dump becomes the page server)
# Target: criu lazy-pages --page-server --address 127.0.0.1 --port PORT, then criu restore --lazy-pages -d
# The workload runs as init of its own PID namespace, logs a tick every 10 ms and verifies its
# memory pattern (BAD = a page came back wrong, e.g. zero-filled); every 100th tick sweeps all memory.
set -u
MIB=${1:-256}; PORT=${2:-27123}
CRIU=${CRIU:-/usr/local/sbin/criu}
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${3:-$(mktemp -d /dev/shm/pc.XXXXXX)}; mkdir -p "$OUT/img"
WORK=${WORK:-/tmp/pc-work}
[ -x /tmp/pc-work ] || gcc -O2 -o /tmp/pc-work "$HERE/work.c" || exit 1
ms() { date +%s%3N; }
OLD_PIPE_MAX=$(cat /proc/sys/fs/pipe-max-size)
[ -n "${PIPE_MAX:-}" ] && echo "$PIPE_MAX" > /proc/sys/fs/pipe-max-size
PIDS=()
cleanup() {
	echo "$OLD_PIPE_MAX" > /proc/sys/fs/pipe-max-size
	[ "${FAULT:-}" = cut-tcp ] && iptables -D INPUT -i lo -p tcp --sport "$PORT" -j REJECT --reject-with tcp-reset 2>/dev/null
	for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
	if [ -n "${FZ:-}" ] && [ -d "$FZ" ]; then echo THAWED > $FZ/freezer.state; sleep 0.2; rmdir $FZ; fi
}
trap cleanup EXIT
echo "pipe-max-size=$(cat /proc/sys/fs/pipe-max-size) mib=$MIB work=$WORK fault=${FAULT:-none} out=$OUT"

unshare --pid --fork setsid sh -c "exec $WORK $MIB $OUT/work.log" </dev/null >/dev/null 2>&1 &
UNS=$!
for i in $(seq 600); do grep -q ' 3 ok' "$OUT/work.log" 2>/dev/null && break; sleep 0.1; done
PID=$(pgrep -P $UNS); PIDS+=("$PID")
echo "workload (host pid) $PID"
FREEZE_OPT=""; RESTORE_OPT=""
if [ -n "${SRC_FREEZER:-}" ]; then
	FZ=/sys/fs/cgroup/freezer/pc-src-$PORT; mkdir -p $FZ; echo "$PID" > $FZ/tasks
	echo FROZEN > $FZ/freezer.state
	FREEZE_OPT="--freeze-cgroup $FZ"; RESTORE_OPT="--manage-cgroups=ignore"
fi
mkfifo "$OUT/dump.ready" "$OUT/lazy.ready"

T_DUMP=$(ms)
$CRIU dump -t "$PID" -D "$OUT/img" --lazy-pages --address 127.0.0.1 --port "$PORT" \
	--status-fd 3 $FREEZE_OPT ${EXTRA_DUMP:-} -v4 -o dump.log 3>"$OUT/dump.ready" &
DUMP=$!
# '\0' on the status fd: images written, the dump's page server listens; EOF: the dump failed
if [ "$(timeout 60 head -c1 "$OUT/dump.ready" | wc -c)" != 1 ]; then echo "dump not ready"; wait $DUMP; exit 1; fi
T_READY=$(ms)
T_LAZY_START=$(ms)
$CRIU lazy-pages --page-server --address 127.0.0.1 --port "$PORT" -D "$OUT/img" \
	--status-fd 3 -v4 -o lazy.log 3>"$OUT/lazy.ready" &
LAZY=$!
if [ "$(timeout 60 head -c1 "$OUT/lazy.ready" | wc -c)" != 1 ]; then echo "lazy-pages not ready"; kill $DUMP; exit 1; fi
$CRIU restore -D "$OUT/img" --lazy-pages -d $RESTORE_OPT --pidfile "$OUT/restored.pid" -v4 -o restore.log
RC_RESTORE=$?
T_RESTORED=$(ms)
RPID=$(cat "$OUT/restored.pid" 2>/dev/null); [ -n "$RPID" ] && PIDS+=("$RPID")
if [ -n "${FAULT:-}" ]; then
	sleep "$(echo "${FAULT_MS:-200}/1000" | bc -l)"
	T_FAULT=$(ms)
	case $FAULT in
	kill-lazy) kill -9 $LAZY ;;
	kill-dump) kill -9 $DUMP ;;
	kill-restored) kill -9 "$RPID" ;;
	cut-tcp) iptables -I INPUT -i lo -p tcp --sport "$PORT" -j REJECT --reject-with tcp-reset
		 ss -K "( sport = :$PORT )" >/dev/null 2>&1 ;;
	esac
	echo "fault $FAULT injected at +$((T_FAULT-T_DUMP)) ms"
fi
WAIT_S=${WAIT_S:-$([ -n "${FAULT:-}" ] && echo 20 || echo 120)}
timeout $WAIT_S tail -s 0.01 --pid=$LAZY -f /dev/null
kill -0 $LAZY 2>/dev/null && { echo "criu lazy-pages still running after ${WAIT_S}s: SIGKILL"; kill -9 $LAZY; }
wait $LAZY; RC_LAZY=$?; T_LAZY=$(ms)
timeout $WAIT_S tail -s 0.01 --pid=$DUMP -f /dev/null
kill -0 $DUMP 2>/dev/null && { echo "criu dump still running after ${WAIT_S}s: SIGKILL"; kill -9 $DUMP; }
wait $DUMP; RC_DUMP=$?; T_DUMP_END=$(ms)
if [ -n "${ABORT:-}" ]; then
	echo "abort: restored copy state before: $( [ -n "${RPID:-}" ] && [ -e /proc/$RPID ] && awk '{print $3}' /proc/$RPID/stat || echo gone)"
	[ -n "${RPID:-}" ] && kill -9 "$RPID" 2>/dev/null
	for i in $(seq 500); do [ -n "${RPID:-}" ] && [ -e /proc/$RPID ] || break; sleep 0.01; done
	echo "abort: restored copy $( [ -e /proc/${RPID:-0} ] && echo 'STILL ALIVE' || echo gone), source state $( [ -e /proc/$PID ] && awk '{print $3}' /proc/$PID/stat || echo gone)$( [ -n "${FZ:-}" ] && echo ", freezer $(cat $FZ/freezer.state)")"
	T_RES=$(ms)
	[ -n "${FZ:-}" ] && echo THAWED > $FZ/freezer.state
	kill -CONT "$PID" 2>/dev/null
	sleep 2.2
	echo "abort: source after resume: $(awk -v t=$T_RES '$1>t && $2 ~ /^[0-9]+$/' "$OUT/work.log" | wc -l) ticks, $(awk -v t=$T_RES '$1>t && /BAD/' "$OUT/work.log" | wc -l) BAD, $(awk -v t=$T_RES '$1>t && /sweep/' "$OUT/work.log" | wc -l) full sweeps"
fi
sleep 2.2   # let the surviving copy run at least one full memory sweep
echo "rc: restore=$RC_RESTORE lazy-pages=$RC_LAZY dump=$RC_DUMP restored-pid=${RPID:-none}"
echo "ms after dump start: page-server-ready=$((T_READY-T_DUMP)) restore-returned=$((T_RESTORED-T_DUMP)) lazy-pages-exit=$((T_LAZY-T_DUMP)) dump-exit=$((T_DUMP_END-T_DUMP))"
awk '/#PF|uffd_copy/ { gsub(/[()]/, "", $1); if (!f) f = $1; l = $1 } /transferred pages/ { n = $NF }
  END { printf "lazy.log: first fault -> last uffd_copy %d ms, pages %s\n", (l - f) * 1000, n }' "$OUT/img/lazy.log"
awk '/Accepted connection|Session over|transfer finished|transfer FAILED/ { gsub(/[()]/, "", $1); printf "  dump.log (~ms after dump start) %d: %s\n", $1*1000, $0 }' "$OUT/img/dump.log" | cut -c1-110
awk -v t0="$T_DUMP" '$2 ~ /^[0-9]+$/ { if (p && $1-p > g) { g=$1-p; a=p; b=$1 } p=$1 }
  END { printf "workload: longest tick gap %d ms (last tick before at %+d ms, first after at %+d ms, rel. to dump start)\n", g, a-t0, b-t0 }' "$OUT/work.log"
echo "workload: BAD ticks after dump: $(awk -v t0=$T_DUMP '$1>t0 && /BAD/' "$OUT/work.log" | wc -l); ticks after dump: $(awk -v t0=$T_DUMP '$1>t0 && $2 ~ /^[0-9]+$/' "$OUT/work.log" | wc -l)"
awk -v t0=$T_DUMP '$1>t0 && /sweep/ {print "  sweep at", $1-t0, "ms:", $3, "took", $NF; n++; if (n==2) exit}' "$OUT/work.log"
st() { [ -n "$1" ] && [ -e /proc/$1 ] && echo "$(awk '{print $3}' /proc/$1/stat)" || echo gone; }
[ -n "${FZ:-}" ] && echo "source freezer cgroup: $(cat $FZ/freezer.state)"
[ -n "${RPID:-}" ] && [ -e /proc/$RPID ] && echo "restored copy /proc/$RPID/cmdline: $(timeout 2 cat /proc/$RPID/cmdline | tr '\0' ' ' | wc -c) bytes ($(timeout 2 cat /proc/$RPID/cmdline | tr '\0' ' ' | cut -c1-40))"
echo "copies: source $PID [$(st $PID)]  restored ${RPID:-none} [$(st "${RPID:-}")]   (R/S running, T stopped)"
grep -hE "Error|FAILED|tee pipe|finished successfully" "$OUT/img/dump.log" | grep -v RLIMIT | head -6 | sed 's/^/  dump.log: /'
grep -hE "Error|FAILED|transferred" "$OUT/img/lazy.log" | head -6 | sed 's/^/  lazy.log: /'
grep -hE "Error" "$OUT/img/restore.log" | grep -v RLIMIT | head -4 | sed 's/^/  restore.log: /'
echo "out=$OUT"
