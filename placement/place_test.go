package placement

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// mk is a ready node with capacity = headroom = cpu, mem and nothing reserved.
func mk(name string, cpu, mem int64) Node {
	r := Resources{CPUMillis: cpu, MemoryMB: mem}
	return Node{Name: name, Ready: true, State: "running", Capacity: r, Headroom: r}
}

func with(n Node, f func(*Node)) Node { f(&n); return n }

func down(n *Node) { n.Ready, n.State = false, "down" }

func TestFilters(t *testing.T) {
	small := Resources{CPUMillis: 500, MemoryMB: 512}
	tests := []struct {
		name     string
		nodes    []Node
		req      Request
		want     string   // chosen node
		feasible []string // candidate names, in rank order
		filter   string   // the one rejection expected ("" for none)
		rejected []string
		reason   string
	}{
		{
			name:     "node-state single state",
			nodes:    []Node{mk("a", 4000, 4096), with(mk("b", 4000, 4096), down)},
			req:      Request{Workload: "w", Resources: small},
			want:     "a",
			feasible: []string{"a"},
			filter:   FilterNodeState, rejected: []string{"b"}, reason: "is down",
		},
		{
			name: "node-state mixed states",
			nodes: []Node{
				mk("a", 4000, 4096),
				with(mk("b", 4000, 4096), down),
				with(mk("c", 4000, 4096), func(n *Node) { n.Ready, n.State = false, "suspect" }),
				with(mk("d", 4000, 4096), down),
			},
			req:      Request{Workload: "w", Resources: small},
			want:     "a",
			feasible: []string{"a"},
			filter:   FilterNodeState, rejected: []string{"b", "c", "d"}, reason: "are not ready (2 down, 1 suspect)",
		},
		{
			name: "node-state without a state",
			nodes: []Node{
				mk("a", 4000, 4096),
				with(mk("b", 4000, 4096), func(n *Node) { n.Ready, n.State = false, "" }),
			},
			req:      Request{Workload: "w", Resources: small},
			want:     "a",
			feasible: []string{"a"},
			filter:   FilterNodeState, rejected: []string{"b"}, reason: "is not ready",
		},
		{
			name:     "allowed-nodes",
			nodes:    []Node{mk("a", 4000, 4096), mk("b", 4000, 4096), mk("c", 4000, 4096)},
			req:      Request{Workload: "w", Resources: small, Constraints: Constraints{Nodes: []string{"b", "zz"}}},
			want:     "b",
			feasible: []string{"b"},
			filter:   FilterAllowedNodes, rejected: []string{"a", "c"}, reason: "are not in the workload's node list",
		},
		{
			name:     "allowed-nodes, long list uses a set",
			nodes:    []Node{mk("a", 4000, 4096), mk("b", 4000, 4096), mk("c", 4000, 4096)},
			req:      Request{Workload: "w", Resources: small, Constraints: Constraints{Nodes: []string{"1", "2", "3", "4", "5", "6", "7", "8", "9", "c"}}},
			want:     "c",
			feasible: []string{"c"},
			filter:   FilterAllowedNodes, rejected: []string{"a", "b"}, reason: "are not in the workload's node list",
		},
		{
			name:     "denied-nodes",
			nodes:    []Node{mk("a", 4000, 4096), mk("b", 4000, 4096)},
			req:      Request{Workload: "w", Resources: small, Constraints: Constraints{AvoidNodes: []string{"a"}}},
			want:     "b",
			feasible: []string{"b"},
			filter:   FilterDeniedNodes, rejected: []string{"a"}, reason: "is in the workload's avoid list",
		},
		{
			name: "labels must all match exactly",
			nodes: []Node{
				with(mk("a", 4000, 4096), func(n *Node) { n.Labels = map[string]string{"zone": "eu-1", "disk": "ssd"} }),
				with(mk("b", 4000, 4096), func(n *Node) { n.Labels = map[string]string{"zone": "eu-1"} }),
				with(mk("c", 4000, 4096), func(n *Node) { n.Labels = map[string]string{"zone": "eu-2", "disk": "ssd"} }),
				mk("d", 4000, 4096),
			},
			req:      Request{Workload: "w", Resources: small, Constraints: Constraints{Labels: map[string]string{"zone": "eu-1", "disk": "ssd"}}},
			want:     "a",
			feasible: []string{"a"},
			filter:   FilterLabels, rejected: []string{"b", "c", "d"}, reason: "do not have labels disk=ssd and zone=eu-1",
		},
		{
			name: "anti-affinity",
			nodes: []Node{
				with(mk("a", 4000, 4096), func(n *Node) { n.Workloads = []string{"db", "web"} }),
				with(mk("b", 4000, 4096), func(n *Node) { n.Workloads = []string{"cache"} }),
				mk("c", 4000, 4096),
			},
			req:      Request{Workload: "w", Resources: small, Constraints: Constraints{AntiAffinity: []string{"web", "api"}}},
			want:     "b",
			feasible: []string{"b", "c"},
			filter:   FilterAntiAffinity, rejected: []string{"a"}, reason: `already runs "web" (anti-affinity)`,
		},
		{
			name: "anti-affinity is not symmetric",
			nodes: []Node{
				// a runs db; db may have asked to avoid w, but w did not ask to avoid db.
				with(mk("a", 4000, 4096), func(n *Node) { n.Workloads = []string{"db"} }),
			},
			req:      Request{Workload: "w", Resources: small, Constraints: Constraints{AntiAffinity: []string{"web"}}},
			want:     "a",
			feasible: []string{"a"},
		},
		{
			name:     "cpu",
			nodes:    []Node{mk("a", 250, 4096), mk("b", 400, 4096), mk("c", 1000, 4096)},
			req:      Request{Workload: "w", Resources: small},
			want:     "c",
			feasible: []string{"c"},
			filter:   FilterCPU, rejected: []string{"a", "b"}, reason: "lack CPU (need 0.5 CPU, best has 0.4 CPU free)",
		},
		{
			name:     "memory",
			nodes:    []Node{mk("a", 4000, 1229), mk("b", 4000, 4096)},
			req:      Request{Workload: "w", Resources: Resources{CPUMillis: 100, MemoryMB: 2048}},
			want:     "b",
			feasible: []string{"b"},
			filter:   FilterMemory, rejected: []string{"a"}, reason: "lacks memory (need 2 GiB, has 1.2 GiB free)",
		},
		{
			name:     "memory amounts that round alike are shown in MiB",
			nodes:    []Node{mk("a", 4000, 2047), mk("b", 4000, 2040), mk("c", 4000, 4096)},
			req:      Request{Workload: "w", Resources: Resources{MemoryMB: 2048}},
			want:     "c",
			feasible: []string{"c"},
			filter:   FilterMemory, rejected: []string{"a", "b"}, reason: "lack memory (need 2048 MiB, best has 2047 MiB free)",
		},
		{
			name: "reserved above headroom clamps free to zero",
			nodes: []Node{
				with(mk("a", 4000, 4096), func(n *Node) { n.Reserved = Resources{CPUMillis: 9000, MemoryMB: 100} }),
				mk("b", 4000, 4096),
			},
			req:      Request{Workload: "w", Resources: Resources{CPUMillis: 1, MemoryMB: 1}},
			want:     "b",
			feasible: []string{"b"},
			filter:   FilterCPU, rejected: []string{"a"}, reason: "lacks CPU (need 0.001 CPU, has 0 CPU free)",
		},
		{
			name: "a zero request fits an over-reserved node",
			nodes: []Node{
				with(mk("a", 4000, 4096), func(n *Node) { n.Reserved = Resources{CPUMillis: 9000, MemoryMB: 9000} }),
			},
			req:      Request{Workload: "w"},
			want:     "a",
			feasible: []string{"a"},
		},
		{
			name: "a node is counted by the first filter that rejects it",
			nodes: []Node{
				// down, not allowed, unlabelled and too small: node-state wins.
				with(mk("a", 1, 1), down),
				// allowed but avoided and too small: denied-nodes wins.
				mk("b", 1, 1),
				// too small in both: cpu wins.
				mk("c", 1, 1),
			},
			req: Request{Workload: "w", Resources: small, Constraints: Constraints{
				Nodes: []string{"b", "c"}, AvoidNodes: []string{"b"},
			}},
			filter: FilterNodeState, rejected: []string{"a"}, reason: "is down",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := Place(tt.nodes, tt.req)
			checkInvariants(t, tt.nodes, tt.req, d, err, false)
			if d.Node != tt.want {
				t.Errorf("Node = %q, want %q (err %v)", d.Node, tt.want, err)
			}
			var names []string
			for _, c := range d.Candidates {
				names = append(names, c.Node)
			}
			if !slices.Equal(names, tt.feasible) {
				t.Errorf("candidates = %v, want %v", names, tt.feasible)
			}
			if tt.filter == "" {
				if len(d.Rejections) != 0 {
					t.Errorf("rejections = %+v, want none", d.Rejections)
				}
				return
			}
			r := d.Rejections[0]
			if r.Filter != tt.filter || !slices.Equal(r.Nodes, tt.rejected) || r.Reason != tt.reason {
				t.Errorf("first rejection = %+v,\nwant filter %s nodes %v reason %q", r, tt.filter, tt.rejected, tt.reason)
			}
		})
	}
}

