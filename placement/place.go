package placement

import (
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

// Place chooses a node for req among nodes. It is the scheduler's hot path:
// its Decision names the chosen node, the best MaxCandidates candidates and,
// per rejection, the count and reason with at most MaxExampleNodes node
// names. Plan makes the same choice and lists every candidate and every
// rejected node, for dry runs.
//
// Every filter that eliminates nodes leaves a Rejection (in pipeline order);
// every node that passes them all is feasible (Decision.Feasible counts
// them) and a Candidate, ranked best first: higher Score, then node name
// ascending. Decision.Node is the best candidate.
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
// Place is pure and safe for concurrent use; it does not modify nodes. Its
// cost is one pass over the nodes with no allocation per node.
func Place(nodes []Node, req Request) (Decision, error) {
	return place(nodes, req, MaxCandidates, MaxExampleNodes)
}

// Plan is Place for dry runs and explanations: the same Decision, except
// that Candidates ranks every feasible node and each Rejection names every
// node it eliminated, sorted. It costs a sort of the nodes on top of Place.
func Plan(nodes []Node, req Request) (Decision, error) {
	return place(nodes, req, all, all)
}

const (
	// MaxCandidates is how many ranked candidates Place returns: the chosen
	// node and a few runners-up, enough to show why it won.
	MaxCandidates = 8
	// MaxExampleNodes is how many node names Place gives per Rejection: the
	// first ones by name. Rejection.Count still counts them all.
	MaxExampleNodes = 5

	all = 0 // no limit, for Plan
)

// place runs the pipeline once over nodes, keeping the best maxCandidates
// candidates and the first maxNames rejected names per filter (all when
// zero).
func place(nodes []Node, req Request, maxCandidates, maxNames int) (Decision, error) {
	if err := ValidateRequest(req); err != nil {
		return Decision{}, err
	}
	var p plan
	p.init(req)
	d := Decision{Strategy: p.strategy}
	if len(nodes) == 0 {
		return d, &noFitError{workload: req.Workload, reasons: d.Explain()}
	}

	best := ranking{nodes: nodes, limit: maxCandidates}
	rejected := rejectedNodes{nodes: nodes, maxNames: maxNames}
	for i := range nodes {
		n := &nodes[i]
		if f := p.check(n); f != feasible {
			rejected.add(&p, f, i)
			continue
		}
		d.Feasible++
		best.offer(p.score(n), i)
	}

	return finish(d, &p, &best, &rejected)
}

// finish completes d with the ranked candidates, the rejections and the
// chosen node, or the ErrNoFit error.
func finish(d Decision, p *plan, best *ranking, rejected *rejectedNodes) (Decision, error) {
	d.Candidates = best.candidates()
	d.Rejections = rejected.rejections(p)
	if len(d.Candidates) == 0 {
		return d, &noFitError{workload: p.req.Workload, reasons: d.Explain()}
	}
	d.Node = d.Candidates[0].Node
	return d, nil
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
