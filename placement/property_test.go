package placement

import (
	"errors"
	"math"
	"math/big"
	"math/rand/v2"
	"strconv"
	"testing"
)

// TestPlaceMatchesReference places random requests on random clusters and
// compares every Plan with naivePlace (same chosen node, same ranked
// candidates and scores, same rejections) and every Place with Plan cut to
// Place's limits; and checks the invariants.
func TestPlaceMatchesReference(t *testing.T) {
	const rounds = 3000
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range rounds {
		var nodes []Node
		switch {
		case round%10 == 0:
			// Far more nodes than Place keeps candidates and names.
			nodes = randomCluster(rng, 256+rng.IntN(1500), round%20 == 0)
		case round%10 == 1:
			nodes = randomCluster(rng, rng.IntN(40), rng.IntN(2) == 0)
		case round%10 == 2:
			// Edge cases with unique names, which a Cluster needs.
			nodes = awkwardCluster(rng, rng.IntN(150))
			for i := range nodes {
				nodes[i].Name = "n" + strconv.Itoa(i)
			}
		default:
			nodes = awkwardCluster(rng, rng.IntN(30))
		}
		placeAndPlan(t, nodes, randomRequest(rng))
	}
}

// TestClusterUpdate changes nodes of a Cluster one at a time (resources,
// state, labels, workloads) and checks after each change that the Cluster
// decides as the functions do on the changed nodes.
func TestClusterUpdate(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for range 20 {
		nodes := randomCluster(rng, 100+rng.IntN(200), true)
		c, err := NewCluster(nodes)
		if err != nil {
			t.Fatal(err)
		}
		for range 50 {
			i := rng.IntN(len(nodes))
			changed := randomCluster(rng, 1, false)[0]
			changed.Name = nodes[i].Name
			nodes[i] = changed
			if err := c.Update(changed); err != nil {
				t.Fatal(err)
			}
			req := randomRequest(rng)
			place, placeErr := Place(nodes, req)
			plan, planErr := Plan(nodes, req)
			checkCluster(t, c, req, place, placeErr, plan, planErr)
		}
	}
}

// TestClusterForgetsEmptySets updates a node through many workload names
// and label values, as a long-lived server's Cluster sees them come and go:
// the Cluster keeps sets only for the names and labels some node has now.
func TestClusterForgetsEmptySets(t *testing.T) {
	nodes := []Node{mk("a", 1000, 1000), mk("b", 1000, 1000)}
	nodes[1].Workloads, nodes[1].Labels = []string{"db"}, map[string]string{"zone": "z1"}
	c, err := NewCluster(nodes)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 1000 {
		n := mk("a", 1000, 1000)
		id := strconv.Itoa(i)
		n.Workloads, n.Labels = []string{"db", "job-" + id}, map[string]string{"zone": "z1", "boot": id}
		if err := c.Update(n); err != nil {
			t.Fatal(err)
		}
	}
	// b's and a's current sets, nothing of a's earlier ones.
	if len(c.runs) != 2 || len(c.labels) != 2 {
		t.Errorf("after 1,000 updates the Cluster holds %d workload sets and %d label sets, want 2 and 2", len(c.runs), len(c.labels))
	}
	for w, want := range map[string]string{"db": "", "job-999": "b", "job-998": "a"} {
		d, _ := c.Place(Request{Workload: "x", Constraints: Constraints{AntiAffinity: []string{w}}})
		if d.Node != want {
			t.Errorf("anti-affinity with %s placed on %q, want %q", w, d.Node, want)
		}
	}
}

func TestClusterErrors(t *testing.T) {
	if _, err := NewCluster([]Node{mk("a", 1, 1), mk("b", 1, 1), mk("a", 2, 2)}); !errors.Is(err, ErrDuplicateNode) ||
		err.Error() != `node "a": duplicate node name: give every node its own name` {
		t.Errorf("NewCluster with a repeated name: %v", err)
	}
	c, err := NewCluster([]Node{mk("a", 1, 1)})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Update(mk("b", 1, 1)); !errors.Is(err, ErrUnknownNode) ||
		err.Error() != `node "b": unknown node: build a new Cluster to add nodes` {
		t.Errorf("Update of a node not in the cluster: %v", err)
	}
	if n, ok := c.Node("a"); !ok || n.Capacity.CPUMillis != 1 || c.Len() != 1 {
		t.Errorf("Node(a) = %+v, %v; Len = %d", n, ok, c.Len())
	}
	if _, ok := c.Node("b"); ok {
		t.Error("Node(b) found a node that is not there")
	}
}