func TestScorers(t *testing.T) {
	// After placing 1 CPU and 1 GiB: a is 3/4 full in both, b 1/2 full in CPU
	// and 1/4 in memory, c (capacity unknown, headroom 8 CPU / 8 GiB)
	// 1/8 full in both.
	nodes := []Node{
		with(mk("a", 4000, 4096), func(n *Node) { n.Reserved = Resources{CPUMillis: 2000, MemoryMB: 2048} }),
		with(mk("b", 4000, 8192), func(n *Node) { n.Reserved = Resources{CPUMillis: 1000, MemoryMB: 1024} }),
		with(mk("c", 8000, 8192), func(n *Node) { n.Capacity = Resources{} }),
	}
	req := Request{Workload: "w", Resources: Resources{CPUMillis: 1000, MemoryMB: 1024}}
	tests := []struct {
		name     string
		strategy Strategy
		want     []Candidate
	}{
		{"empty strategy is binpack", "", []Candidate{{"a", 75}, {"b", 37.5}, {"c", 12.5}}},
		{"binpack prefers the fullest", BinPack, []Candidate{{"a", 75}, {"b", 37.5}, {"c", 12.5}}},
		{"spread prefers the emptiest", Spread, []Candidate{{"c", 87.5}, {"b", 62.5}, {"a", 25}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := req
			req.Strategy = tt.strategy
			d, err := Place(nodes, req)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(d.Candidates, tt.want) {
				t.Errorf("candidates = %v, want %v", d.Candidates, tt.want)
			}
			if d.Node != tt.want[0].Node {
				t.Errorf("Node = %q, want %q", d.Node, tt.want[0].Node)
			}
		})
	}
}

