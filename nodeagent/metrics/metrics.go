package metrics

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/shirou/gopsutil/v3/cpu"
	"github.com/shirou/gopsutil/v3/disk"
	"github.com/shirou/gopsutil/v3/load"
	"github.com/shirou/gopsutil/v3/mem"

	"github.com/batonhq/baton/wire"
)

const mib = 1 << 20

// Sampler measures the machine's capacity and headroom. CPU utilisation is
// measured between consecutive samples (since boot for the first one). It is
// safe for concurrent use.
type Sampler struct {
	dataDir string

	mu   sync.Mutex
	prev *cpu.TimesStat
}

// NewSampler returns a Sampler that reports the disk of dataDir.
func NewSampler(dataDir string) *Sampler {
	return &Sampler{dataDir: dataDir}
}

// Sample measures capacity and headroom now. On error, the values it could
// measure are returned along with the error.
func (s *Sampler) Sample(ctx context.Context) (wire.Capacity, wire.Headroom, error) {
	var c wire.Capacity
	var h wire.Headroom
	var errs []error

	if n, err := cpu.CountsWithContext(ctx, true); err != nil {
		errs = append(errs, fmt.Errorf("cpu count: %w", err))
	} else {
		c.CPUs = n
		c.CPUMillis = int64(n) * 1000
	}
	if times, err := cpu.TimesWithContext(ctx, false); err != nil {
		errs = append(errs, fmt.Errorf("cpu times: %w", err))
	} else if len(times) == 0 {
		errs = append(errs, errors.New("cpu times: none reported"))
	} else {
		s.mu.Lock()
		prev := cpu.TimesStat{}
		if s.prev != nil {
			prev = *s.prev
		}
		s.prev = &times[0]
		s.mu.Unlock()
		u := utilisation(prev, times[0])
		h.CPUPercent = u * 100
		h.CPUMillis = int64(float64(c.CPUMillis) * (1 - u))
	}
	if vm, err := mem.VirtualMemoryWithContext(ctx); err != nil {
		errs = append(errs, fmt.Errorf("memory: %w", err))
	} else {
		c.MemoryMB = int64(vm.Total / mib)
		h.MemoryMB = int64(vm.Available / mib)
	}
	if avg, err := load.AvgWithContext(ctx); err != nil {
		errs = append(errs, fmt.Errorf("load: %w", err))
	} else {
		h.Load1, h.Load5, h.Load15 = avg.Load1, avg.Load5, avg.Load15
	}
	if du, err := disk.UsageWithContext(ctx, s.dataDir); err != nil {
		errs = append(errs, fmt.Errorf("disk of %s: %w", s.dataDir, err))
	} else {
		c.DiskMB = int64(du.Total / mib)
		h.DiskMB = int64(du.Free / mib)
	}
	if err := errors.Join(errs...); err != nil {
		return c, h, fmt.Errorf("metrics: %w", err)
	}
	return c, h, nil
}

// utilisation is the busy fraction (0-1) of the CPU time that passed between
// two cumulative readings. Idle and iowait count as idle; guest time is
// already included in user time on Linux. Zero or negative elapsed time gives
// 0.
func utilisation(prev, cur cpu.TimesStat) float64 {
	total := func(t cpu.TimesStat) float64 {
		return t.User + t.Nice + t.System + t.Idle + t.Iowait + t.Irq + t.Softirq + t.Steal
	}
	idle := func(t cpu.TimesStat) float64 { return t.Idle + t.Iowait }
	dt := total(cur) - total(prev)
	if dt <= 0 {
		return 0
	}
	u := 1 - (idle(cur)-idle(prev))/dt
	return min(max(u, 0), 1)
}
