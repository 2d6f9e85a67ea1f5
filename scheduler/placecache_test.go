package scheduler

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/batonhq/baton/placement"
	"github.com/batonhq/baton/scheduler/store"
	"github.com/batonhq/baton/wire"
)

// gatedAgents are MemoryAgents whose migrations wait in prepare while the
// gate is shut, so a test can look at migrations in flight, and which can
// run a function while a start or stop is under way (another request being
// served meanwhile) and refuse starts.
type gatedAgents struct {
	*MemoryAgents
	mu     sync.Mutex
	gate   chan struct{} // nil: open
	during func()        // run at each start and stop, nil: nothing
	refuse bool          // starts fail as an agent's would
}

func (g *gatedAgents) set(during func(), refuse bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.during, g.refuse = during, refuse
}

func (g *gatedAgents) meanwhile() bool {
	g.mu.Lock()
	during, refuse := g.during, g.refuse
	g.mu.Unlock()
	if during != nil {
		during()
	}
	return refuse
}

func (g *gatedAgents) Start(ctx context.Context, node string, spec wire.WorkloadSpec) (wire.WorkloadStatus, error) {
	if g.meanwhile() {
		return wire.WorkloadStatus{}, fmt.Errorf("%w: node %s: exec: no such file", ErrAgent, node)
	}
	return g.MemoryAgents.Start(ctx, node, spec)
}

func (g *gatedAgents) Stop(ctx context.Context, node, id string) (wire.WorkloadStatus, error) {
	g.meanwhile()
	return g.MemoryAgents.Stop(ctx, node, id)
}

func (g *gatedAgents) Migrate(ctx context.Context, node, op string, cmd wire.MigrationCmd) (wire.MigrationReply, error) {
	g.mu.Lock()
	gate := g.gate
	g.mu.Unlock()
	if gate != nil && op == wire.OpMigratePrepare {
		<-gate
	}
	if op == wire.OpMigrateDump {
		// A record can say running where the agent runs nothing (a start's
		// answer landing after a reload moved the record): refuse as a
		// real agent would.
		g.MemoryAgents.mu.Lock()
		_, runs := g.MemoryAgents.running[cmd.Source][cmd.Workload.ID]
		g.MemoryAgents.mu.Unlock()
		if !runs {
			return wire.MigrationReply{}, fmt.Errorf("%w: node %s does not run %s", ErrAgent, node, cmd.Workload.ID)
		}
	}
	return g.MemoryAgents.Migrate(ctx, node, op, cmd)
}

func (g *gatedAgents) shut() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.gate == nil {
		g.gate = make(chan struct{})
	}
}

func (g *gatedAgents) open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.gate != nil {
		close(g.gate)
		g.gate = nil
	}
}

// cacheHarness drives a server on in-memory twins through random steps;
// its nodes report the labels, headroom and resident memory it sets.
type cacheHarness struct {
	*harness
	gated  *gatedAgents
	clk    *lockedClock // read by the server's goroutines too
	rng    *rand.Rand
	nodes  []string
	labels map[string]map[string]string
	freeMB map[string]int64
	rssMB  map[string]int64 // workload id → resident memory its nodes report
	silent map[string]bool
	noCRIU map[string]bool
}

func newCacheHarness(t *testing.T, seed uint64) *cacheHarness {
	mem := NewMemoryAgents()
	h := &cacheHarness{
		harness: &harness{t: t, store: store.NewMemory(), agents: mem},
		clk:     &lockedClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)},
		gated:   &gatedAgents{MemoryAgents: mem},
		rng:     rand.New(rand.NewPCG(seed, seed)),
		labels:  map[string]map[string]string{}, freeMB: map[string]int64{}, rssMB: map[string]int64{}, silent: map[string]bool{},
		noCRIU: map[string]bool{},
	}
	h.srv = New(Config{Store: h.store, Agents: h.gated, Clock: h.clk, NodeStore: store.NewMemoryNodes()})
	if err := h.srv.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	for range 4 {
		h.join()
	}
	return h
}

func (h *cacheHarness) node() string { return h.nodes[h.rng.IntN(len(h.nodes))] }

func (h *cacheHarness) join() string {
	n := fmt.Sprintf("n%d", len(h.nodes)+1)
	h.nodes = append(h.nodes, n)
	h.labels[n] = map[string]string{"zone": []string{"a", "b"}[len(h.nodes)%2]}
	h.freeMB[n] = 4096
	h.beat(n)
	h.beat(n)
	return n
}

