package placement

import "errors"

// ErrNoFit is returned (wrapped, with the reasons) when no node passes every filter.
var ErrNoFit = errors.New("no node fits")

// Strategy selects how feasible nodes are scored.
type Strategy string

const (
	// BinPack prefers the node that is fullest after placement, keeping
	// other nodes free for large workloads. The cluster default.
	BinPack Strategy = "binpack"
	// Spread prefers the node that is emptiest after placement.
	Spread Strategy = "spread"
)

// Resources is an amount of CPU (millicores) and memory (MiB).
type Resources struct {
	CPUMillis int64
	MemoryMB  int64
}

// Node is the scheduler's view of one node at decision time.
type Node struct {
	Name     string
	Ready    bool   // the node is in state running; others are filtered out
	State    string // the node's state, for explanations ("suspect", "down", ...)
	Labels   map[string]string
	Capacity Resources // total size
	Headroom Resources // measured free at the last heartbeat
	Reserved Resources // sum of the requests of workloads already placed here
	// Workloads are the names of the workloads placed on the node, for anti-affinity.
	Workloads []string
}

// Constraints restrict where a workload may go.
type Constraints struct {
	Nodes        []string          // if not empty, only these nodes are allowed
	AvoidNodes   []string          // these nodes are denied
	Labels       map[string]string // the node must carry every one of these labels with the same value
	AntiAffinity []string          // names of workloads that must not share a node with this one
}

// Request is a workload asking for a node.
type Request struct {
	Workload    string // the workload's name, for messages and anti-affinity
	Resources   Resources
	Constraints Constraints
	Strategy    Strategy // empty means BinPack
}

// Candidate is a feasible node with its score (higher is better).
type Candidate struct {
	Node  string  `json:"node"`
	Score float64 `json:"score"`
}

// Rejection tells how many nodes one filter eliminated, and which.
type Rejection struct {
	Filter string // e.g. "node-state", "memory", "cpu", "allowed-nodes", "labels", "anti-affinity"
	Count  int    // number of nodes this filter eliminated (each node is counted by the first filter that rejects it)
	// Nodes are their names, sorted: all of them from Plan, the first
	// MaxExampleNodes from Place.
	Nodes  []string
	Reason string // human explanation, e.g. "lack memory (need 2 GiB, best has 1.2 GiB free)"
}

// Decision is the outcome of placing one workload: the chosen node, the
// feasible nodes ranked best first (the best MaxCandidates from Place, all
// from Plan), and every rejection.
type Decision struct {
	Node       string // empty when nothing fits
	Strategy   Strategy
	Feasible   int // how many nodes passed every filter; Candidates may list fewer
	Candidates []Candidate
	Rejections []Rejection
}
