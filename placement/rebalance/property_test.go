package rebalance

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/batonhq/baton/placement"
)

// checkPlan asserts what every plan must satisfy:
//   - no target is overcommitted: what the moves bring to a node, on top of
//     what is reserved there, fits its measured headroom (placement's
//     rule, as the scheduler's StartMigration checks it);
//   - no move goes to a node that is drained, not ready, or its own source;
//   - a workload moves at most once, and only from where it is;
//   - rebalancing moves leave their target cool and respect the budgets.
func checkPlan(t testing.TB, in Input, p Plan) {
	t.Helper()
	nodes := map[string]Node{}
	for _, n := range in.Nodes {
		nodes[n.Name] = n
	}
	workloads := map[string]Workload{}
	for _, w := range in.Workloads {
		workloads[w.ID] = w
	}
	incoming := map[string]placement.Resources{}
	moved := map[string]bool{}
	flights := map[string]int{}
	cluster := 0
	for _, pm := range in.Pending {
		if pm.InFlight {
			cluster++
			flights[pm.Source]++
			flights[pm.Target]++
		}
	}
	for _, m := range p.Moves {
		w, ok := workloads[m.Workload]
		switch {
		case !ok:
			t.Fatalf("move of unknown workload %+v", m)
		case moved[m.Workload]:
			t.Fatalf("workload %s moves twice in one plan: %+v", m.WorkloadName, p.Moves)
		case m.From != w.Node || m.To == m.From:
			t.Fatalf("move %+v does not start from the workload's node %s", m, w.Node)
		case !nodes[m.To].Ready || nodes[m.To].Drained:
			t.Fatalf("move %+v targets a node that is not schedulable: %+v", m, nodes[m.To])
		}
		moved[m.Workload] = true
		r := incoming[m.To]
		r.CPUMillis += w.Requests.CPUMillis
		r.MemoryMB += max(w.Requests.MemoryMB, w.RSSMB)
		incoming[m.To] = r
		if m.Kind != KindDrainRestart {
			cluster++
			flights[m.From]++
			flights[m.To]++
			if !nodes[m.From].CanMigrate || !nodes[m.To].CanMigrate {
				t.Fatalf("live move %+v involves a node without CRIU", m)
			}
		}
		if m.Kind == KindRebalance {
			if cluster > in.Policy.MaxPerCluster || flights[m.From] > in.Policy.MaxPerNode || flights[m.To] > in.Policy.MaxPerNode {
				t.Fatalf("move %+v exceeds the budgets (%d in the cluster, %d on %s, %d on %s)", m, cluster, flights[m.From], m.From, flights[m.To], m.To)
			}
		}
	}
	for name, r := range incoming {
		n := nodes[name]
		free := func(h, rsv int64) int64 { return max(max(h, 0)-max(rsv, 0), 0) }
		if r.MemoryMB > free(n.Headroom.MemoryMB, n.Reserved.MemoryMB) || r.CPUMillis > free(n.Headroom.CPUMillis, n.Reserved.CPUMillis) {
			t.Fatalf("plan overcommits %s: moves bring %+v, it has headroom %+v with %+v reserved\nplan %+v", name, r, n.Headroom, n.Reserved, p.Moves)
		}
	}
}

// TestPlanNeverOvercommits runs Decide on random clusters, hot and drained
// nodes, pending migrations and constraints, and checks every plan.
func TestPlanNeverOvercommits(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 7))
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	moves := 0
	for round := range 3000 {
		level := Levels()[rng.IntN(3)]
		pol, _ := PolicyFor(level)
		pol.MaxPerCluster = 1 + rng.IntN(6)
		pol.MaxPerNode = 1 + rng.IntN(3)
		in := Input{Now: now, Policy: pol}
		nn := 1 + rng.IntN(8)
		for i := range nn {
			capMem := int64(512 << rng.IntN(5))
			capCPU := int64(1000 * (1 + rng.IntN(8)))
			n := Node{Name: fmt.Sprintf("n%d", i), State: "running", Ready: rng.IntN(8) != 0, Drained: rng.IntN(6) == 0,
				CanMigrate: rng.IntN(8) != 0,
				Capacity:   placement.Resources{CPUMillis: capCPU, MemoryMB: capMem},
				Headroom:   placement.Resources{CPUMillis: rng.Int64N(capCPU + 1), MemoryMB: rng.Int64N(capMem + 1)},
				Heat:       Heat{Hot: rng.IntN(2) == 0, HotStreak: 5, Reading: "hot", Why: "memory low"}}
			if rng.IntN(3) == 0 {
				n.Labels = map[string]string{"zone": []string{"a", "b"}[rng.IntN(2)]}
			}
			in.Nodes = append(in.Nodes, n)
		}
		for i := range rng.IntN(20) {
			node := &in.Nodes[rng.IntN(nn)]
			w := Workload{ID: fmt.Sprintf("w-%d", i), Name: fmt.Sprintf("w%d", i), Node: node.Name,
				RSSMB:    rng.Int64N(400),
				Requests: placement.Resources{CPUMillis: rng.Int64N(3) * 250, MemoryMB: rng.Int64N(3) * 128},
				Priority: rng.IntN(101) - 50, DrainFailures: rng.IntN(3)}
			if rng.IntN(5) == 0 {
				w.LastMoved = now.Add(-time.Duration(rng.IntN(20)) * time.Minute)
			}
			if rng.IntN(6) == 0 {
				w.Constraints.Labels = map[string]string{"zone": "a"}
			}
			if rng.IntN(6) == 0 {
				w.Constraints.AntiAffinity = []string{fmt.Sprintf("w%d", rng.IntN(20))}
			}
			node.Reserved.CPUMillis += w.Requests.CPUMillis
			node.Reserved.MemoryMB += w.Requests.MemoryMB
			node.Workloads = append(node.Workloads, w.Name)
			in.Workloads = append(in.Workloads, w)
		}
		for range rng.IntN(3) {
			a, b := in.Nodes[rng.IntN(nn)].Name, in.Nodes[rng.IntN(nn)].Name
			in.Pending = append(in.Pending, Pending{Workload: "x", Source: a, Target: b, MemoryMB: rng.Int64N(200), InFlight: rng.IntN(2) == 0})
		}
		p := Decide(in)
		checkPlan(t, in, p)
		moves += len(p.Moves)
		if round == 0 && p.Imbalance < 0 {
			t.Fatal("negative imbalance")
		}
	}
	if moves < 100 {
		t.Fatalf("only %d moves in 3000 random plans: the property is barely exercised", moves)
	}
	t.Logf("%d moves checked", moves)
}
