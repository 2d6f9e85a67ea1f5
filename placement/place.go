package placement

import (
	"cmp"
	"slices"
	"strings"
)

// Filter names, as they appear in Rejection.Filter. The pipeline applies the
// filters in this order, and each node is counted by the first one that
// rejects it.
const (
	FilterNodeState    = "node-state"    // the node is not ready
	FilterAllowedNodes = "allowed-nodes" // Constraints.Nodes is set and does not name the node
	FilterDeniedNodes  = "denied-nodes"  // Constraints.AvoidNodes names the node
	FilterLabels       = "labels"        // the node lacks a label of Constraints.Labels
	FilterAntiAffinity = "anti-affinity" // the node runs a workload named in Constraints.AntiAffinity
	FilterCPU          = "cpu"           // not enough free CPU
	FilterMemory       = "memory"        // not enough free memory
)

// filterID indexes the pipeline; its order is the order of the filters.
type filterID uint8

const (
	fNodeState filterID = iota
	fAllowed
	fDenied
	fLabels
	fAnti
	fCPU
	fMemory
	numFilters

	feasible = numFilters // check's answer for a node that passes every filter
)

var filterNames = [numFilters]string{
	fNodeState: FilterNodeState,
	fAllowed:   FilterAllowedNodes,
	fDenied:    FilterDeniedNodes,
	fLabels:    FilterLabels,
	fAnti:      FilterAntiAffinity,
	fCPU:       FilterCPU,
	fMemory:    FilterMemory,
}

// Filters returns the filter names in pipeline order.
func Filters() []string { return slices.Clone(filterNames[:]) }

// Place chooses a node for req among nodes.
//
// Every filter that eliminates nodes leaves a Rejection (in pipeline order);
// every node that passes them all is a Candidate, ranked best first: higher
// Score, then node name ascending. Decision.Node is the best candidate.
//
// Free resources are Headroom − Reserved per dimension, never below zero
// (negative inputs count as zero). Scores are on 0..100, the mean over CPU and
// memory of how full (BinPack) or empty (Spread) the node would be after
// placement, relative to Capacity (Headroom when Capacity is zero), truncated
// to four decimal places with exact integer arithmetic so that the ranking is
// the same on every platform.
//
// When no node fits, Place returns the Decision, with every Rejection, and an
// error wrapping ErrNoFit whose text gives the reasons (see
// Decision.Explain). An invalid request (see ValidateRequest) returns a zero
// Decision and an error wrapping ErrInvalidRequest.
//
// Place is pure and safe for concurrent use; it does not modify nodes. It is
// fastest when nodes are sorted by name, as its output lists are.
func Place(nodes []Node, req Request) (Decision, error) {
	if err := ValidateRequest(req); err != nil {
		return Decision{}, err
	}
	var p plan
	p.init(req)
	d := Decision{Strategy: p.strategy}
	if len(nodes) == 0 {
		return d, &noFitError{workload: req.Workload, reasons: d.Explain()}
	}

	// One pass through the pipeline. Feasible nodes are packed into
	// entries from the front as (rank key << 32 | index), rejected ones from
	// the back as (filter << 32 | index), so nothing is allocated per node.
	// (An index needs 32 bits only if there are 4 billion nodes.)
	entries := make([]uint64, len(nodes), 2*len(nodes)) // the second half is rank's scratch
	front, back := 0, len(nodes)
	var counts [numFilters]int
	var bestFreeCPU, bestFreeMem int64
	for i := range nodes {
		n := &nodes[i]
		f := p.check(n)
		if f == feasible {
			entries[front] = uint64(maxScore-p.score(n))<<32 | uint64(i)
			front++
			continue
		}
		back--
		entries[back] = uint64(f)<<32 | uint64(i)
		counts[f]++
		switch f {
		case fCPU:
			bestFreeCPU = max(bestFreeCPU, free(n.Headroom.CPUMillis, n.Reserved.CPUMillis))
		case fMemory:
			bestFreeMem = max(bestFreeMem, free(n.Headroom.MemoryMB, n.Reserved.MemoryMB))
		}
	}

	// Output lists are in node order until sorted by name; when the nodes
	// come sorted (the scheduler's usual case) there is nothing to sort.
	sorted := sortedByName(nodes)
	d.Candidates = rank(nodes, entries[:front], entries[len(nodes):2*len(nodes)], sorted)
	d.Rejections = p.rejections(nodes, entries[back:], &counts, bestFreeCPU, bestFreeMem, sorted)
	if len(d.Candidates) == 0 {
		return d, &noFitError{workload: req.Workload, reasons: d.Explain()}
	}
	d.Node = d.Candidates[0].Node
	return d, nil
}

