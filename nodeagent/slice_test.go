package nodeagent

import (
	"testing"

	"github.com/batonhq/baton/wire"
)

func TestSliceMemory(t *testing.T) {
	machine := wire.Capacity{CPUs: 2, CPUMillis: 2000, MemoryMB: 24576}
	tests := []struct {
		name      string
		available int64
		rssMB     []int64
		wantFree  int64
	}{
		{"empty slice", 20000, nil, 1024},
		{"workloads fill it", 20000, []int64{300, 600}, 124},
		{"overfull", 20000, []int64{900, 600}, 0},
		{"the machine has less", 100, []int64{10}, 100},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var ws []wire.WorkloadStatus
			for _, mb := range tc.rssMB {
				ws = append(ws, wire.WorkloadStatus{RSSBytes: mb << 20})
			}
			c, h := sliceMemory(machine, wire.Headroom{MemoryMB: tc.available, CPUMillis: 1500}, 1024, ws)
			if c.MemoryMB != 1024 || h.MemoryMB != tc.wantFree {
				t.Errorf("capacity %d MiB, free %d MiB; want 1024 and %d", c.MemoryMB, h.MemoryMB, tc.wantFree)
			}
			if c.CPUMillis != 2000 || h.CPUMillis != 1500 {
				t.Errorf("CPU changed: %+v %+v", c, h)
			}
		})
	}
}
