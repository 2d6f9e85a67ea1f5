package replay

import (
	"cmp"
	"slices"

	"github.com/batonhq/baton/placement"
)

// Placer chooses nodes for tasks. Replay tells it of every change to a
// node's free resources, including its own placements.
type Placer interface {
	// Place returns the index in nodes of the node for t, or -1 if no node
	// can take it. nodes are the replay's current state; read only.
	Place(t Task, nodes []NodeState) int
	// Changed tells the placer node i is now n.
	Changed(i int, n NodeState)
}

// NodeState is a node during a replay.
type NodeState struct {
	Name     string
	Capacity placement.Resources
	Free     placement.Resources
}

func (n NodeState) fits(r placement.Resources) bool {
	return n.Free.CPUMillis >= r.CPUMillis && n.Free.MemoryMB >= r.MemoryMB
}

// Mode is how the tasks are replayed.
type Mode int

const (
	// InTimeOrder replays arrivals and departures in time order; at equal
	// times departures come first. A task that leaves when it arrives is
	// placed and released at once.
	InTimeOrder Mode = iota
	// Fill submits the tasks in arrival order without departures, the
	// trace repeated, until the tasks submitted ask for as much CPU as the
	// cluster has in all.
	Fill
)

func (m Mode) String() string {
	if m == Fill {
		return "fill"
	}
	return "time-order"
}

// Options tune a replay.
type Options struct {
	Mode Mode
	// Fragmentation measures fragmentation before every arrival (an
	// O(nodes) pass each time, which a run that times placements leaves
	// out).
	Fragmentation bool
}

// Result is what a replay measured.
type Result struct {
	Decisions int // tasks submitted to the placer
	Placed    int // of which placed
	// Fragmentation is the mean over arrivals of the fragmentation the
	// arriving task met (see Fragmentation); zero unless measured.
	Fragmentation float64
	// End is the state after the last event, for Fill the full cluster.
	End []NodeState
}

// PlacedShare is Placed over Decisions.
func (r Result) PlacedShare() float64 {
	if r.Decisions == 0 {
		return 0
	}
	return float64(r.Placed) / float64(r.Decisions)
}

// Replay runs tr through p. The trace's tasks must be in arrival order, as
// ReadTasks returns them.
func Replay(tr Trace, p Placer, opts Options) Result {
	nodes := make([]NodeState, len(tr.Nodes))
	var capacityCPU int64
	for i, n := range tr.Nodes {
		nodes[i] = NodeState{Name: n.Name, Capacity: n.Capacity, Free: n.Capacity}
		capacityCPU += n.Capacity.CPUMillis
	}
	typical := Typical(tr.Tasks)
	var res Result
	var fragSum float64
	move := func(i int, r placement.Resources, sign int64) {
		nodes[i].Free.CPUMillis -= sign * r.CPUMillis
		nodes[i].Free.MemoryMB -= sign * r.MemoryMB
		p.Changed(i, nodes[i])
	}
	// arrive places t and returns its node, or -1.
	arrive := func(t Task) int {
		if opts.Fragmentation {
			fragSum += Fragmentation(nodes, typical)
		}
		res.Decisions++
		i := p.Place(t, nodes)
		if i < 0 {
			return -1
		}
		if !nodes[i].fits(t.Request) {
			panic("replay: placer chose node " + nodes[i].Name + ", which cannot take task " + t.Name)
		}
		res.Placed++
		move(i, t.Request, +1)
		return i
	}

	switch opts.Mode {
	case Fill:
		var asked int64
		for round := 0; len(tr.Tasks) > 0 && asked < capacityCPU; round++ {
			for _, t := range tr.Tasks {
				if asked >= capacityCPU {
					break
				}
				asked += t.Request.CPUMillis
				arrive(t)
			}
			if round > 0 && asked == 0 {
				break // tasks that ask for no CPU never fill the cluster
			}
		}
	default:
		// Departures wait in a list sorted by time (latest first, so the
		// next one is at the end).
		type departure struct {
			at   int64
			node int
			req  placement.Resources
		}
		var pending []departure
		leaveUntil := func(t int64) {
			for len(pending) > 0 && pending[len(pending)-1].at <= t {
				d := pending[len(pending)-1]
				pending = pending[:len(pending)-1]
				move(d.node, d.req, -1)
			}
		}
		for _, t := range tr.Tasks {
			leaveUntil(t.Arrival)
			i := arrive(t)
			switch {
			case i < 0 || t.Departure == NoDeparture:
			case t.Departure <= t.Arrival:
				move(i, t.Request, -1)
			default:
				d := departure{at: t.Departure, node: i, req: t.Request}
				// Among equal times the order does not matter: no
				// decision comes between them.
				j, _ := slices.BinarySearchFunc(pending, d, func(a, b departure) int { return cmp.Compare(b.at, a.at) })
				pending = slices.Insert(pending, j, d)
			}
		}
		leaveUntil(NoDeparture)
	}
	if opts.Fragmentation && res.Decisions > 0 {
		res.Fragmentation = fragSum / float64(res.Decisions)
	}
	res.End = nodes
	return res
}

// Typical is the trace's typical task: the median CPU request and the
// median memory request (the upper median for an even count).
func Typical(tasks []Task) placement.Resources {
	if len(tasks) == 0 {
		return placement.Resources{}
	}
	cpu := make([]int64, len(tasks))
	mem := make([]int64, len(tasks))
	for i, t := range tasks {
		cpu[i], mem[i] = t.Request.CPUMillis, t.Request.MemoryMB
	}
	slices.Sort(cpu)
	slices.Sort(mem)
	return placement.Resources{CPUMillis: cpu[len(cpu)/2], MemoryMB: mem[len(mem)/2]}
}

// Fragmentation is the share of the free CPU that sits on nodes that cannot
// take the typical task (too little free CPU or free memory): 0 when every
// free core is usable for it, 1 when none is; 0 when nothing is free.
func Fragmentation(nodes []NodeState, typical placement.Resources) float64 {
	var free, stranded int64
	for _, n := range nodes {
		free += n.Free.CPUMillis
		if !n.fits(typical) {
			stranded += n.Free.CPUMillis
		}
	}
	if free == 0 {
		return 0
	}
	return float64(stranded) / float64(free)
}

// AllocatedCPU is the share of the cluster's CPU allocated to tasks.
func AllocatedCPU(nodes []NodeState) float64 {
	var capacity, free int64
	for _, n := range nodes {
		capacity += n.Capacity.CPUMillis
		free += n.Free.CPUMillis
	}
	if capacity == 0 {
		return 0
	}
	return float64(capacity-free) / float64(capacity)
}

func sortByArrival(tasks []Task) {
	slices.SortStableFunc(tasks, func(a, b Task) int { return cmp.Compare(a.Arrival, b.Arrival) })
}