func (h *cacheHarness) beat(node string) {
	h.clk.advance(50 * time.Millisecond)
	running := h.agents.Running(node)
	for i := range running {
		running[i].RSSBytes = h.rssMB[running[i].ID] << 20
	}
	h.srv.HandleHeartbeat(context.Background(), wire.Heartbeat{
		V: wire.Version, Node: node, IntervalMS: 1000, Labels: h.labels[node],
		Capacity:  wire.Capacity{CPUs: 4, CPUMillis: 4000, MemoryMB: 4096},
		Headroom:  wire.Headroom{CPUMillis: 4000, MemoryMB: h.freeMB[node]},
		Workloads: running,
		Features:  &wire.NodeFeatures{CRIU: !h.noCRIU[node]},
	})
}

// someWorkload picks a workload the server holds (a running one if
// running), or none.
func (h *cacheHarness) someWorkload(running bool) store.Workload {
	ws := h.srv.Workloads()
	if running {
		ws = slices.DeleteFunc(ws, func(w store.Workload) bool { return w.State != wire.StateRunning })
	}
	if len(ws) == 0 {
		return store.Workload{}
	}
	return ws[h.rng.IntN(len(ws))]
}

// waitMigrations opens the gate and waits for every migration to end.
func (h *cacheHarness) waitMigrations() {
	h.gated.open()
	for _, m := range h.srv.Migrations() {
		h.waitMigration(m.ID)
	}
}

// step does one random thing to the cluster and says what.
func (h *cacheHarness) step() string {
	ctx := context.Background()
	// Now and then a start or stop is slow enough for another request to
	// be placed meanwhile, or a start is refused.
	var during func()
	if h.rng.IntN(4) == 0 {
		during = func() { _, _ = h.srv.Plan(req("meanwhile", 1)) }
	}
	h.gated.set(during, h.rng.IntN(8) == 0)
	defer h.gated.set(nil, false)
	switch op := h.rng.IntN(20); op {
	case 0, 1, 2, 3: // a report, often with new labels, headroom or resident memory
		n := h.node()
		switch h.rng.IntN(6) {
		case 3: // migrations from it become impossible, drains restart instead
			h.noCRIU[n] = !h.noCRIU[n]
		case 0:
			h.labels[n] = map[string]string{"zone": []string{"a", "b", "c"}[h.rng.IntN(3)]}
		case 1:
			h.freeMB[n] = int64(h.rng.IntN(4097))
		case 2:
			if w := h.someWorkload(false); w.ID != "" {
				h.rssMB[w.ID] = int64(h.rng.IntN(2000))
			}
		}
		if h.silent[n] {
			return "no report from silent " + n
		}
		h.beat(n)
		return "report from " + n
	case 4: // a burst of reports, no decision in between
		for _, n := range h.nodes {
			if !h.silent[n] {
				h.beat(n)
			}
		}
		return "reports from every node"
	case 5, 6, 7:
		r := req(fmt.Sprintf("w%d", h.rng.IntN(12)), int64(h.rng.IntN(1500)))
		r.Resources.CPUMillis = int64(h.rng.IntN(1500))
		r.Strategy = []string{"", "spread"}[h.rng.IntN(2)]
		if h.rng.IntN(3) == 0 {
			r.Constraints.Labels = map[string]string{"zone": "a"}
		}
		if h.rng.IntN(3) == 0 {
			r.Constraints.AntiAffinity = []string{fmt.Sprintf("w%d", h.rng.IntN(12))}
		}
		w, err := h.srv.CreateWorkload(ctx, r)
		return fmt.Sprintf("create %s: %s %v", r.Name, w.Node, err)
	case 8:
		w := h.someWorkload(false)
		if w.ID == "" {
			return "nothing to delete"
		}
		_, done, err := h.srv.DeleteWorkload(ctx, w.ID)
		return fmt.Sprintf("delete %s on %s: %v %v", w.Name, w.Node, done, err)
	case 9: // a workload exits (or fails) by itself and its node reports it
		w := h.someWorkload(false)
		if w.ID == "" || w.Migration != "" {
			return "nothing exits"
		}
		h.agents.Update(w.Node, w.ID, func(st wire.WorkloadStatus) wire.WorkloadStatus {
			st.State = []string{wire.StateStopped, wire.StateFailed}[h.rng.IntN(2)]
			return st
		})
		if !h.silent[w.Node] {
			h.beat(w.Node)
		}
		return "exit of " + w.Name + " on " + w.Node
	case 10:
		n := h.node()
		if h.rng.IntN(2) == 0 {
			_, err := h.srv.DrainNode(ctx, n)
			return fmt.Sprintf("drain %s: %v", n, err)
		}
		_, err := h.srv.UndrainNode(ctx, n)
		return fmt.Sprintf("undrain %s: %v", n, err)
	case 11, 12: // a migration held in prepare: its target holds its reservation
		w := h.someWorkload(true)
		if w.ID == "" {
			return "nothing to migrate"
		}
		h.gated.shut()
		mr := MigrationRequest{}
		if h.rng.IntN(2) == 0 {
			mr.To = h.node()
		}
		m, err := h.srv.StartMigration(ctx, w.ID, mr)
		return fmt.Sprintf("migrate %s from %s to %s: %v", w.Name, w.Node, m.Target, err)
	case 13: // the migrations in flight end, some rolled back
		h.agents.mu.Lock()
		h.agents.FailMigration = []string{"", wire.OpMigrateRestore}[h.rng.IntN(2)]
		h.agents.mu.Unlock()
		h.waitMigrations()
		return "migrations ended"
	case 14: // time passes; silent nodes turn suspect, then down
		n := h.node()
		h.silent[n] = !h.silent[n] && h.rng.IntN(3) == 0
		h.clk.advance(time.Duration(h.rng.IntN(4000)) * time.Millisecond)
		h.srv.Tick()
		return fmt.Sprintf("%s silent=%v, tick", n, h.silent[n])
	case 15:
		n := h.node()
		h.srv.HandleLeave(wire.Leave{Node: n})
		return "leave of " + n
	case 16:
		if len(h.nodes) >= 12 {
			return "no new node"
		}
		return "join of " + h.join()
	case 17: // the rebalancer moves workloads off drained nodes
		h.clk.advance(time.Second)
		h.srv.Rebalance(ctx)
		return "rebalance"
	case 18: // the server reloads the desired state from the store
		h.waitMigrations()
		if err := h.srv.Load(ctx); err != nil {
			h.t.Fatal(err)
		}
		return "reload"
	default: // another server changed the store (a record gone, another moved), then this one reloads
		h.waitMigrations()
		if w := h.someWorkload(false); w.ID != "" {
			_ = h.store.Delete(ctx, w.ID)
		}
		if w := h.someWorkload(false); w.ID != "" {
			w.Node, w.State, w.HostPID = h.node(), wire.StateStarting, 0
			_ = h.store.Put(ctx, w)
		}
		if err := h.srv.Load(ctx); err != nil {
			h.t.Fatal(err)
		}
		return "reload"
	}
}

