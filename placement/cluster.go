package placement

import (
	"errors"
	"maps"
	"math/bits"
	"slices"
	"strconv"
	"strings"
)

var (
	// ErrDuplicateNode is returned (wrapped) by NewCluster when two nodes
	// have the same name.
	ErrDuplicateNode = errors.New("duplicate node name")
	// ErrUnknownNode is returned (wrapped) by Cluster.Update for a node the
	// Cluster does not hold.
	ErrUnknownNode = errors.New("unknown node")
)

// Cluster holds nodes prepared for many placement decisions in a row, for a
// caller that places often on a large cluster (the scheduler, a trace
// replay). Its Place and Plan decide exactly as the functions Place and Plan
// do on the same nodes, several times faster: the constraint filters work
// on precomputed sets of nodes (per label, per workload name, the ready
// ones), 64 nodes per machine word, and the resource filters and the scorer
// read 48 packed bytes per node instead of the whole Node.
//
// A Cluster keeps copies of the nodes it is given; Update replaces one.
// Adding or removing nodes means building a new Cluster. Decisions do not
// modify the Cluster, so they may run concurrently with each other, but not
// with Update.
type Cluster struct {
	nodes  []Node         // sorted by name, names unique
	byName map[string]int // index into nodes
	fits   []fit          // what the resource filters and the scorer read, per node
	all    bitset         // every node
	ready  bitset
	labels map[label]bitset  // the nodes that carry each label
	runs   map[string]bitset // the nodes that run a workload of each name
	// notReady counts the nodes not ready per state, for the node-state
	// filter's explanation without reading those nodes at each decision.
	notReady map[string]int
}

// fit is the part of a node that the cpu and memory filters and the scorer
// read, packed: free is Headroom − Reserved (see free), size as in size.
type fit struct {
	freeCPU, sizeCPU, freeMem, sizeMem int64
	invSizeCPU, invSizeMem             float64 // reciprocal(size)
}

// NewCluster prepares nodes for placement. Node names must be unique.
func NewCluster(nodes []Node) (*Cluster, error) {
	c := &Cluster{
		nodes:    make([]Node, len(nodes)),
		byName:   make(map[string]int, len(nodes)),
		fits:     make([]fit, len(nodes)),
		all:      newBitset(len(nodes)),
		ready:    newBitset(len(nodes)),
		labels:   map[label]bitset{},
		runs:     map[string]bitset{},
		notReady: map[string]int{},
	}
	copy(c.nodes, nodes)
	slices.SortFunc(c.nodes, func(a, b Node) int { return strings.Compare(a.Name, b.Name) })
	for i := range c.nodes {
		n := &c.nodes[i]
		if i > 0 && n.Name == c.nodes[i-1].Name {
			return nil, &nodeError{node: n.Name, err: ErrDuplicateNode, hint: "give every node its own name"}
		}
		n.Labels, n.Workloads = maps.Clone(n.Labels), slices.Clone(n.Workloads)
		c.byName[n.Name] = i
		c.all.set(i)
		c.add(i)
	}
	return c, nil
}

// Len is the number of nodes.
func (c *Cluster) Len() int { return len(c.nodes) }

// Node returns the node named name as the Cluster holds it. Its Labels and
// Workloads are the Cluster's: copy them before changing them.
func (c *Cluster) Node(name string) (Node, bool) {
	i, ok := c.byName[name]
	if !ok {
		return Node{}, false
	}
	return c.nodes[i], true
}

