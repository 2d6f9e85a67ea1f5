package placement

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
)

// This file turns decisions into words. It uses strconv rather than fmt so
// that the package does not depend on os and time, even indirectly.

// Explain returns why nodes were rejected, biggest reason first, as in
//
//	3 nodes lack memory (need 2 GiB, best has 1.2 GiB free), 1 node is down
//
// It is the text of Place's ErrNoFit error, and for a dry run it tells what
// ruled the other nodes out. With no rejections it says "no nodes in the
// cluster" if there were no candidates either, else "no node was rejected".
func (d Decision) Explain() string {
	if len(d.Rejections) == 0 {
		if len(d.Candidates) == 0 {
			return "no nodes in the cluster"
		}
		return "no node was rejected"
	}
	rs := slices.Clone(d.Rejections)
	slices.SortStableFunc(rs, func(a, b Rejection) int { return cmp.Compare(b.Count, a.Count) })
	var sb strings.Builder
	for i, r := range rs {
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString(r.String())
	}
	return sb.String()
}

// String returns the rejection as a clause: the count, "node" or "nodes",
// and the reason, as in "3 nodes lack memory (need 2 GiB, best has 1.2 GiB
// free)".
func (r Rejection) String() string {
	return strconv.Itoa(r.Count) + " " + verb(r.Count, "node", "nodes") + " " + r.Reason
}

// noFitError is Place's error when nothing fits.
type noFitError struct {
	workload string
	reasons  string
}

func (e *noFitError) Error() string {
	return workloadPrefix(e.workload) + ErrNoFit.Error() + ": " + e.reasons
}

func (e *noFitError) Unwrap() error { return ErrNoFit }

func workloadPrefix(workload string) string {
	if workload == "" {
		return ""
	}
	return "workload " + strconv.Quote(workload) + ": "
}

// verb picks the singular or plural form for count.
func verb(count int, one, many string) string {
	if count == 1 {
		return one
	}
	return many
}

type stateCount struct {
	state string
	count int
}

func countState(states []stateCount, s string) []stateCount {
	s = stateName(s)
	for i := range states {
		if states[i].state == s {
			states[i].count++
			return states
		}
	}
	return append(states, stateCount{s, 1})
}

// stateName is how a node's state reads in explanations.
func stateName(s string) string {
	if s == "" {
		return "not ready"
	}
	return s
}

// notReadyReason reads "is down", "are suspect", or, for mixed states,
// "are not ready (2 down, 1 suspect)".
func notReadyReason(count int, states []stateCount) string {
	if len(states) == 1 {
		return verb(count, "is ", "are ") + states[0].state
	}
	slices.SortFunc(states, func(a, b stateCount) int {
		if c := cmp.Compare(b.count, a.count); c != 0 {
			return c
		}
		return strings.Compare(a.state, b.state)
	})
	var sb strings.Builder
	sb.WriteString("are not ready (")
	for i, s := range states {
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString(strconv.Itoa(s.count))
		sb.WriteByte(' ')
		sb.WriteString(s.state)
	}
	sb.WriteByte(')')
	return sb.String()
}

// labelsReason reads "does not have label zone=eu-1" or "do not have labels
// arch=amd64 and zone=eu-1" (no commas: Explain joins reasons with them).
func (p *plan) labelsReason(count int) string {
	var sb strings.Builder
	sb.WriteString(verb(count, "does", "do"))
	sb.WriteString(" not have label")
	if len(p.labels) > 1 {
		sb.WriteByte('s')
	}
	for i, l := range p.labels {
		if i > 0 {
			sb.WriteString(" and")
		}
		sb.WriteByte(' ')
		sb.WriteString(l.key)
		sb.WriteByte('=')
		sb.WriteString(l.value)
	}
	return sb.String()
}

// antiAffinityReason reads `already runs "web" (anti-affinity)`, listing
// the anti-affine workloads found on the rejected nodes.
func antiAffinityReason(count int, found []string) string {
	slices.Sort(found)
	var sb strings.Builder
	sb.WriteString(verb(count, "already runs ", "already run "))
	for i, w := range found {
		if i > 0 {
			sb.WriteString(" or ")
		}
		sb.WriteString(strconv.Quote(w))
	}
	sb.WriteString(" (anti-affinity)")
	return sb.String()
}

// lackReason reads "lacks memory (need 2 GiB, has 1.2 GiB free)" for one
// node and "lack memory (need 2 GiB, best has 1.2 GiB free)" for several.
func lackReason(count int, what string, need, best string) string {
	return verb(count, "lacks ", "lack ") + what + " (need " + need + ", " +
		verb(count, "has ", "best has ") + best + " free)"
}

// formatCPU renders millicores as CPUs: "2 CPU", "0.25 CPU", "1.5 CPU".
func formatCPU(millis int64) string {
	s := strconv.FormatInt(millis/1000, 10)
	if frac := millis % 1000; frac != 0 {
		if millis < 0 && millis > -1000 {
			s = "-0"
		}
		f := strconv.FormatInt(1000+abs(frac), 10)[1:] // three digits
		s += "." + strings.TrimRight(f, "0")
	}
	return s + " CPU"
}

func abs(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}

// formatCPUPair renders the CPU needed and the best free.
func formatCPUPair(need, best int64) (string, string) {
	return formatCPU(need), formatCPU(best)
}

// formatMemory renders MiB humanly: "512 MiB", "2 GiB", "1.2 GiB", "3.5 TiB".
func formatMemory(mib int64) string {
	a := abs(mib)
	switch {
	case a < 1<<10:
		return strconv.FormatInt(mib, 10) + " MiB"
	case a < 1<<20:
		return oneDecimal(float64(mib)/(1<<10)) + " GiB"
	default:
		return oneDecimal(float64(mib)/(1<<20)) + " TiB"
	}
}

func oneDecimal(v float64) string {
	return strings.TrimSuffix(strconv.FormatFloat(v, 'f', 1, 64), ".0")
}

// formatMemoryPair renders the memory needed and the best free; when
// rounding would make them read the same ("need 2 GiB, best has 2 GiB
// free"), both are given in exact MiB.
func formatMemoryPair(need, best int64) (string, string) {
	n, b := formatMemory(need), formatMemory(best)
	if n == b {
		n = strconv.FormatInt(need, 10) + " MiB"
		b = strconv.FormatInt(best, 10) + " MiB"
	}
	return n, b
}