func TestScoreEdges(t *testing.T) {
	tests := []struct {
		name      string
		node      Node
		strategy  Strategy
		wantScore float64
	}{
		{"headroom above capacity counts as empty", with(mk("a", 4000, 4096), func(n *Node) { n.Headroom = Resources{CPUMillis: 9000, MemoryMB: 9000} }), Spread, 100},
		{"zero size counts as full for binpack", with(mk("a", 0, 0), func(n *Node) {}), BinPack, 100},
		{"zero size counts as full for spread", with(mk("a", 0, 0), func(n *Node) {}), Spread, 0},
		{"thirds truncate to four places", mk("a", 3000, 3072), BinPack, 33.3333},
		{"huge nodes", mk("a", 1<<62, 1<<62), Spread, 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := Request{Workload: "w", Strategy: tt.strategy}
			if tt.name == "thirds truncate to four places" {
				req.Resources = Resources{CPUMillis: 1000, MemoryMB: 1024}
			}
			d, err := Place([]Node{tt.node}, req)
			if err != nil {
				t.Fatal(err)
			}
			if got := d.Candidates[0].Score; got != tt.wantScore {
				t.Errorf("score = %v, want %v", got, tt.wantScore)
			}
		})
	}
}

func TestTieBreak(t *testing.T) {
	// Identical nodes, given out of order, in both the small and the radix
	// sort paths: equal scores rank by name.
	for _, n := range []int{5, 600} {
		nodes := randomCluster(newRand(9), n, true)
		for i := range nodes {
			r := Resources{CPUMillis: 4000, MemoryMB: 4096}
			nodes[i] = Node{Name: nodes[i].Name, Ready: true, Capacity: r, Headroom: r}
		}
		d, err := Place(nodes, Request{Workload: "w", Resources: Resources{CPUMillis: 1000, MemoryMB: 1024}})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.IsSortedFunc(d.Candidates, func(a, b Candidate) int { return strings.Compare(a.Node, b.Node) }) {
			t.Errorf("%d nodes: equal scores not ranked by name: %v", n, d.Candidates[:5])
		}
		if d.Node != "node-00000" {
			t.Errorf("%d nodes: Node = %q, want node-00000", n, d.Node)
		}
	}
}