// Update replaces the node of the same name, for example after a heartbeat
// or when a workload is placed on it or leaves it. It costs a few map
// operations per label and workload of the old and new node, and for each
// one the node no longer has, a look at its set (a word per 64 nodes).
func (c *Cluster) Update(n Node) error {
	i, ok := c.byName[n.Name]
	if !ok {
		return &nodeError{node: n.Name, err: ErrUnknownNode, hint: "build a new Cluster to add nodes"}
	}
	old := &c.nodes[i]
	if !old.Ready {
		if c.notReady[stateName(old.State)]--; c.notReady[stateName(old.State)] == 0 {
			delete(c.notReady, stateName(old.State))
		}
	}
	oldLabels, oldRuns := old.Labels, old.Workloads
	for k, v := range oldLabels {
		c.labels[label{k, v}].clear(i)
	}
	for _, w := range oldRuns {
		c.runs[w].clear(i)
	}
	n.Labels, n.Workloads = maps.Clone(n.Labels), slices.Clone(n.Workloads)
	c.nodes[i] = n
	c.add(i)
	// A label or workload name no node has any more loses its set, so that
	// a Cluster kept for a server's lifetime does not hold one set per
	// workload name ever run. A set the node is still in is kept without
	// a look at the others.
	for k, v := range oldLabels {
		dropIfEmpty(c.labels, label{k, v}, i)
	}
	for _, w := range oldRuns {
		dropIfEmpty(c.runs, w, i)
	}
	return nil
}

// dropIfEmpty deletes key's set if it is empty; node i was just updated.
func dropIfEmpty[K comparable](sets map[K]bitset, key K, i int) {
	if s, ok := sets[key]; ok && !s.has(i) && s.empty() {
		delete(sets, key)
	}
}

// add indexes node i.
func (c *Cluster) add(i int) {
	n := &c.nodes[i]
	f := fit{
		freeCPU: free(n.Headroom.CPUMillis, n.Reserved.CPUMillis), sizeCPU: size(n.Capacity.CPUMillis, n.Headroom.CPUMillis),
		freeMem: free(n.Headroom.MemoryMB, n.Reserved.MemoryMB), sizeMem: size(n.Capacity.MemoryMB, n.Headroom.MemoryMB),
	}
	f.invSizeCPU, f.invSizeMem = reciprocal(f.sizeCPU), reciprocal(f.sizeMem)
	c.fits[i] = f
	if n.Ready {
		c.ready.set(i)
	} else {
		c.ready.clear(i)
		c.notReady[stateName(n.State)]++
	}
	for k, v := range n.Labels {
		setIn(c, c.labels, label{k, v}, i)
	}
	for _, w := range n.Workloads {
		setIn(c, c.runs, w, i)
	}
}

func setIn[K comparable](c *Cluster, sets map[K]bitset, key K, i int) {
	s, ok := sets[key]
	if !ok {
		s = newBitset(len(c.nodes))
		sets[key] = s
	}
	s.set(i)
}

// Place is the function Place on the Cluster's nodes.
func (c *Cluster) Place(req Request) (Decision, error) {
	return c.place(req, MaxCandidates, MaxExampleNodes)
}

// Plan is the function Plan on the Cluster's nodes.
func (c *Cluster) Plan(req Request) (Decision, error) {
	return c.place(req, all, all)
}

func (c *Cluster) place(req Request, maxCandidates, maxNames int) (Decision, error) {
	if err := ValidateRequest(req); err != nil {
		return Decision{}, err
	}
	var p plan
	p.init(req)
	d := Decision{Strategy: p.strategy}
	if len(c.nodes) == 0 {
		return d, &noFitError{workload: req.Workload, reasons: d.Explain()}
	}
	rejected := rejectedNodes{nodes: c.nodes, maxNames: maxNames, inNameOrder: true}

	// The constraint filters, in pipeline order, each on the nodes that
	// passed the ones before.
	remaining := slices.Clone(c.all)
	out := newBitset(len(c.nodes)) // the nodes a filter eliminates
	rejected.addSet(fNodeState, remaining.cut(c.ready, true, out))
	for state, n := range c.notReady {
		rejected.states = append(rejected.states, stateCount{state, n})
	}
	if p.active[fAllowed] {
		rejected.addSet(fAllowed, remaining.cut(c.named(req.Constraints.Nodes), true, out))
	}
	if p.active[fDenied] {
		rejected.addSet(fDenied, remaining.cut(c.named(req.Constraints.AvoidNodes), false, out))
	}
	if p.active[fLabels] {
		rejected.addSet(fLabels, remaining.cut(c.labelled(p.labels), true, out))
	}
	if p.active[fAnti] {
		running := newBitset(len(c.nodes))
		for _, w := range req.Constraints.AntiAffinity {
			running.or(c.runs[w])
		}
		rejected.addSet(fAnti, remaining.cut(running, false, out))
		for _, w := range req.Constraints.AntiAffinity {
			if out.intersects(c.runs[w]) && !slices.Contains(rejected.antiFound, w) {
				rejected.antiFound = append(rejected.antiFound, w)
			}
		}
	}

	// The resource filters and the scorer, node by node.
	needCPU, needMem := p.req.Resources.CPUMillis, p.req.Resources.MemoryMB
	best := ranking{nodes: c.nodes, limit: maxCandidates}
	cutoff := best.cutoff()
	for w, word := range remaining {
		for ; word != 0; word &= word - 1 {
			i := w*64 + bits.TrailingZeros64(word)
			f := &c.fits[i]
			switch {
			case f.freeCPU < needCPU:
				rejected.lacks(fCPU, i, f.freeCPU)
			case f.freeMem < needMem:
				rejected.lacks(fMemory, i, f.freeMem)
			default:
				d.Feasible++
				if units, ok := p.clusterUnits(f, cutoff); ok {
					best.offer(units, i)
					cutoff = best.cutoff()
				}
			}
		}
	}

	return finish(d, &p, &best, &rejected)
}

