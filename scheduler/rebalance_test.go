package scheduler

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/placement/rebalance"
	"github.com/batonhq/baton/scheduler/store"
	"github.com/batonhq/baton/wire"
)

// loadHarness is a harness whose nodes report the headroom and resident
// memory a test sets, and whose server runs a given rebalancing policy.
type loadHarness struct {
	*harness
	nodes  []string
	capMB  int64
	freeMB map[string]int64 // node → measured free memory
	rssMB  map[string]int64 // workload name → resident memory
	noCRIU map[string]bool
	nstore *store.MemoryNodes
	policy rebalance.Policy
}

func newLoadHarness(t *testing.T, level rebalance.Level, nodes ...string) *loadHarness {
	pol, err := rebalance.PolicyFor(level)
	if err != nil {
		t.Fatal(err)
	}
	h := &loadHarness{
		harness: &harness{t: t, store: store.NewMemory(), agents: NewMemoryAgents(), clock: &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}},
		nodes:   nodes, capMB: 1024, freeMB: map[string]int64{}, rssMB: map[string]int64{}, noCRIU: map[string]bool{},
		nstore: store.NewMemoryNodes(), policy: pol,
	}
	for _, n := range nodes {
		h.freeMB[n] = h.capMB
	}
	h.restartServer()
	return h
}

// restartServer starts a new server on the same stores and agents.
func (h *loadHarness) restartServer() {
	h.srv = New(Config{Store: h.store, Agents: h.agents, Clock: h.clock, Rebalance: h.policy, NodeStore: h.nstore})
	if err := h.srv.Load(context.Background()); err != nil {
		h.t.Fatal(err)
	}
	h.beatAll(2)
}

func (h *loadHarness) beat(node string) {
	h.clock.now = h.clock.now.Add(100 * time.Millisecond)
	running := h.agents.Running(node)
	for i := range running {
		running[i].RSSBytes = h.rssMB[running[i].Name] << 20
	}
	h.srv.HandleHeartbeat(context.Background(), wire.Heartbeat{
		V: wire.Version, Node: node, IntervalMS: 1000,
		Capacity:  wire.Capacity{CPUs: 4, CPUMillis: 4000, MemoryMB: h.capMB},
		Headroom:  wire.Headroom{CPUMillis: 4000, MemoryMB: h.freeMB[node]},
		Workloads: running,
		Features:  &wire.NodeFeatures{CRIU: !h.noCRIU[node]},
	})
}

func (h *loadHarness) beatAll(times int) {
	for range times {
		for _, n := range h.nodes {
			h.beat(n)
		}
	}
}

// tick lets a second pass, as the server's ticks would, and runs the rebalancer.
func (h *loadHarness) tick() {
	h.clock.now = h.clock.now.Add(time.Second)
	h.srv.Rebalance(context.Background())
}

func (h *loadHarness) waitMigrations() {
	h.t.Helper()
	for _, m := range h.srv.Migrations() {
		h.waitMigration(m.ID)
	}
}