func sortedByName(nodes []Node) bool {
	for i := 1; i < len(nodes); i++ {
		if nodes[i].Name < nodes[i-1].Name {
			return false
		}
	}
	return true
}

// plan is a Request compiled for the pipeline once per call: which filters
// are active, and the constraint sets ready for lookups.
type plan struct {
	req      Request
	strategy Strategy
	active   [numFilters]bool
	allowed  nameSet
	denied   nameSet
	anti     nameSet
	labels   []label // sorted by key, so explanations do not depend on map order
}

type label struct{ key, value string }

func (p *plan) init(req Request) {
	p.req = req
	p.strategy = req.Strategy
	if p.strategy == "" {
		p.strategy = BinPack
	}
	c := req.Constraints
	p.allowed = newNameSet(c.Nodes)
	p.denied = newNameSet(c.AvoidNodes)
	p.anti = newNameSet(c.AntiAffinity)
	if len(c.Labels) > 0 {
		p.labels = make([]label, 0, len(c.Labels))
		for k, v := range c.Labels {
			p.labels = append(p.labels, label{k, v})
		}
		slices.SortFunc(p.labels, func(a, b label) int { return strings.Compare(a.key, b.key) })
	}
	// A constraint that is not set cannot reject a node: skip its filter.
	p.active = [numFilters]bool{
		fNodeState: true,
		fAllowed:   len(c.Nodes) > 0,
		fDenied:    len(c.AvoidNodes) > 0,
		fLabels:    len(p.labels) > 0,
		fAnti:      len(c.AntiAffinity) > 0,
		fCPU:       true,
		fMemory:    true,
	}
}

// check runs n through the pipeline and returns the first filter that
// rejects it, or feasible. The filters are written out in pipeline order
// rather than looped over: this is the hot path, run for every node.
func (p *plan) check(n *Node) filterID {
	if !n.Ready {
		return fNodeState
	}
	if p.active[fAllowed] && !p.allowed.has(n.Name) {
		return fAllowed
	}
	if p.active[fDenied] && p.denied.has(n.Name) {
		return fDenied
	}
	if p.active[fLabels] && !p.labelsMatch(n.Labels) {
		return fLabels
	}
	if p.active[fAnti] && p.runsAntiAffine(n.Workloads) {
		return fAnti
	}
	if free(n.Headroom.CPUMillis, n.Reserved.CPUMillis) < p.req.Resources.CPUMillis {
		return fCPU
	}
	if free(n.Headroom.MemoryMB, n.Reserved.MemoryMB) < p.req.Resources.MemoryMB {
		return fMemory
	}
	return feasible
}

func (p *plan) labelsMatch(labels map[string]string) bool {
	for _, l := range p.labels {
		if v, ok := labels[l.key]; !ok || v != l.value {
			return false
		}
	}
	return true
}

func (p *plan) runsAntiAffine(workloads []string) bool {
	for _, w := range workloads {
		if p.anti.has(w) {
			return true
		}
	}
	return false
}

// free is headroom − reserved, where negative inputs count as zero and the
// result is never below zero (a node can be over-reserved).
func free(headroom, reserved int64) int64 {
	h, r := max(headroom, 0), max(reserved, 0)
	if r >= h {
		return 0
	}
	return h - r
}

// nameSet answers membership for a constraint list. Short lists are scanned,
// which beats hashing the name; long ones get a map, built once per call.
type nameSet struct {
	list []string
	set  map[string]struct{}
}

const maxScannedSet = 8

func newNameSet(names []string) nameSet {
	if len(names) <= maxScannedSet {
		return nameSet{list: names}
	}
	s := nameSet{set: make(map[string]struct{}, len(names))}
	for _, n := range names {
		s.set[n] = struct{}{}
	}
	return s
}

// len is the number of distinct names in the set, or more for a short list
// with repeats.
func (s *nameSet) len() int {
	if s.set != nil {
		return len(s.set)
	}
	return len(s.list)
}

func (s *nameSet) has(name string) bool {
	if s.set != nil {
		_, ok := s.set[name]
		return ok
	}
	for _, n := range s.list {
		if n == name {
			return true
		}
	}
	return false
}