// named returns the set of the Cluster's nodes among names.
func (c *Cluster) named(names []string) bitset {
	s := newBitset(len(c.nodes))
	for _, n := range names {
		if i, ok := c.byName[n]; ok {
			s.set(i)
		}
	}
	return s
}

// labelled returns the set of nodes that carry every label.
func (c *Cluster) labelled(labels []label) bitset {
	s := slices.Clone(c.all)
	for _, l := range labels {
		s.and(c.labels[l]) // a label no node carries is a nil set: none match
	}
	return s
}

// addSet records that filter f eliminated the nodes in set.
func (r *rejectedNodes) addSet(f filterID, set bitset) {
	for w, word := range set {
		r.counts[f] += bits.OnesCount64(word)
		if r.maxNames != all && len(r.names[f]) >= r.maxNames {
			continue
		}
		for ; word != 0; word &= word - 1 {
			r.keepName(f, uint32(w*64+bits.TrailingZeros64(word)))
		}
	}
}

// bitset is a set of node indexes, 64 to a word.
type bitset []uint64

func newBitset(n int) bitset { return make(bitset, (n+63)/64) }

func (s bitset) set(i int)      { s[i/64] |= 1 << (i % 64) }
func (s bitset) clear(i int)    { s[i/64] &^= 1 << (i % 64) }
func (s bitset) has(i int) bool { return s[i/64]&(1<<(i%64)) != 0 }

func (s bitset) empty() bool {
	for _, w := range s {
		if w != 0 {
			return false
		}
	}
	return true
}

// or adds t to s; t may be nil (empty).
func (s bitset) or(t bitset) {
	for w := range t {
		s[w] |= t[w]
	}
}

// and keeps in s only what is in t; t may be nil (empty).
func (s bitset) and(t bitset) {
	for w := range s {
		if w < len(t) {
			s[w] &= t[w]
		} else {
			s[w] = 0
		}
	}
}

func (s bitset) intersects(t bitset) bool {
	for w := range min(len(s), len(t)) {
		if s[w]&t[w] != 0 {
			return true
		}
	}
	return false
}

// cut removes from s the members that pass a filter's mask — those in mask
// when keep is false, those not in it when keep is true — writes them to
// out and returns out.
func (s bitset) cut(mask bitset, keep bool, out bitset) bitset {
	for w := range s {
		var m uint64
		if w < len(mask) {
			m = mask[w]
		}
		if keep {
			m = ^m
		}
		out[w] = s[w] & m
		s[w] &^= m
	}
	return out
}

// nodeError is an error about one node.
type nodeError struct {
	node string
	err  error
	hint string
}

func (e *nodeError) Error() string {
	return "node " + strconv.Quote(e.node) + ": " + e.err.Error() + ": " + e.hint
}

func (e *nodeError) Unwrap() error { return e.err }
