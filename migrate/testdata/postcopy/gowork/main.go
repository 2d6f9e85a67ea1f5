// Go variant of work.c: same log format. usage: gowork MIB LOG
package main

import (
	"fmt"
	"os"
	"strconv"
	"time"
)

func main() {
	mib, _ := strconv.Atoi(os.Args[1])
	f, err := os.OpenFile(os.Args[2], os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0644)
	if err != nil {
		os.Exit(2)
	}
	pages := mib * 256
	m := make([]byte, mib<<20)
	for p := 0; p < pages; p++ {
		for o := 0; o < 4096; o += 512 {
			m[p*4096+o] = byte(p + o)
		}
	}
	ms := func() int64 { return time.Now().UnixMilli() }
	fmt.Fprintf(f, "%d start pid=%d mib=%d\n", ms(), os.Getpid(), mib)
	for c := 0; ; c++ {
		sweep := c%100 == 99
		t0 := ms()
		bad := 0
		from, to := (c*4099)%pages, (c*4099)%pages+1
		if sweep {
			from, to = 0, pages
		}
		for p := from; p < to; p++ {
			for o := 0; o < 4096; o += 512 {
				if m[p*4096+o] != byte(p+o) {
					bad++
				}
			}
		}
		st := "ok"
		if bad > 0 {
			st = "BAD"
		}
		sw := ""
		if sweep {
			sw = " sweep"
		}
		fmt.Fprintf(f, "%d %d %s%s %dms\n", ms(), c, st, sw, ms()-t0)
		time.Sleep(10 * time.Millisecond)
	}
}