func (h *loadHarness) eventKinds() []string {
	var out []string
	for _, e := range h.srv.RebalanceEvents() {
		out = append(out, e.Kind+" "+cmpOr(e.Node, e.WorkloadName))
	}
	return out
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func (h *loadHarness) nodeOf(name string) string {
	h.t.Helper()
	for _, w := range h.srv.Workloads() {
		if w.Name == name {
			return w.Node
		}
	}
	h.t.Fatalf("no workload %q", name)
	return ""
}

func TestRebalanceMovesOffAHotNodeOnceAndSettles(t *testing.T) {
	h := newLoadHarness(t, rebalance.Aggressive, "n1", "n2")
	ctx := context.Background()
	for _, name := range []string{"big", "small"} {
		if _, err := h.srv.CreateWorkload(ctx, req(name, 0)); err != nil {
			t.Fatal(err)
		}
	}
	if h.nodeOf("big") != "n1" || h.nodeOf("small") != "n1" {
		t.Fatalf("bin-pack should put both on n1: %+v", h.srv.Workloads())
	}
	h.rssMB["big"], h.rssMB["small"] = 300, 20
	h.freeMB["n1"] = 100 // 10% free: hot for the aggressive policy (under 20%)
	h.beatAll(1)
	h.tick()
	if ms := h.srv.Migrations(); len(ms) != 0 {
		t.Fatalf("a node hot for one report is not hot yet, but %d migrations started", len(ms))
	}
	h.beatAll(3)
	if p := h.srv.PlanRebalance(); len(p.Moves) != 1 || p.Moves[0].WorkloadName != "big" || p.Moves[0].To != "n2" {
		t.Fatalf("plan = %+v, want big to n2", p)
	}

	hold := make(chan struct{})
	h.agents.HoldPrepare = hold
	h.tick()
	ms := h.srv.Migrations()
	if len(ms) != 1 || ms[0].WorkloadName != "big" || ms[0].Target != "n2" {
		t.Fatalf("migrations = %+v, want big moving to n2", ms)
	}
	// The target's reservation holds the workload's resident memory (it
	// requests none) while the migration is in flight.
	if n2, _ := h.srv.Node("n2"); n2.Reserved.MemoryMB != 300 {
		t.Errorf("n2 reserves %d MiB during the migration, want the 300 MiB the workload holds", n2.Reserved.MemoryMB)
	}
	h.beatAll(1)
	h.tick() // in flight: the plan counts it as done, n1 is relieved
	close(hold)
	h.waitMigrations()
	if h.nodeOf("big") != "n2" {
		t.Fatalf("big runs on %s, want n2", h.nodeOf("big"))
	}

	// The nodes report the move; nothing else moves, nothing moves back.
	h.freeMB["n1"], h.freeMB["n2"] = 400, 724
	for range 20 {
		h.beatAll(1)
		h.tick()
	}
	if ms := h.srv.Migrations(); len(ms) != 1 {
		t.Fatalf("%d migrations, want 1: the cluster should settle: %+v", len(ms), ms)
	}
	want := []string{"node-hot n1", "move big", "move-done big", "node-cool n1"}
	if got := h.eventKinds(); !slices.Equal(got, want) {
		t.Errorf("events %v, want %v", got, want)
	}
	ev := h.srv.RebalanceEvents()[1]
	if ev.From != "n1" || ev.To != "n2" || ev.Migration == "" || !strings.Contains(ev.Reason, "n1 is hot") {
		t.Errorf("move event %+v lacks its nodes, migration or reason", ev)
	}
}

func TestRebalanceOffMovesNothing(t *testing.T) {
	h := newLoadHarness(t, rebalance.Off, "n1", "n2")
	if _, err := h.srv.CreateWorkload(context.Background(), req("big", 0)); err != nil {
		t.Fatal(err)
	}
	h.rssMB["big"], h.freeMB["n1"] = 300, 10
	for range 10 {
		h.beatAll(1)
		h.tick()
	}
	if ms := h.srv.Migrations(); len(ms) != 0 {
		t.Fatalf("rebalancing is off but %d migrations started", len(ms))
	}
	if p := h.srv.PlanRebalance(); p.Policy != rebalance.Off || len(p.Moves) != 0 || len(p.Hot) != 1 {
		t.Errorf("plan %+v, want policy off, n1 hot, no moves", p)
	}
}

// drainUntilEmpty ticks until node runs nothing, beating and finishing
// migrations meanwhile.
func (h *loadHarness) drainUntilEmpty(node string) {
	h.t.Helper()
	for i := 0; ; i++ {
		h.beatAll(1)
		h.tick()
		h.waitMigrations()
		h.waitRestarts()
		if n, _ := h.srv.Node(node); n.Workloads == 0 {
			return
		}
		if i > 30 {
			h.t.Fatalf("%s still runs %v after 30 ticks; events %v", node, h.srv.Workloads(), h.eventKinds())
		}
	}
}

func (h *loadHarness) waitRestarts() {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		h.srv.mu.Lock()
		n := len(h.srv.rbLocked().restarting)
		h.srv.mu.Unlock()
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatal("a drain restart did not end")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestDrainMovesEverythingOffAndSurvivesRestart(t *testing.T) {
	h := newLoadHarness(t, rebalance.Conservative, "n1", "n2", "n3")
	ctx := context.Background()
	for _, name := range []string{"a", "b"} {
		if _, err := h.srv.CreateWorkload(ctx, req(name, 100)); err != nil {
			t.Fatal(err)
		}
	}
	n, err := h.srv.DrainNode(ctx, "n1")
	if err != nil || n.Drain != DrainDraining || n.Workloads != 2 {
		t.Fatalf("drain: %+v %v, want n1 draining with 2 workloads", n, err)
	}
	// Nothing new goes to a drained node, though bin-pack would prefer it.
	if d, err := h.srv.Plan(req("new", 100)); err != nil || d.Node == "n1" {
		t.Fatalf("plan after the drain: %+v %v", d, err)
	}
	if _, err := h.srv.Plan(WorkloadRequest{Name: "x", Command: []string{"x"}, Constraints: store.Constraints{Nodes: []string{"n1"}}}); !errors.Is(err, ErrNoFit) || !strings.Contains(err.Error(), "draining") {
		t.Errorf("placing on the drained node only: %v, want no fit because it is draining", err)
	}
	h.drainUntilEmpty("n1")
	for _, name := range []string{"a", "b"} {
		if got := h.nodeOf(name); got == "n1" {
			t.Errorf("%s still on n1", name)
		}
	}
	if got := len(h.srv.Migrations()); got != 2 {
		t.Errorf("%d migrations, want 2 (one per workload, live)", got)
	}
	h.tick()
	want := []string{"drain n1", "drain-move a", "move-done a", "drain-move b", "move-done b", "drained n1"}
	if got := h.eventKinds(); !slices.Equal(got, want) {
		t.Errorf("events %v, want %v", got, want)
	}

	// A restarted server still knows n1 is drained.
	h.restartServer()
	if n, _ := h.srv.Node("n1"); n.Drain != DrainDrained {
		t.Fatalf("after a server restart n1 is %+v, want drained", n)
	}
	if d, _ := h.srv.Plan(req("new", 100)); d.Node == "n1" {
		t.Error("after a server restart, placement picks the drained node")
	}
	if n, err := h.srv.UndrainNode(ctx, "n1"); err != nil || n.Drain != "" {
		t.Fatalf("undrain: %+v %v", n, err)
	}
	onN1 := WorkloadRequest{Name: "x", Command: []string{"x"}, Constraints: store.Constraints{Nodes: []string{"n1"}}}
	if d, err := h.srv.Plan(onN1); err != nil || d.Node != "n1" {
		t.Errorf("after undrain n1 takes workloads again: %+v %v", d, err)
	}
	if list, _ := h.nstore.ListNodes(ctx); len(list) != 0 {
		t.Errorf("undrain left node records %+v", list)
	}
}

func TestDrainRestartsWhereMigrationIsImpossible(t *testing.T) {
	tests := []struct {
		name  string
		setup func(h *loadHarness)
		why   string
	}{
		{"no CRIU on the drained node", func(h *loadHarness) { h.noCRIU["n1"] = true }, "CRIU is not available on n1"},
		{"live migrations keep failing", func(h *loadHarness) { h.agents.FailMigration = wire.OpMigrateRestore }, "2 live migrations failed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newLoadHarness(t, rebalance.Conservative, "n1", "n2")
			ctx := context.Background()
			w, err := h.srv.CreateWorkload(ctx, req("a", 100))
			if err != nil || w.Node != "n1" {
				t.Fatalf("create: %+v %v", w, err)
			}
			tc.setup(h)
			h.beatAll(1)
			if _, err := h.srv.DrainNode(ctx, "n1"); err != nil {
				t.Fatal(err)
			}
			h.drainUntilEmpty("n1")
			got, _ := h.srv.Workload(w.ID)
			if got.Node != "n2" || got.State != wire.StateRunning || got.HostPID == 0 || got.HostPID == w.HostPID {
				t.Fatalf("after the drain the workload is %+v, want restarted and running on n2", got)
			}
			if r := h.agents.Running("n1"); len(r) != 0 {
				t.Errorf("n1 still runs %+v", r)
			}
			var restart *RebalanceEvent
			for _, e := range h.srv.RebalanceEvents() {
				if e.Kind == EventDrainRestart {
					restart = &e
				}
			}
			if restart == nil || !strings.Contains(restart.Reason, tc.why) {
				t.Fatalf("no drain-restart event saying %q: %v", tc.why, h.srv.RebalanceEvents())
			}
		})
	}
}

func TestDrainRefusals(t *testing.T) {
	h := newLoadHarness(t, rebalance.Conservative, "n1")
	ctx := context.Background()
	if _, err := h.srv.DrainNode(ctx, "n9"); !errors.Is(err, ErrNotFound) {
		t.Errorf("drain of an unknown node: %v, want ErrNotFound", err)
	}
	if _, err := h.srv.UndrainNode(ctx, "n9"); !errors.Is(err, ErrNotFound) {
		t.Errorf("undrain of an unknown node: %v, want ErrNotFound", err)
	}
	if err := h.srv.SetLeadership(ctx, false, 0, "other"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.srv.DrainNode(ctx, "n1"); !errors.Is(err, ErrNotLeader) {
		t.Errorf("drain on a follower: %v, want ErrNotLeader", err)
	}
	if list, _ := h.nstore.ListNodes(ctx); len(list) != 0 {
		t.Errorf("refused drains left records %+v", list)
	}
}

func TestPriorityIsValidated(t *testing.T) {
	h := newHarness(t, "n1")
	for _, p := range []int{MinPriority - 1, MaxPriority + 1} {
		r := req("p", 1)
		r.Priority = p
		if _, err := h.srv.CreateWorkload(context.Background(), r); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "priority") {
			t.Errorf("priority %d: %v, want ErrInvalid naming priority", p, err)
		}
	}
	r := req("p", 1)
	r.Priority = 42
	w, err := h.srv.CreateWorkload(context.Background(), r)
	if err != nil || w.Priority != 42 {
		t.Fatalf("create with priority 42: %+v %v", w, err)
	}
}
