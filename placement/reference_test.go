package placement

import (
	"errors"
	"math/big"
	"math/rand/v2"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// naivePlace is the reference placer: the specification written in the most
// obvious way, with no concern for speed. Scores are exact rationals.
func naivePlace(nodes []Node, req Request) Decision {
	return naivePlaceWith(nodes, req, naiveUnits)
}

// naivePlaceWith is naivePlace with the scorer as a parameter, so that the
// benchmark baseline can score in floating point.
func naivePlaceWith(nodes []Node, req Request, units func(Node, Request, Strategy) int64) Decision {
	strategy := req.Strategy
	if strategy == "" {
		strategy = BinPack
	}
	c := req.Constraints
	rejected := map[string][]string{}
	type scored struct {
		name  string
		units int64
	}
	var feasible []scored
	for _, n := range nodes {
		var filter string
		switch {
		case !n.Ready:
			filter = FilterNodeState
		case len(c.Nodes) > 0 && !slices.Contains(c.Nodes, n.Name):
			filter = FilterAllowedNodes
		case slices.Contains(c.AvoidNodes, n.Name):
			filter = FilterDeniedNodes
		case !naiveLabelsMatch(n.Labels, c.Labels):
			filter = FilterLabels
		case naiveRunsAny(n.Workloads, c.AntiAffinity):
			filter = FilterAntiAffinity
		case naiveFree(n.Headroom.CPUMillis, n.Reserved.CPUMillis) < req.Resources.CPUMillis:
			filter = FilterCPU
		case naiveFree(n.Headroom.MemoryMB, n.Reserved.MemoryMB) < req.Resources.MemoryMB:
			filter = FilterMemory
		}
		if filter != "" {
			rejected[filter] = append(rejected[filter], n.Name)
			continue
		}
		feasible = append(feasible, scored{n.Name, units(n, req, strategy)})
	}
	sort.Slice(feasible, func(i, j int) bool {
		if feasible[i].units != feasible[j].units {
			return feasible[i].units > feasible[j].units
		}
		return feasible[i].name < feasible[j].name
	})
	d := Decision{Strategy: strategy, Feasible: len(feasible)}
	for _, f := range feasible {
		d.Candidates = append(d.Candidates, Candidate{Node: f.name, Score: float64(f.units) / 10000})
	}
	if len(d.Candidates) > 0 {
		d.Node = d.Candidates[0].Node
	}
	for _, f := range []string{FilterNodeState, FilterAllowedNodes, FilterDeniedNodes, FilterLabels, FilterAntiAffinity, FilterCPU, FilterMemory} {
		if names := rejected[f]; len(names) > 0 {
			sort.Strings(names)
			d.Rejections = append(d.Rejections, Rejection{Filter: f, Count: len(names), Nodes: names})
		}
	}
	return d
}

// naiveUnits is the score in units of 1/10000 point, truncated:
// 100 · (cpu + mem) / 2 for the fractions the strategy rewards.
func naiveUnits(n Node, req Request, strategy Strategy) int64 {
	cpu := naiveFraction(n.Headroom.CPUMillis, n.Reserved.CPUMillis, req.Resources.CPUMillis, n.Capacity.CPUMillis, strategy)
	mem := naiveFraction(n.Headroom.MemoryMB, n.Reserved.MemoryMB, req.Resources.MemoryMB, n.Capacity.MemoryMB, strategy)
	score := new(big.Rat).Add(cpu, mem)
	score.Mul(score, big.NewRat(100*10000, 2))
	return new(big.Int).Quo(score.Num(), score.Denom()).Int64() // non-negative, so Quo floors
}

func naiveFree(headroom, reserved int64) int64 {
	if headroom < 0 {
		headroom = 0
	}
	if reserved < 0 {
		reserved = 0
	}
	if reserved > headroom {
		return 0
	}
	return headroom - reserved
}

func naiveLabelsMatch(have, want map[string]string) bool {
	for k, v := range want {
		got, ok := have[k]
		if !ok || got != v {
			return false
		}
	}
	return true
}

func naiveRunsAny(workloads, avoid []string) bool {
	for _, w := range workloads {
		if slices.Contains(avoid, w) {
			return true
		}
	}
	return false
}

// naiveFraction is the fraction of one dimension the strategy rewards: used
// after placement for BinPack, free after placement for Spread, out of the
// capacity (the headroom if the capacity is not positive). A dimension of
// size zero counts as full.
func naiveFraction(headroom, reserved, need, capacity int64, strategy Strategy) *big.Rat {
	size := capacity
	if size <= 0 {
		size = max(headroom, 0)
	}
	if size == 0 {
		if strategy == Spread {
			return big.NewRat(0, 1)
		}
		return big.NewRat(1, 1)
	}
	freeAfter := naiveFree(headroom, reserved) - need
	freeAfter = min(max(freeAfter, 0), size)
	if strategy == Spread {
		return big.NewRat(freeAfter, size)
	}
	return big.NewRat(size-freeAfter, size)
}

// placeAndPlan runs Place and Plan on the same input and checks both: the
// invariants, Place's decision is Plan's cut to its limits, and Plan agrees
// with the reference placer. It returns Plan's decision.
func placeAndPlan(t *testing.T, nodes []Node, req Request) (Decision, error) {
	t.Helper()
	full, fullErr := Plan(nodes, req)
	checkInvariants(t, nodes, req, full, fullErr, true)
	d, err := Place(nodes, req)
	checkInvariants(t, nodes, req, d, err, false)
	if (err == nil) != (fullErr == nil) || err != nil && err.Error() != fullErr.Error() {
		t.Fatalf("Place's error %v, Plan's %v", err, fullErr)
	}
	if diff := sameDecision(d, limited(full)); diff != "" {
		t.Fatalf("%d nodes, request %+v: Place differs from Plan cut to Place's limits: %s", len(nodes), req, diff)
	}
	if ValidateRequest(req) == nil {
		if diff := sameDecision(full, naivePlace(nodes, req)); diff != "" {
			t.Fatalf("%d nodes, request %+v: Plan differs from the reference: %s", len(nodes), req, diff)
		}
	}
	if c, clusterErr := NewCluster(nodes); clusterErr == nil {
		checkCluster(t, c, req, d, err, full, fullErr)
	} else if !errors.Is(clusterErr, ErrDuplicateNode) {
		t.Fatalf("NewCluster: %v", clusterErr)
	}
	return full, fullErr
}

// checkCluster checks that the Cluster's Place and Plan give exactly the
// decisions and errors of the functions Place and Plan on its nodes.
func checkCluster(t *testing.T, c *Cluster, req Request, place Decision, placeErr error, plan Decision, planErr error) {
	t.Helper()
	for _, tc := range []struct {
		name      string
		decide    func(Request) (Decision, error)
		want      Decision
		wantError error
	}{{"Place", c.Place, place, placeErr}, {"Plan", c.Plan, plan, planErr}} {
		got, err := tc.decide(req)
		if !reflect.DeepEqual(got, tc.want) {
			t.Fatalf("Cluster.%s, request %+v:\n got  %+v\n want %+v", tc.name, req, got, tc.want)
		}
		if errorText(err) != errorText(tc.wantError) {
			t.Fatalf("Cluster.%s, request %+v: error %v, want %v", tc.name, req, err, tc.wantError)
		}
	}
}

func errorText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// limited cuts a full decision to what Place returns: the best
// MaxCandidates candidates and the first MaxExampleNodes names per rejection.
func limited(d Decision) Decision {
	d.Candidates = d.Candidates[:min(len(d.Candidates), MaxCandidates)]
	d.Rejections = slices.Clone(d.Rejections)
	for i, r := range d.Rejections {
		d.Rejections[i].Nodes = r.Nodes[:min(len(r.Nodes), MaxExampleNodes)]
	}
	return d
}

// sameDecision compares everything but the rejection reasons, which the
// reference does not write.
func sameDecision(got, want Decision) string {
	if got.Node != want.Node {
		return "node: got " + strconv.Quote(got.Node) + ", want " + strconv.Quote(want.Node)
	}
	if got.Strategy != want.Strategy {
		return "strategy: got " + string(got.Strategy) + ", want " + string(want.Strategy)
	}
	if got.Feasible != want.Feasible {
		return "feasible: got " + strconv.Itoa(got.Feasible) + ", want " + strconv.Itoa(want.Feasible)
	}
	if !slices.Equal(got.Candidates, want.Candidates) {
		return "candidates differ:\n got  " + candidatesString(got.Candidates) + "\n want " + candidatesString(want.Candidates)
	}
	strip := func(rs []Rejection) []string {
		var out []string
		for _, r := range rs {
			out = append(out, r.Filter+":"+strconv.Itoa(r.Count)+":"+strings.Join(r.Nodes, ","))
		}
		return out
	}
	if g, w := strip(got.Rejections), strip(want.Rejections); !slices.Equal(g, w) {
		return "rejections differ:\n got  " + strings.Join(g, " ") + "\n want " + strings.Join(w, " ")
	}
	return ""
}

func candidatesString(cs []Candidate) string {
	var parts []string
	for _, c := range cs {
		parts = append(parts, c.Node+"="+strconv.FormatFloat(c.Score, 'f', -1, 64))
	}
	return strings.Join(parts, " ")
}

// checkInvariants checks what must hold for any input, without a reference;
// full says whether d comes from Plan (every candidate and rejected name) or
// from Place (limited).
func checkInvariants(t *testing.T, nodes []Node, req Request, d Decision, err error, full bool) {
	t.Helper()
	if err != nil && errors.Is(err, ErrInvalidRequest) {
		if ValidateRequest(req) == nil {
			t.Fatalf("Place says the request is invalid (%v) but ValidateRequest accepts it", err)
		}
		return
	}
	if (err == nil) != (len(d.Candidates) > 0) {
		t.Fatalf("err = %v with %d candidates", err, len(d.Candidates))
	}
	if err != nil {
		if !errors.Is(err, ErrNoFit) {
			t.Fatalf("error does not wrap ErrNoFit: %v", err)
		}
		if !strings.HasSuffix(err.Error(), ErrNoFit.Error()+": "+d.Explain()) {
			t.Fatalf("error %q does not end with the explanation %q", err, d.Explain())
		}
		if d.Node != "" {
			t.Fatalf("no fit but Node = %q", d.Node)
		}
	} else if d.Node != d.Candidates[0].Node {
		t.Fatalf("Node = %q, best candidate %q", d.Node, d.Candidates[0].Node)
	}
	want := req.Strategy
	if want == "" {
		want = BinPack
	}
	if d.Strategy != want {
		t.Fatalf("Strategy = %q, want %q", d.Strategy, want)
	}

	byName := map[string][]Node{}
	for _, n := range nodes {
		byName[n.Name] = append(byName[n.Name], n)
	}
	wantCands := d.Feasible
	if !full {
		wantCands = min(wantCands, MaxCandidates)
	}
	if len(d.Candidates) != wantCands {
		t.Fatalf("%d candidates for %d feasible nodes (full list: %v)", len(d.Candidates), d.Feasible, full)
	}
	total := d.Feasible
	for i, c := range d.Candidates {
		if c.Score < 0 || c.Score > 100 {
			t.Fatalf("candidate %s has score %v outside 0..100", c.Node, c.Score)
		}
		if i > 0 {
			p := d.Candidates[i-1]
			if p.Score < c.Score || (p.Score == c.Score && p.Node > c.Node) {
				t.Fatalf("candidates out of order: %v before %v", p, c)
			}
		}
		fits := false
		for _, n := range byName[c.Node] {
			if n.Ready &&
				naiveFree(n.Headroom.CPUMillis, n.Reserved.CPUMillis) >= req.Resources.CPUMillis &&
				naiveFree(n.Headroom.MemoryMB, n.Reserved.MemoryMB) >= req.Resources.MemoryMB {
				fits = true
			}
		}
		if !fits {
			t.Fatalf("candidate %s is not ready or cannot hold the request", c.Node)
		}
	}
	order := Filters()
	last := -1
	for _, r := range d.Rejections {
		i := slices.Index(order, r.Filter)
		if i <= last {
			t.Fatalf("rejection %q unknown, repeated or out of pipeline order", r.Filter)
		}
		last = i
		wantNames := r.Count
		if !full {
			wantNames = min(wantNames, MaxExampleNodes)
		}
		if r.Count <= 0 || len(r.Nodes) != wantNames || !slices.IsSorted(r.Nodes) || r.Reason == "" {
			t.Fatalf("bad rejection %+v", r)
		}
		total += r.Count
	}
	if total != len(nodes) {
		t.Fatalf("%d candidates and rejections for %d nodes", total, len(nodes))
	}
}

// randomCluster makes a cluster of n nodes with the mix of a real one: most
// nodes ready, a few sizes, some busy, some over-reserved, labels for zone,
// arch and gpu, a handful of workloads each. Names are sorted unless
// shuffle is set.
func randomCluster(rng *rand.Rand, n int, shuffle bool) []Node {
	cpus := []int64{2000, 4000, 8000, 16000, 32000}
	mems := []int64{4096, 8192, 16384, 32768, 65536}
	zones := []string{"eu-1", "eu-2", "us-1"}
	states := []string{"down", "suspect", "joining", "exiting"}
	nodes := make([]Node, n)
	for i := range nodes {
		size := rng.IntN(len(cpus))
		capCPU, capMem := cpus[size], mems[size]
		nd := Node{
			Name:     "node-" + strconv.Itoa(100000 + i)[1:],
			Ready:    true,
			State:    "running",
			Capacity: Resources{CPUMillis: capCPU, MemoryMB: capMem},
			// Headroom is what the agent measured free: capacity less what
			// other processes use.
			Headroom: Resources{
				CPUMillis: capCPU - int64(rng.IntN(int(capCPU/4)/250+1))*250,
				MemoryMB:  capMem - int64(rng.IntN(int(capMem/4)/256+1))*256,
			},
			Labels: map[string]string{"zone": zones[rng.IntN(len(zones))], "arch": "amd64"},
		}
		if rng.IntN(10) == 0 {
			nd.Labels["arch"] = "arm64"
		}
		if rng.IntN(20) == 0 {
			nd.Labels["gpu"] = "true"
		}
		if rng.IntN(25) == 0 {
			nd.Ready, nd.State = false, states[rng.IntN(len(states))]
		}
		for range rng.IntN(8) {
			w := workloadNames[rng.IntN(len(workloadNames))]
			nd.Workloads = append(nd.Workloads, w)
			nd.Reserved.CPUMillis += int64(rng.IntN(8)+1) * 250
			nd.Reserved.MemoryMB += int64(rng.IntN(8)+1) * 512
		}
		nodes[i] = nd
	}
	if shuffle {
		rng.Shuffle(len(nodes), func(i, j int) { nodes[i], nodes[j] = nodes[j], nodes[i] })
	}
	return nodes
}

var workloadNames = []string{"web", "api", "db", "cache", "queue", "worker", "cron", "metrics"}

// realisticRequest asks for a replica of web: half a CPU, 1 GiB, amd64,
// not beside another web.
func realisticRequest(s Strategy) Request {
	return Request{
		Workload:  "web",
		Resources: Resources{CPUMillis: 500, MemoryMB: 1024},
		Constraints: Constraints{
			Labels:       map[string]string{"arch": "amd64"},
			AntiAffinity: []string{"web"},
		},
		Strategy: s,
	}
}

func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, seed)) }
