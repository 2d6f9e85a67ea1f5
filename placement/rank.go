package placement

import (
	"slices"
	"strings"
)

// ranking collects the feasible nodes with their scores and ranks them best
// first: higher score, then node name, then input order (which only matters
// for duplicate names, to stay deterministic). With a limit it keeps only
// the best limit nodes, in a heap whose root is the worst of them, so that
// ranking n nodes costs n integer comparisons in the usual case instead of
// a sort.
type ranking struct {
	nodes []Node
	limit int      // keep the best limit nodes; all when zero
	kept  []scored // with a limit, a heap: every node ranks before its parent
}

type scored struct {
	units uint32 // score in units of 1/scoreScale point
	index uint32 // into nodes; 32 bits are plenty (the radix of a 4-billion-node cluster)
}

// before reports whether a ranks before b.
func (r *ranking) before(a, b scored) bool {
	if a.units != b.units {
		return a.units > b.units
	}
	if na, nb := r.nodes[a.index].Name, r.nodes[b.index].Name; na != nb {
		return na < nb
	}
	return a.index < b.index
}

// cutoff is the score (in units) a node offered after the kept ones in
// name order must beat to be kept: that of the worst kept node once the
// limit is reached, else none (-2: any score beats it).
func (r *ranking) cutoff() float64 {
	if r.limit == all || len(r.kept) < r.limit {
		return -2
	}
	return float64(r.kept[0].units)
}

// offer considers node i with its score.
func (r *ranking) offer(units uint32, i int) {
	s := scored{units: units, index: uint32(i)}
	if r.limit == all {
		r.kept = append(r.kept, s)
		return
	}
	if len(r.kept) < r.limit {
		if r.kept == nil {
			r.kept = make([]scored, 0, r.limit)
		}
		r.kept = append(r.kept, s)
		r.up(len(r.kept) - 1)
		return
	}
	// Most nodes lose to the worst kept on the score alone.
	if worst := r.kept[0]; units < worst.units || !r.before(s, worst) {
		return
	}
	r.kept[0] = s
	r.down(0)
}

// up moves a new heap entry towards the root while it is worse than its parent.
func (r *ranking) up(j int) {
	for j > 0 {
		parent := (j - 1) / 2
		if !r.before(r.kept[parent], r.kept[j]) {
			return
		}
		r.kept[parent], r.kept[j] = r.kept[j], r.kept[parent]
		j = parent
	}
}

// down moves a replaced root towards the leaves while a child is worse.
func (r *ranking) down(j int) {
	for {
		worst := j
		for _, c := range [2]int{2*j + 1, 2*j + 2} {
			if c < len(r.kept) && r.before(r.kept[worst], r.kept[c]) {
				worst = c
			}
		}
		if worst == j {
			return
		}
		r.kept[worst], r.kept[j] = r.kept[j], r.kept[worst]
		j = worst
	}
}

// candidates returns the kept nodes ranked best first.
func (r *ranking) candidates() []Candidate {
	if len(r.kept) == 0 {
		return nil
	}
	slices.SortFunc(r.kept, func(a, b scored) int {
		if r.before(a, b) {
			return -1
		}
		return 1 // never equal: indexes differ
	})
	cands := make([]Candidate, len(r.kept))
	for i, s := range r.kept {
		cands[i] = Candidate{Node: r.nodes[s.index].Name, Score: float64(s.units) / scoreScale}
	}
	return cands
}

// rejectedNodes tallies, per filter, the nodes it eliminated and what the
// explanations need: the states of the nodes not ready, the anti-affine
// workloads found, the most CPU and memory free among the nodes that lacked
// them, and the rejected nodes' names — all of them, or with a limit only
// the first ones by name, so that a large cluster costs no list per filter.
type rejectedNodes struct {
	nodes    []Node
	maxNames int // names kept per filter; all when zero
	// inNameOrder says that nodes are sorted by name, without repeats, and
	// are added in index order (a Cluster's): names need no comparing.
	inNameOrder bool
	counts      [numFilters]int
	// names holds node indexes per filter. With a limit each list is kept
	// sorted by name (then index) and holds the first maxNames; without one
	// it holds every index and is sorted at the end.
	names       [numFilters][]uint32
	states      []stateCount
	antiFound   []string
	bestFreeCPU int64
	bestFreeMem int64
}