// checkPlacementCache holds the server's Cluster to one built from
// placementNodesLocked, the reference: the same nodes (workload names as a
// multiset) and the same decisions.
func checkPlacementCache(t *testing.T, s *Server, after string) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	got := s.placementLocked()
	nodes := s.placementNodesLocked()
	want, err := placement.NewCluster(nodes)
	if err != nil {
		t.Fatal(err)
	}
	if got.Len() != want.Len() {
		t.Fatalf("after %s: the cached Cluster has %d nodes, the reference %d", after, got.Len(), want.Len())
	}
	sorted := func(n placement.Node) placement.Node {
		n.Workloads = slices.Sorted(slices.Values(n.Workloads))
		return n
	}
	for _, n := range nodes {
		g, ok := got.Node(n.Name)
		w, _ := want.Node(n.Name)
		if !ok || !reflect.DeepEqual(sorted(g), sorted(w)) {
			t.Fatalf("after %s: node %s\ncached:    %+v\nreference: %+v", after, n.Name, g, w)
		}
	}
	for _, r := range []placement.Request{
		{Workload: "w1", Resources: placement.Resources{CPUMillis: 500, MemoryMB: 1024}},
		{Workload: "w2", Resources: placement.Resources{MemoryMB: 2048}, Strategy: placement.Spread,
			Constraints: placement.Constraints{Labels: map[string]string{"zone": "a"}, AntiAffinity: []string{"w1", "w3"}}},
	} {
		gd, gerr := got.Plan(r)
		wd, werr := want.Plan(r)
		if !reflect.DeepEqual(gd, wd) || fmt.Sprint(gerr) != fmt.Sprint(werr) {
			t.Fatalf("after %s: plan %+v\ncached:    %+v %v\nreference: %+v %v", after, r, gd, gerr, wd, werr)
		}
	}
}

