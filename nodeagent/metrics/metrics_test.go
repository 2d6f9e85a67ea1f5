package metrics

import (
	"math"
	"testing"

	"github.com/shirou/gopsutil/v3/cpu"
)

func TestSample(t *testing.T) {
	s := NewSampler(t.TempDir())
	for i := range 2 {
		c, h, err := s.Sample(t.Context())
		if err != nil {
			t.Fatalf("sample %d: %v", i, err)
		}
		if c.CPUs <= 0 || c.CPUMillis != int64(c.CPUs)*1000 || c.MemoryMB <= 0 || c.DiskMB <= 0 {
			t.Errorf("sample %d: capacity %+v, want positive and cpu_millis = cpus*1000", i, c)
		}
		if h.MemoryMB <= 0 || h.MemoryMB > c.MemoryMB || h.DiskMB <= 0 || h.DiskMB > c.DiskMB {
			t.Errorf("sample %d: headroom %+v out of range of capacity %+v", i, h, c)
		}
		if h.CPUPercent < 0 || h.CPUPercent > 100 || h.CPUMillis < 0 || h.CPUMillis > c.CPUMillis {
			t.Errorf("sample %d: cpu headroom %+v out of range", i, h)
		}
		if h.Load1 < 0 || h.Load5 < 0 || h.Load15 < 0 {
			t.Errorf("sample %d: negative load %+v", i, h)
		}
	}
}

func TestSampleBadDataDir(t *testing.T) {
	c, _, err := NewSampler("/nonexistent/baton").Sample(t.Context())
	if err == nil {
		t.Fatal("no error for a missing data dir")
	}
	if c.CPUs <= 0 || c.MemoryMB <= 0 {
		t.Errorf("capacity %+v: the measurable values should still be returned", c)
	}
}

func TestUtilisation(t *testing.T) {
	tests := []struct {
		name      string
		prev, cur cpu.TimesStat
		want      float64
	}{
		{"idle", cpu.TimesStat{Idle: 100}, cpu.TimesStat{Idle: 200}, 0},
		{"busy", cpu.TimesStat{User: 10, Idle: 10}, cpu.TimesStat{User: 110, Idle: 10}, 1},
		{"quarter", cpu.TimesStat{}, cpu.TimesStat{User: 10, System: 10, Idle: 50, Iowait: 10, Steal: 0}, 0.25},
		{"iowait is idle", cpu.TimesStat{}, cpu.TimesStat{Iowait: 10}, 0},
		{"no time passed", cpu.TimesStat{User: 5}, cpu.TimesStat{User: 5}, 0},
		{"counter went back", cpu.TimesStat{User: 50}, cpu.TimesStat{User: 5}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := utilisation(tc.prev, tc.cur); math.Abs(got-tc.want) > 1e-9 {
				t.Errorf("Utilisation = %v, want %v", got, tc.want)
			}
		})
	}
}
