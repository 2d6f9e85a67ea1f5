package rebalance

import (
	"errors"
	"fmt"
	"time"
)

// ErrInvalidPolicy marks a policy level or resource list that does not parse.
var ErrInvalidPolicy = errors.New("rebalance: invalid policy")

// Level is how eagerly the rebalancer moves workloads.
type Level string

// Policy levels.
const (
	// Off never moves a workload to rebalance; drains still move workloads.
	Off Level = "off"
	// Conservative moves one workload at a time in the cluster, only from a
	// node that ran out of headroom (under 10% free) for 5 reports in a row.
	// The default.
	Conservative Level = "conservative"
	// Aggressive acts on 20% free after 3 reports and moves up to 4
	// workloads at once.
	Aggressive Level = "aggressive"
)

// Policy holds the rebalancer's thresholds and budgets. Fractions are of a
// node's capacity in one resource.
type Policy struct {
	Level Level
	// WatchMemory and WatchCPU choose the measured resources that make a
	// node hot and count in the imbalance. CPU headroom is noisy and, with
	// several agents on one machine, shared by all of them.
	WatchMemory, WatchCPU bool

	// HotFree: a reading is hot when a watched resource has less than this
	// fraction free. CoolFree (> HotFree): a reading is cool when every
	// watched resource has at least this fraction free. Between the two a
	// node keeps its state (hysteresis), and a move must leave its target
	// cool, so a target never turns into a source.
	HotFree, CoolFree float64
	// HotReports readings in a row make a node hot, CoolReports cool again.
	HotReports, CoolReports int
	// MinImprovement is how much a move must lower the imbalance.
	MinImprovement float64

	// MaxPerNode bounds the migrations in flight that involve one node (as
	// source or target), MaxPerCluster those in the whole cluster.
	MaxPerNode, MaxPerCluster int
	// Cooldown is how long a workload stays put after it moved.
	Cooldown time.Duration
	// MaxFrozen: a workload whose predicted frozen time exceeds it is not
	// moved to rebalance (a drain moves it anyway).
	MaxFrozen time.Duration
	// LinkBytesPerSec and FixedOverhead predict the frozen time of a
	// stop-copy migration: FixedOverhead + RSS / LinkBytesPerSec.
	LinkBytesPerSec int64
	FixedOverhead   time.Duration
	// MaxDrainAttempts is how many live migrations of a drained node's
	// workload may fail before it is restarted on another node instead.
	MaxDrainAttempts int
}

// DefaultLevel is the level of a server started without --rebalance.
const DefaultLevel = Conservative

// Levels lists the levels, for help texts and messages.
func Levels() []Level { return []Level{Off, Conservative, Aggressive} }

// PolicyFor returns the thresholds and budgets of a level, watching memory
// and CPU. Off has Conservative's budgets, which drains use.
func PolicyFor(l Level) (Policy, error) {
	p := Policy{
		Level: l, WatchMemory: true, WatchCPU: true,
		HotFree: 0.10, CoolFree: 0.20, HotReports: 5, CoolReports: 3, MinImprovement: 0.05,
		MaxPerNode: 1, MaxPerCluster: 1, Cooldown: 10 * time.Minute, MaxFrozen: 2 * time.Second,
		LinkBytesPerSec: 125 << 20, FixedOverhead: 100 * time.Millisecond, MaxDrainAttempts: 2,
	}
	switch l {
	case Off, Conservative:
	case Aggressive:
		p.HotFree, p.CoolFree, p.HotReports, p.CoolReports, p.MinImprovement = 0.20, 0.30, 3, 2, 0.02
		p.MaxPerNode, p.MaxPerCluster, p.Cooldown, p.MaxFrozen = 2, 4, 2*time.Minute, 5*time.Second
	default:
		return Policy{}, fmt.Errorf("%w: level %q: use off, conservative or aggressive", ErrInvalidPolicy, l)
	}
	return p, nil
}

// ParseWatch sets which resources p watches from a list such as
// "memory,cpu", "memory" or "cpu".
func (p *Policy) ParseWatch(list string) error {
	p.WatchMemory, p.WatchCPU = false, false
	start := 0
	for i := 0; i <= len(list); i++ {
		if i < len(list) && list[i] != ',' {
			continue
		}
		switch list[start:i] {
		case "memory":
			p.WatchMemory = true
		case "cpu":
			p.WatchCPU = true
		default:
			return fmt.Errorf("%w: resource %q: watch memory, cpu or memory,cpu", ErrInvalidPolicy, list[start:i])
		}
		start = i + 1
	}
	return nil
}

// Watched names the watched resources, e.g. "memory,cpu".
func (p Policy) Watched() string {
	switch {
	case p.WatchMemory && p.WatchCPU:
		return "memory,cpu"
	case p.WatchMemory:
		return "memory"
	case p.WatchCPU:
		return "cpu"
	}
	return "nothing"
}

// PredictFrozen is the frozen time a stop-copy migration of rssMB is
// expected to take under p.
func (p Policy) PredictFrozen(rssMB int64) time.Duration {
	d := p.FixedOverhead
	if p.LinkBytesPerSec > 0 {
		d += time.Duration(float64(rssMB<<20) / float64(p.LinkBytesPerSec) * float64(time.Second))
	}
	return d.Round(time.Millisecond)
}