func TestNoFit(t *testing.T) {
	tests := []struct {
		name    string
		nodes   []Node
		req     Request
		wantErr string
	}{
		{
			name:    "empty cluster",
			req:     Request{Workload: "web", Resources: Resources{CPUMillis: 100}},
			wantErr: `workload "web": no node fits: no nodes in the cluster`,
		},
		{
			name: "mixed reasons, biggest first",
			nodes: []Node{
				mk("a", 4000, 1229), mk("b", 4000, 1000), mk("c", 4000, 512),
				with(mk("d", 4000, 8192), down),
			},
			req:     Request{Workload: "web", Resources: Resources{CPUMillis: 500, MemoryMB: 2048}},
			wantErr: `workload "web": no node fits: 3 nodes lack memory (need 2 GiB, best has 1.2 GiB free), 1 node is down`,
		},
		{
			name:    "no workload name",
			nodes:   []Node{mk("a", 100, 100)},
			req:     Request{Resources: Resources{CPUMillis: 1500}},
			wantErr: `no node fits: 1 node lacks CPU (need 1.5 CPU, has 0.1 CPU free)`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := Place(tt.nodes, tt.req)
			if !errors.Is(err, ErrNoFit) {
				t.Fatalf("err = %v, want ErrNoFit", err)
			}
			if err.Error() != tt.wantErr {
				t.Errorf("err =\n  %s\nwant\n  %s", err, tt.wantErr)
			}
			if d.Node != "" || len(d.Candidates) != 0 {
				t.Errorf("decision %+v has a node", d)
			}
			checkInvariants(t, tt.nodes, tt.req, d, err, false)
		})
	}
}