// TestPlacementCacheMatchesReference drives servers through random reports,
// creations, deletions, exits, drains, migrations (held in flight, ended,
// rolled back), silences, leaves, joins, rebalancer runs and reloads, and
// after every step holds the Cluster the server places with to the
// reference. It also checks that the Cluster was kept, not rebuilt: only
// joins and reloads build it anew.
func TestPlacementCacheMatchesReference(t *testing.T) {
	for seed := range uint64(8) {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			h := newCacheHarness(t, seed)
			defer h.waitMigrations()
			checkPlacementCache(t, h.srv, "start")
			var log []string
			rebuilds := 0
			for range 400 {
				before := len(h.nodes)
				what := h.step()
				log = append(log, what)
				if len(h.nodes) != before || what == "reload" {
					rebuilds++
				}
				checkPlacementCache(t, h.srv, fmt.Sprintf("step %d (%s); steps before: %v", len(log), what, log[max(0, len(log)-8):len(log)-1]))
			}
			h.srv.mu.Lock()
			pc := h.srv.place
			h.srv.mu.Unlock()
			if pc.builds > rebuilds+1 || pc.updates == 0 {
				t.Errorf("the Cluster was built %d times and updated %d nodes in 400 steps with %d joins and reloads: want it kept", pc.builds, pc.updates, rebuilds)
			}
		})
	}
}

// TestPlacementCacheUpdatesOnlyTouchedNodes: each change refreshes the nodes
// it touched at the next decision, and only a new node rebuilds.
func TestPlacementCacheUpdatesOnlyTouchedNodes(t *testing.T) {
	h := newCacheHarness(t, 1)
	ctx := context.Background()
	defer h.waitMigrations()
	var web store.Workload
	tests := []struct {
		name           string
		do             func(t *testing.T)
		builds, update int
	}{
		{"a report", func(*testing.T) { h.beat("n2") }, 0, 1},
		{"a creation", func(t *testing.T) {
			var err error
			if web, err = h.srv.CreateWorkload(ctx, req("web", 100)); err != nil {
				t.Fatal(err)
			}
		}, 0, 1},
		{"a drain", func(t *testing.T) {
			if _, err := h.srv.DrainNode(ctx, "n3"); err != nil {
				t.Fatal(err)
			}
		}, 0, 1},
		{"a migration starting: source and target", func(t *testing.T) {
			h.gated.shut()
			if _, err := h.srv.StartMigration(ctx, web.ID, MigrationRequest{To: "n4"}); err != nil {
				t.Fatal(err)
			}
		}, 0, 2},
		{"the source's report: it and the target", func(*testing.T) { h.beat(web.Node) }, 0, 2},
		{"a migration ending", func(*testing.T) { h.waitMigrations() }, 0, 2},
		{"a deletion", func(t *testing.T) {
			if _, _, err := h.srv.DeleteWorkload(ctx, web.ID); err != nil {
				t.Fatal(err)
			}
		}, 0, 1},
		{"a new node", func(*testing.T) { h.join() }, 1, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkPlacementCache(t, h.srv, "before")
			h.srv.mu.Lock()
			before := h.srv.place
			h.srv.mu.Unlock()
			tc.do(t)
			checkPlacementCache(t, h.srv, tc.name)
			h.srv.mu.Lock()
			after := h.srv.place
			h.srv.mu.Unlock()
			if b, u := after.builds-before.builds, after.updates-before.updates; b != tc.builds || u > tc.update {
				t.Errorf("%d builds and %d node updates, want %d and at most %d", b, u, tc.builds, tc.update)
			}
		})
	}
}

