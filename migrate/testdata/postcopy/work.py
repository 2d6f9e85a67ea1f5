# Python variant of work.c: same log format. usage: python3 work.py MIB LOG
import sys, time, os
mib = int(sys.argv[1]); log = open(sys.argv[2], "a", buffering=1)
pat = bytes(range(256)) * 16            # one 4 KiB page
buf = bytearray(pat * (mib * 256))
ms = lambda: int(time.time() * 1000)
log.write(f"{ms()} start pid={os.getpid()} mib={mib}\n")
c = 0
while True:
    sweep = c % 100 == 99
    t0 = ms()
    bad = 0
    if sweep:
        for off in range(0, len(buf), 1 << 20):
            if buf[off:off + 4096] != pat: bad += 1
    else:
        off = (c * 4099 % (mib * 256)) * 4096
        bad = buf[off:off + 4096] != pat
    log.write(f"{ms()} {c} {'BAD' if bad else 'ok'}{' sweep' if sweep else ''} {ms() - t0}ms\n")
    c += 1
    time.sleep(0.01)