func TestInvalidRequest(t *testing.T) {
	tests := []struct {
		name    string
		req     Request
		wantErr string
	}{
		{
			name:    "unknown strategy",
			req:     Request{Workload: "web", Strategy: "fastest"},
			wantErr: `workload "web": invalid placement request: unknown strategy "fastest"; use "binpack" or "spread" (empty means "binpack")`,
		},
		{
			name:    "negative resources",
			req:     Request{Workload: "web", Resources: Resources{CPUMillis: -5, MemoryMB: -1}},
			wantErr: `workload "web": invalid placement request: cpu request is negative (-5m); ask for 0 or more millicores; memory request is negative (-1 MiB); ask for 0 or more MiB`,
		},
		{
			name: "empty names",
			req: Request{Workload: "web", Constraints: Constraints{
				Nodes: []string{""}, AvoidNodes: []string{""}, Labels: map[string]string{"": "x"}, AntiAffinity: []string{""},
			}},
			wantErr: `workload "web": invalid placement request: the node list has an empty node name; the avoid list has an empty node name; a label constraint has an empty key; the anti-affinity list has an empty workload name`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := ValidateRequest(tt.req); err == nil || err.Error() != tt.wantErr {
				t.Errorf("ValidateRequest = %v, want %s", err, tt.wantErr)
			}
			d, err := Place([]Node{mk("a", 4000, 4096)}, tt.req)
			if !errors.Is(err, ErrInvalidRequest) || errors.Is(err, ErrNoFit) {
				t.Fatalf("Place err = %v, want ErrInvalidRequest and not ErrNoFit", err)
			}
			if err.Error() != tt.wantErr {
				t.Errorf("Place err =\n  %s\nwant\n  %s", err, tt.wantErr)
			}
			if d.Node != "" {
				t.Errorf("Node = %q on an invalid request", d.Node)
			}
		})
	}
	t.Run("valid", func(t *testing.T) {
		if err := ValidateRequest(realisticRequest(Spread)); err != nil {
			t.Error(err)
		}
	})
}

func TestExplain(t *testing.T) {
	tests := []struct {
		name string
		d    Decision
		want string
	}{
		{"empty", Decision{}, "no nodes in the cluster"},
		{"all fit", Decision{Node: "a", Candidates: []Candidate{{"a", 1}}}, "no node was rejected"},
		{"equal counts keep pipeline order", Decision{Rejections: []Rejection{
			{Filter: FilterNodeState, Count: 2, Reason: "are down"},
			{Filter: FilterLabels, Count: 2, Reason: "do not have label zone=a"},
			{Filter: FilterMemory, Count: 5, Reason: "lack memory (need 1 GiB, best has 512 MiB free)"},
		}}, "5 nodes lack memory (need 1 GiB, best has 512 MiB free), 2 nodes are down, 2 nodes do not have label zone=a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.d.Explain(); got != tt.want {
				t.Errorf("Explain() =\n  %s\nwant\n  %s", got, tt.want)
			}
		})
	}
}

func TestFormat(t *testing.T) {
	tests := []struct {
		name string
		got  string
		want string
	}{
		{"whole CPUs", formatCPU(2000), "2 CPU"},
		{"quarter CPU", formatCPU(250), "0.25 CPU"},
		{"millicore", formatCPU(1), "0.001 CPU"},
		{"CPU and a half", formatCPU(1500), "1.5 CPU"},
		{"negative CPU", formatCPU(-250), "-0.25 CPU"},
		{"MiB", formatMemory(512), "512 MiB"},
		{"GiB", formatMemory(2048), "2 GiB"},
		{"fractional GiB", formatMemory(1229), "1.2 GiB"},
		{"TiB", formatMemory(3 << 20), "3 TiB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %q, want %q", tt.got, tt.want)
			}
		})
	}
}

func TestPlaceDoesNotModifyInput(t *testing.T) {
	nodes := randomCluster(newRand(5), 500, true)
	before := slices.Clone(nodes)
	req := realisticRequest(BinPack)
	req.Constraints.AntiAffinity = []string{"web", "db"}
	if _, err := Place(nodes, req); err != nil {
		t.Fatal(err)
	}
	for i := range nodes {
		if nodes[i].Name != before[i].Name || !slices.Equal(nodes[i].Workloads, before[i].Workloads) {
			t.Fatalf("node %d changed", i)
		}
	}
	if !slices.Equal(req.Constraints.AntiAffinity, []string{"web", "db"}) {
		t.Fatalf("request changed: %v", req.Constraints.AntiAffinity)
	}
}

func TestFiltersOrder(t *testing.T) {
	want := []string{FilterNodeState, FilterAllowedNodes, FilterDeniedNodes, FilterLabels, FilterAntiAffinity, FilterCPU, FilterMemory}
	if got := Filters(); !slices.Equal(got, want) {
		t.Errorf("Filters() = %v, want %v", got, want)
	}
}