// BenchmarkServerPlace measures placement decisions through the server on
// clusters of 100, 1,000 and 5,000 nodes, each running 3 workloads (1 in 25
// drained), with one node's heartbeat (new headroom) handled between two
// decisions, as a busy server sees them. The request is placement's
// realistic one (0.5 CPU, 1 GiB, a label and an anti-affinity constraint).
// "cluster" is the server's path (placementLocked: refresh the nodes the
// heartbeat touched, then Cluster.Place); "function" is the baseline, the
// server's path before it kept a Cluster: build every node
// (placementNodesLocked) and call the function Place. decisions/s times
// the decision alone, from taking the lock to the answer; ns/op includes
// the heartbeat.
func BenchmarkServerPlace(b *testing.B) {
	r := placement.Request{
		Workload: "web", Resources: placement.Resources{CPUMillis: 500, MemoryMB: 1024}, Strategy: placement.BinPack,
		Constraints: placement.Constraints{Labels: map[string]string{"arch": "amd64"}, AntiAffinity: []string{"web"}},
	}
	paths := []struct {
		name  string
		place func(*Server) (placement.Decision, error)
	}{
		{"cluster", func(s *Server) (placement.Decision, error) { return s.placementLocked().Place(r) }},
		{"function", func(s *Server) (placement.Decision, error) { return placement.Place(s.placementNodesLocked(), r) }},
	}
	for _, size := range []int{100, 1000, 5000} {
		srv, beats := benchServer(b, size)
		for _, path := range paths {
			b.Run(fmt.Sprintf("nodes=%d/%s", size, path.name), func(b *testing.B) {
				ctx := context.Background()
				srv.mu.Lock()
				_, _ = path.place(srv) // the Cluster as the server keeps it
				srv.mu.Unlock()
				var placing time.Duration
				for i := 0; b.Loop(); i++ {
					hb := beats[i%len(beats)]
					hb.Headroom.MemoryMB -= int64(i/len(beats)%2) * 512 // every report a change
					srv.HandleHeartbeat(ctx, hb)
					start := time.Now()
					srv.mu.Lock()
					d, err := path.place(srv)
					srv.mu.Unlock()
					placing += time.Since(start)
					if err != nil || d.Node == "" {
						b.Fatalf("nothing placed: %v", err)
					}
				}
				b.ReportMetric(float64(b.N)/placing.Seconds(), "decisions/s")
			})
		}
	}
}

// benchServer is a leading server with nodes running 3 workloads each, as
// their heartbeats (returned, one per node) report them.
func benchServer(b *testing.B, nodes int) (*Server, []wire.Heartbeat) {
	b.Helper()
	ctx := context.Background()
	srv := New(Config{Store: store.NewMemory(), Agents: NewMemoryAgents()})
	if err := srv.Load(ctx); err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(uint64(nodes), 1))
	cpus := []int64{8000, 16000, 32000, 64000}
	zones := []string{"eu-1", "eu-2", "us-1"}
	beats := make([]wire.Heartbeat, nodes)
	for i := range beats {
		size := rng.IntN(len(cpus))
		capCPU, capMem := cpus[size], cpus[size]*4 // 4 MiB per milli-CPU: 32 GiB for 8 CPUs
		hb := wire.Heartbeat{V: wire.Version, Node: fmt.Sprintf("node-%05d", i), IntervalMS: 1000,
			Labels:   map[string]string{"zone": zones[rng.IntN(len(zones))], "arch": "amd64"},
			Capacity: wire.Capacity{CPUs: int(capCPU / 1000), CPUMillis: capCPU, MemoryMB: capMem},
			Headroom: wire.Headroom{CPUMillis: capCPU - capCPU/8, MemoryMB: capMem - capMem/8},
		}
		if rng.IntN(10) == 0 {
			hb.Labels["arch"] = "arm64"
		}
		for j := range 3 {
			w := store.Workload{ID: fmt.Sprintf("w-%05d%d", i, j), Name: fmt.Sprintf("app-%05d-%d", i, j), Kind: "process",
				Command: []string{"x"}, Desired: store.DesiredRunning, Node: hb.Node, State: wire.StateRunning, HostPID: 1000 + j,
				Resources: wire.Resources{CPUMillis: int64(rng.IntN(8)+1) * 250, MemoryMB: int64(rng.IntN(8)+1) * 512}}
			if i == nodes/2 && j == 0 {
				w.Name = "web" // the request's anti-affinity excludes this node
			}
			srv.mu.Lock()
			srv.cacheLocked(w)
			srv.mu.Unlock()
			hb.Workloads = append(hb.Workloads, wire.WorkloadStatus{ID: w.ID, Name: w.Name, State: wire.StateRunning, HostPID: w.HostPID, Resources: w.Resources})
		}
		beats[i] = hb
		srv.HandleHeartbeat(ctx, hb)
		srv.HandleHeartbeat(ctx, hb) // joining, then running
	}
	for i := 0; i < nodes; i += 25 {
		if _, err := srv.DrainNode(ctx, beats[i].Node); err != nil {
			b.Fatal(err)
		}
	}
	return srv, beats
}