// rank orders the feasible entries (rank key << 32 | node index, the key being
// maxScore − score) best first and returns them as candidates. Entries arrive
// in node order; a stable sort on the key keeps that order among equal
// scores, and each run of equal scores is then sorted by name, unless the
// nodes came sorted by name.
func rank(nodes []Node, entries, scratch []uint64, sorted bool) []Candidate {
	if len(entries) == 0 {
		return nil
	}
	if len(entries) >= minRadixSort {
		radixSortKeys(entries, scratch[:len(entries)])
	} else {
		slices.Sort(entries) // keys, then indexes: the same order
	}
	byName := func(a, b uint64) int {
		if c := strings.Compare(nodes[uint32(a)].Name, nodes[uint32(b)].Name); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	}
	for i := 0; i < len(entries) && !sorted; {
		j := i + 1
		for j < len(entries) && entries[j]>>32 == entries[i]>>32 {
			j++
		}
		if j-i > 1 {
			slices.SortFunc(entries[i:j], byName)
		}
		i = j
	}
	cands := make([]Candidate, len(entries))
	for i, e := range entries {
		cands[i] = Candidate{
			Node:  nodes[uint32(e)].Name,
			Score: float64(maxScore-uint32(e>>32)) / scoreScale,
		}
	}
	return cands
}

// minRadixSort is where the two-pass radix sort starts to beat pdqsort.
const minRadixSort = 256

// radixSortKeys sorts entries stably by their 20-bit key (bits 32..51), in
// two passes of 10 bits, using tmp (as long as entries) as scratch.
func radixSortKeys(entries, tmp []uint64) {
	const bitsPerPass, buckets = 10, 1 << 10
	var lo, hi [buckets]uint32 // len(nodes) < 2^32: indexes are 32 bits
	for _, e := range entries {
		k := e >> 32
		lo[k&(buckets-1)]++
		hi[(k>>bitsPerPass)&(buckets-1)]++
	}
	var sumLo, sumHi uint32
	for b := range buckets {
		lo[b], sumLo = sumLo, sumLo+lo[b]
		hi[b], sumHi = sumHi, sumHi+hi[b]
	}
	for _, e := range entries {
		b := (e >> 32) & (buckets - 1)
		tmp[lo[b]] = e
		lo[b]++
	}
	for _, e := range tmp {
		b := (e >> (32 + bitsPerPass)) & (buckets - 1)
		entries[hi[b]] = e
		hi[b]++
	}
}

// rejections builds one Rejection per filter that eliminated nodes, in
// pipeline order. entries are (filter << 32 | node index) in reverse node
// order.
func (p *plan) rejections(nodes []Node, entries []uint64, counts *[numFilters]int, bestFreeCPU, bestFreeMem int64, sorted bool) []Rejection {
	if len(entries) == 0 {
		return nil
	}
	// Carve one slice of names into a part per filter.
	names := make([]string, len(entries))
	var next [numFilters]int
	nfilters, off := 0, 0
	for f, c := range counts {
		next[f] = off
		off += c
		if c > 0 {
			nfilters++
		}
	}
	var states []stateCount
	var found []string // anti-affinity names found on rejected nodes
	for i := len(entries) - 1; i >= 0; i-- {
		e := entries[i]
		f, n := filterID(e>>32), &nodes[uint32(e)]
		names[next[f]] = n.Name
		next[f]++
		switch f {
		case fNodeState:
			states = countState(states, n.State)
		case fAnti:
			// Usually a single name is asked for: stop looking once every
			// name has been seen.
			for _, w := range n.Workloads {
				if len(found) < p.anti.len() && p.anti.has(w) && !slices.Contains(found, w) {
					found = append(found, w)
				}
			}
		}
	}

	out := make([]Rejection, 0, nfilters)
	off = 0
	for f, c := range counts {
		if c == 0 {
			continue
		}
		r := Rejection{
			Filter: filterNames[f],
			Count:  c,
			Nodes:  names[off : off+c : off+c],
		}
		off += c
		if !sorted {
			slices.Sort(r.Nodes)
		}
		switch filterID(f) {
		case fNodeState:
			r.Reason = notReadyReason(c, states)
		case fAllowed:
			r.Reason = verb(c, "is", "are") + " not in the workload's node list"
		case fDenied:
			r.Reason = verb(c, "is", "are") + " in the workload's avoid list"
		case fLabels:
			r.Reason = p.labelsReason(c)
		case fAnti:
			r.Reason = antiAffinityReason(c, found)
		case fCPU:
			need, best := formatCPUPair(p.req.Resources.CPUMillis, bestFreeCPU)
			r.Reason = lackReason(c, "CPU", need, best)
		case fMemory:
			need, best := formatMemoryPair(p.req.Resources.MemoryMB, bestFreeMem)
			r.Reason = lackReason(c, "memory", need, best)
		}
		out = append(out, r)
	}
	return out
}
