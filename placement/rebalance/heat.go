package rebalance

import (
	"fmt"

	"github.com/batonhq/baton/placement"
)

// Heat is what the Tracker knows of one node.
type Heat struct {
	Hot bool
	// HotStreak and CoolStreak count the hot and cool readings in a row
	// (a reading between the thresholds resets both).
	HotStreak, CoolStreak int
	// Reading is the last reading: "hot", "warm" or "cool".
	Reading string
	// Why says what the last reading measured, e.g. "memory 8% free".
	Why string
}

// Tracker follows the heat of every node from report to report. It keeps
// state but is pure: same reports, same answers. Not safe for concurrent use.
type Tracker struct {
	nodes map[string]Heat
}

// NewTracker returns a tracker that knows no node.
func NewTracker() *Tracker { return &Tracker{nodes: map[string]Heat{}} }

// Observe feeds one report of node: its capacity and measured headroom.
// changed says whether the node turned hot or cool with it.
func (t *Tracker) Observe(node string, capacity, headroom placement.Resources, p Policy) (h Heat, changed bool) {
	h = t.nodes[node]
	was := h.Hot
	h.Reading, h.Why = reading(capacity, headroom, p)
	switch h.Reading {
	case "hot":
		h.HotStreak, h.CoolStreak = h.HotStreak+1, 0
	case "cool":
		h.HotStreak, h.CoolStreak = 0, h.CoolStreak+1
	default:
		h.HotStreak, h.CoolStreak = 0, 0
	}
	if !h.Hot && h.HotStreak >= max(p.HotReports, 1) {
		h.Hot = true
	}
	if h.Hot && h.CoolStreak >= max(p.CoolReports, 1) {
		h.Hot = false
	}
	t.nodes[node] = h
	return h, h.Hot != was
}

// Heat returns what the tracker knows of node.
func (t *Tracker) Heat(node string) Heat { return t.nodes[node] }

// Forget drops a node (it left the cluster).
func (t *Tracker) Forget(node string) { delete(t.nodes, node) }

// reading classifies one report: hot if a watched resource has less than
// HotFree free, cool if every watched one has at least CoolFree, else warm.
func reading(capacity, headroom placement.Resources, p Policy) (string, string) {
	worst, what := 2.0, "nothing watched"
	for _, d := range watchedDims(p) {
		c, f := d.get(capacity), d.get(headroom)
		if c <= 0 {
			continue
		}
		if frac := float64(max(f, 0)) / float64(c); frac < worst {
			worst, what = frac, fmt.Sprintf("%s %s free", d.name, pct(frac))
		}
	}
	switch {
	case worst < p.HotFree:
		return "hot", what
	case worst >= p.CoolFree:
		return "cool", what
	}
	return "warm", what
}

// dim is one resource dimension.
type dim struct {
	name string
	get  func(placement.Resources) int64
}

var (
	memDim = dim{"memory", func(r placement.Resources) int64 { return r.MemoryMB }}
	cpuDim = dim{"cpu", func(r placement.Resources) int64 { return r.CPUMillis }}
)

func watchedDims(p Policy) []dim {
	var out []dim
	if p.WatchMemory {
		out = append(out, memDim)
	}
	if p.WatchCPU {
		out = append(out, cpuDim)
	}
	return out
}

func pct(f float64) string { return fmt.Sprintf("%.0f%%", f*100) }