// awkwardCluster makes small clusters full of edge cases: few distinct
// sizes and names (so ties and duplicate names), zero capacities, headroom
// above capacity, reservations above headroom, negative and huge numbers.
func awkwardCluster(rng *rand.Rand, n int) []Node {
	nodes := make([]Node, n)
	for i := range nodes {
		nodes[i] = Node{
			Name:     "n" + strconv.Itoa(rng.IntN(n+n/4+1)),
			Ready:    rng.IntN(6) != 0,
			State:    []string{"running", "down", "suspect", ""}[rng.IntN(4)],
			Capacity: Resources{CPUMillis: awkwardAmount(rng), MemoryMB: awkwardAmount(rng)},
			Headroom: Resources{CPUMillis: awkwardAmount(rng), MemoryMB: awkwardAmount(rng)},
			Reserved: Resources{CPUMillis: awkwardAmount(rng) / 2, MemoryMB: awkwardAmount(rng) / 2},
		}
		if rng.IntN(3) != 0 {
			nodes[i].Labels = map[string]string{"zone": []string{"a", "b"}[rng.IntN(2)]}
			if rng.IntN(2) == 0 {
				nodes[i].Labels["disk"] = "ssd"
			}
		}
		for range rng.IntN(4) {
			nodes[i].Workloads = append(nodes[i].Workloads, workloadNames[rng.IntN(4)])
		}
	}
	return nodes
}

func awkwardAmount(rng *rand.Rand) int64 {
	switch rng.IntN(20) {
	case 0:
		return 0
	case 1:
		return -int64(rng.IntN(100))
	case 2:
		return math.MaxInt64 - int64(rng.IntN(3))
	case 3:
		return int64(rng.Uint64() >> 1)
	default:
		return int64(rng.IntN(16)) * 100
	}
}

func randomRequest(rng *rand.Rand) Request {
	req := Request{
		Workload:  workloadNames[rng.IntN(len(workloadNames))],
		Resources: Resources{CPUMillis: int64(rng.IntN(12)) * 100, MemoryMB: int64(rng.IntN(12)) * 256},
		Strategy:  []Strategy{"", BinPack, Spread}[rng.IntN(3)],
	}
	switch rng.IntN(40) {
	case 0:
		req.Resources.CPUMillis = -1
	case 1:
		req.Strategy = "fastest"
	case 2:
		req.Resources.MemoryMB = math.MaxInt64
	}
	pick := func(max int) []string {
		var out []string
		for range rng.IntN(max + 1) {
			// Names of both cluster kinds; beyond maxScannedSet the set is a map.
			if rng.IntN(2) == 0 {
				out = append(out, "n"+strconv.Itoa(rng.IntN(30)))
			} else {
				out = append(out, "node-"+strconv.Itoa(100000 + rng.IntN(40))[1:])
			}
		}
		return out
	}
	if rng.IntN(3) == 0 {
		req.Constraints.Nodes = pick(12)
	}
	if rng.IntN(3) == 0 {
		req.Constraints.AvoidNodes = pick(12)
	}
	if rng.IntN(3) == 0 {
		req.Constraints.Labels = map[string]string{"zone": []string{"a", "b", "eu-1"}[rng.IntN(3)]}
		if rng.IntN(2) == 0 {
			req.Constraints.Labels["disk"] = "ssd"
		}
	}
	if rng.IntN(3) == 0 {
		req.Constraints.AntiAffinity = append(req.Constraints.AntiAffinity, workloadNames[rng.IntN(4)])
		if rng.IntN(4) == 0 {
			req.Constraints.AntiAffinity = append(req.Constraints.AntiAffinity, workloadNames...)
			req.Constraints.AntiAffinity = append(req.Constraints.AntiAffinity, "x", "y")
		}
	}
	return req
}

// TestScoreExact checks the fast scoring path against exact arithmetic on
// values built to sit on or near integer boundaries.
func TestScoreExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	sizes := []int64{1, 3, 7, 10, 16, 100, 1000, 1024, 16000, 65536, 1 << 40, math.MaxInt64}
	for range 50000 {
		b1 := sizes[rng.IntN(len(sizes))]
		b2 := sizes[rng.IntN(len(sizes))]
		a1, a2 := rng.Int64N(b1+boolInt(b1 < math.MaxInt64)), rng.Int64N(b2+boolInt(b2 < math.MaxInt64))
		got := meanUnits(a1, b1, a2, b2)
		want := exactMeanUnits(uint64(a1), uint64(b1), uint64(a2), uint64(b2))
		if got != want {
			t.Fatalf("meanUnits(%d/%d, %d/%d) = %d, exact %d", a1, b1, a2, b2, got, want)
		}
		// A Cluster multiplies by reciprocals instead of dividing.
		if got := meanUnitsNear(float64(a1)*reciprocal(b1)+float64(a2)*reciprocal(b2), a1, b1, a2, b2); got != want {
			t.Fatalf("meanUnitsNear(%d/%d, %d/%d) with reciprocals = %d, exact %d", a1, b1, a2, b2, got, want)
		}
		r := new(big.Rat).Add(big.NewRat(a1, b1), big.NewRat(a2, b2))
		r.Mul(r, big.NewRat(maxScore/2, 1))
		if ref := new(big.Int).Quo(r.Num(), r.Denom()); ref.Int64() != int64(want) {
			t.Fatalf("exactMeanUnits(%d/%d, %d/%d) = %d, big.Rat says %v", a1, b1, a2, b2, want, ref)
		}
	}
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}
