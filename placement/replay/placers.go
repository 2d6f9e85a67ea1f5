package replay

import (
	"fmt"
	"math/rand/v2"

	"github.com/batonhq/baton/placement"
)

// Baton places with Baton's placement (a placement.Cluster kept up to date)
// and a strategy.
type Baton struct {
	strategy placement.Strategy
	cluster  *placement.Cluster
	index    map[string]int // node name → index in the replay's nodes
}

// NewBaton returns a placer for the nodes of tr that uses strategy.
func NewBaton(tr Trace, strategy placement.Strategy) (*Baton, error) {
	nodes := make([]placement.Node, len(tr.Nodes))
	index := make(map[string]int, len(tr.Nodes))
	for i, n := range tr.Nodes {
		nodes[i] = placementNode(NodeState{Name: n.Name, Capacity: n.Capacity, Free: n.Capacity})
		index[n.Name] = i
	}
	c, err := placement.NewCluster(nodes)
	if err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	return &Baton{strategy: strategy, cluster: c, index: index}, nil
}

// placementNode is the scheduler's view of a node: its capacity measured
// free, and what the tasks on it ask for reserved.
func placementNode(n NodeState) placement.Node {
	return placement.Node{
		Name: n.Name, Ready: true, State: "running",
		Capacity: n.Capacity, Headroom: n.Capacity,
		Reserved: placement.Resources{
			CPUMillis: n.Capacity.CPUMillis - n.Free.CPUMillis,
			MemoryMB:  n.Capacity.MemoryMB - n.Free.MemoryMB,
		},
	}
}

// Place implements Placer.
func (b *Baton) Place(t Task, _ []NodeState) int {
	d, err := b.cluster.Place(placement.Request{Workload: t.Name, Resources: t.Request, Strategy: b.strategy})
	if err != nil {
		return -1
	}
	return b.index[d.Node]
}

// Changed implements Placer.
func (b *Baton) Changed(_ int, n NodeState) {
	if err := b.cluster.Update(placementNode(n)); err != nil {
		panic(err) // the replay only changes nodes it gave NewBaton
	}
}

// RandomFit places on a node chosen uniformly among those that fit: the
// baseline any placer should beat.
type RandomFit struct {
	rng  *rand.Rand
	fits []int // scratch
}

// NewRandomFit returns a RandomFit placer whose choices depend only on seed.
func NewRandomFit(seed uint64) *RandomFit {
	return &RandomFit{rng: rand.New(rand.NewPCG(seed, seed))}
}

// Place implements Placer.
func (r *RandomFit) Place(t Task, nodes []NodeState) int {
	r.fits = r.fits[:0]
	for i := range nodes {
		if nodes[i].fits(t.Request) {
			r.fits = append(r.fits, i)
		}
	}
	if len(r.fits) == 0 {
		return -1
	}
	return r.fits[r.rng.IntN(len(r.fits))]
}

// Changed implements Placer; RandomFit reads the replay's nodes instead.
func (*RandomFit) Changed(int, NodeState) {}

// BestFit places on the node that fits with the least CPU left over, then
// the least memory, then the first: the classic bin-packing heuristic.
type BestFit struct{}

// Place implements Placer.
func (BestFit) Place(t Task, nodes []NodeState) int {
	best := -1
	for i := range nodes {
		n := &nodes[i]
		if !n.fits(t.Request) {
			continue
		}
		if best < 0 || n.Free.CPUMillis < nodes[best].Free.CPUMillis ||
			n.Free.CPUMillis == nodes[best].Free.CPUMillis && n.Free.MemoryMB < nodes[best].Free.MemoryMB {
			best = i
		}
	}
	return best
}

// Changed implements Placer; BestFit reads the replay's nodes instead.
func (BestFit) Changed(int, NodeState) {}