// add records that filter f eliminated node i, given in increasing order of i.
func (r *rejectedNodes) add(p *plan, f filterID, i int) {
	n := &r.nodes[i]
	switch f {
	case fCPU:
		r.lacks(f, i, free(n.Headroom.CPUMillis, n.Reserved.CPUMillis))
		return
	case fMemory:
		r.lacks(f, i, free(n.Headroom.MemoryMB, n.Reserved.MemoryMB))
		return
	}
	r.counts[f]++
	r.keepName(f, uint32(i))
	switch f {
	case fNodeState:
		r.states = countState(r.states, n.State)
	case fAnti:
		// Usually a single name is asked for: stop looking once every name
		// has been seen.
		for _, w := range n.Workloads {
			if len(r.antiFound) < p.anti.len() && p.anti.has(w) && !slices.Contains(r.antiFound, w) {
				r.antiFound = append(r.antiFound, w)
			}
		}
	}
}

// lacks records that node i has only freeAmount of what filter f (fCPU or
// fMemory) asks for, for a caller that does not go through add.
func (r *rejectedNodes) lacks(f filterID, i int, freeAmount int64) {
	r.counts[f]++
	if !r.inNameOrder || r.maxNames == all || len(r.names[f]) < r.maxNames {
		r.keepName(f, uint32(i))
	}
	if f == fCPU {
		r.bestFreeCPU = max(r.bestFreeCPU, freeAmount)
	} else {
		r.bestFreeMem = max(r.bestFreeMem, freeAmount)
	}
}

func (r *rejectedNodes) keepName(f filterID, i uint32) {
	s := r.names[f]
	if r.maxNames == all || r.inNameOrder && len(s) < r.maxNames {
		r.names[f] = append(s, i)
		return
	}
	if r.inNameOrder {
		return
	}
	// i comes after every kept index, so among equal names it sorts last.
	if len(s) == r.maxNames {
		if r.nodes[i].Name >= r.nodes[s[len(s)-1]].Name {
			return
		}
		s = s[:len(s)-1]
	}
	if s == nil {
		s = make([]uint32, 0, r.maxNames)
	}
	j := len(s)
	for j > 0 && r.nodes[i].Name < r.nodes[s[j-1]].Name {
		j--
	}
	r.names[f] = slices.Insert(s, j, i)
}

// rejections builds one Rejection per filter that eliminated nodes, in
// pipeline order.
func (r *rejectedNodes) rejections(p *plan) []Rejection {
	nfilters, nnames := 0, 0
	for f, c := range r.counts {
		if c > 0 {
			nfilters++
			nnames += len(r.names[f])
		}
	}
	if nfilters == 0 {
		return nil
	}
	names := make([]string, 0, nnames) // one backing array, carved per filter
	out := make([]Rejection, 0, nfilters)
	for f, c := range r.counts {
		if c == 0 {
			continue
		}
		idx := r.names[f]
		if r.maxNames == all && !r.inNameOrder {
			slices.SortFunc(idx, func(a, b uint32) int {
				if c := strings.Compare(r.nodes[a].Name, r.nodes[b].Name); c != 0 {
					return c
				}
				return int(a) - int(b)
			})
		}
		start := len(names)
		for _, i := range idx {
			names = append(names, r.nodes[i].Name)
		}
		rej := Rejection{Filter: filterNames[f], Count: c, Nodes: names[start:len(names):len(names)]}
		switch filterID(f) {
		case fNodeState:
			rej.Reason = notReadyReason(c, r.states)
		case fAllowed:
			rej.Reason = verb(c, "is", "are") + " not in the workload's node list"
		case fDenied:
			rej.Reason = verb(c, "is", "are") + " in the workload's avoid list"
		case fLabels:
			rej.Reason = p.labelsReason(c)
		case fAnti:
			rej.Reason = antiAffinityReason(c, r.antiFound)
		case fCPU:
			need, best := formatCPUPair(p.req.Resources.CPUMillis, r.bestFreeCPU)
			rej.Reason = lackReason(c, "CPU", need, best)
		case fMemory:
			need, best := formatMemoryPair(p.req.Resources.MemoryMB, r.bestFreeMem)
			rej.Reason = lackReason(c, "memory", need, best)
		}
		out = append(out, rej)
	}
	return out
}
