package scheduler

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/batonhq/baton/failover/groups"
	"github.com/batonhq/baton/failover/membership"
	"github.com/batonhq/baton/failover/quorum"
	"github.com/batonhq/baton/scheduler/store"
	"github.com/batonhq/baton/wire"
)

// lockedClock is a fake clock that the server's goroutines may read while
// the test advances it.
type lockedClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *lockedClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *lockedClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// fakeFencer records fences in the agents' command log, so that the order
// of fences and starts can be checked; fail makes a device fail.
type fakeFencer struct {
	agents *MemoryAgents
	mu     sync.Mutex
	fail   map[string]bool // device → fails
}

func (f *fakeFencer) Fence(_ context.Context, node, device string) error {
	f.mu.Lock()
	fail := f.fail[device]
	f.mu.Unlock()
	f.agents.mu.Lock()
	defer f.agents.mu.Unlock()
	if fail {
		f.agents.Log = append(f.agents.Log, "fence-failed "+node+" "+device)
		return errors.New("device says no")
	}
	f.agents.Log = append(f.agents.Log, "fence "+node+" "+device)
	delete(f.agents.running, node) // powered off: nothing runs there
	return nil
}

// fakeProber answers for the nodes marked alive.
type fakeProber struct {
	mu    sync.Mutex
	alive map[string]bool
}

func (p *fakeProber) Probe(_ context.Context, node, _ string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.alive[node] {
		return nil
	}
	return fmt.Errorf("connection refused")
}

func (p *fakeProber) set(node string, alive bool) {
	p.mu.Lock()
	p.alive[node] = alive
	p.mu.Unlock()
}

// haHarness is a leading Server with failover on in-memory twins. Nodes
// beat when the test steps time; a "dead" node is silent.
type haHarness struct {
	t      *testing.T
	srv    *Server
	agents *MemoryAgents
	fencer *fakeFencer
	prober *fakeProber
	state  *store.MemoryState
	clock  *lockedClock
	mu     sync.Mutex
	nodes  []string
	silent map[string]bool
}

func newHAHarness(t *testing.T, cfg HAConfig, nodes ...string) *haHarness {
	h := &haHarness{t: t, agents: NewMemoryAgents(), prober: &fakeProber{alive: map[string]bool{}},
		state: store.NewMemoryState(), clock: &lockedClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)},
		nodes: nodes, silent: map[string]bool{}}
	h.fencer = &fakeFencer{agents: h.agents, fail: map[string]bool{}}
	if cfg.Groups.DefaultFenceLevels == nil {
		cfg.Groups.DefaultFenceLevels = []string{"power"}
	}
	cfg.Fencer, cfg.Prober, cfg.State = h.fencer, h.prober, h.state
	h.srv = h.newServer(cfg)
	for _, n := range nodes {
		h.prober.set(n, true)
	}
	h.step(time.Second) // every node joins and runs
	return h
}

func (h *haHarness) newServer(cfg HAConfig) *Server {
	srv := New(Config{Store: store.NewMemory(), Agents: h.agents, Clock: h.clock, Membership: membership.FailoverConfig(),
		CommandTimeout: time.Second, HA: cfg})
	if err := srv.Start(context.Background()); err != nil {
		h.t.Fatal(err)
	}
	return srv
}

// step lets d pass in 50 ms ticks; live nodes beat every 250 ms and report
// what they run every second.
func (h *haHarness) step(d time.Duration) {
	for elapsed := time.Duration(0); elapsed < d; elapsed += 50 * time.Millisecond {
		h.clock.advance(50 * time.Millisecond)
		now := h.clock.Now()
		h.mu.Lock()
		var live []string
		for _, n := range h.nodes {
			if !h.silent[n] {
				live = append(live, n)
			}
		}
		h.mu.Unlock()
		for _, n := range live {
			if now.UnixMilli()%250 == 0 {
				h.srv.HandleAlive(wire.Alive{V: 1, Node: n, IntervalMS: 250})
			}
			if now.UnixMilli()%1000 == 0 {
				h.report(n)
			}
		}
		h.srv.Tick()
		h.settle()
	}
}

func (h *haHarness) report(node string) {
	h.srv.HandleHeartbeat(context.Background(), wire.Heartbeat{
		V: wire.Version, Node: node, IntervalMS: 1000, AliveIntervalMS: 250, SentAt: h.clock.Now(),
		Capacity: wire.Capacity{CPUs: 4, CPUMillis: 4000, MemoryMB: 8192}, Headroom: wire.Headroom{CPUMillis: 4000, MemoryMB: 8192},
		Workloads: h.agents.Running(node), ProbeAddr: "probe-" + node,
	})
}

// settle waits (real time) until the goroutines carrying out actions are
// done: the command log stops growing.
func (h *haHarness) settle() {
	last := -1
	for range 200 {
		n := len(h.agents.Commands())
		if n == last {
			return
		}
		last = n
		time.Sleep(2 * time.Millisecond)
	}
}

func (h *haHarness) kill(node string) {
	h.mu.Lock()
	h.silent[node] = true
	h.mu.Unlock()
	h.prober.set(node, false)
}

// waitGroup steps time until the group is in state on node.
func (h *haHarness) waitGroup(name, state, node string, within time.Duration) GroupView {
	h.t.Helper()
	var g GroupView
	for waited := time.Duration(0); waited <= within; waited += 50 * time.Millisecond {
		var err error
		if g, err = h.srv.Group(name); err == nil && g.State == state && g.Node == node {
			return g
		}
		h.step(50 * time.Millisecond)
	}
	h.t.Fatalf("group %s is %s on %q (%s), want %s on %s within %s\ncommands: %v\nevents: %v", name, g.State, g.Node, g.Reason, state, node, within, h.agents.Commands(), h.srv.Events(time.Time{}))
	return g
}

func dbGroup(nodes ...string) GroupRequest {
	return GroupRequest{Name: "db", Nodes: nodes, Resources: []ResourceRequest{
		{Name: "ip", Command: []string{"/bin/sleep", "inf"}},
		{Name: "pg", Command: []string{"/bin/sleep", "inf"}, Monitor: &MonitorRequest{Command: []string{"/bin/true"}, Restarts: 1}},
	}}
}

func TestGroupStartsInOrderOnPreferredNode(t *testing.T) {
	h := newHAHarness(t, HAConfig{}, "n1", "n2")
	if _, err := h.srv.CreateGroup(context.Background(), dbGroup("n2", "n1")); err != nil {
		t.Fatal(err)
	}
	g := h.waitGroup("db", "running", "n2", 2*time.Second)
	want := []string{"start n2 grp_db_ip", "start n2 grp_db_pg"}
	if got := h.agents.Commands(); !slices.Equal(got, want) {
		t.Errorf("commands %v, want %v", got, want)
	}
	if g.Resources[1].State != "started" || g.Resources[1].Workload != "grp_db_pg" {
		t.Errorf("resource view %+v", g.Resources[1])
	}
	if _, err := h.srv.CreateGroup(context.Background(), dbGroup()); !errors.Is(err, ErrConflict) {
		t.Errorf("second create: %v, want a conflict", err)
	}
}

func TestNodeDeathFencesThenRestartsElsewhere(t *testing.T) {
	h := newHAHarness(t, HAConfig{}, "n1", "n2", "n3")
	if _, err := h.srv.CreateGroup(context.Background(), dbGroup("n1", "n2")); err != nil {
		t.Fatal(err)
	}
	h.waitGroup("db", "running", "n1", 2*time.Second)
	died := h.clock.Now()
	h.kill("n1")
	h.waitGroup("db", "running", "n2", 3*time.Second)
	took := h.clock.Now().Sub(died)
	cmds := h.agents.Commands()
	fence := slices.Index(cmds, "fence n1 power")
	start := slices.Index(cmds, "start n2 grp_db_ip")
	if fence < 0 || start < fence {
		t.Fatalf("want the fence of n1 before the start on n2: %v", cmds)
	}
	// 3 missed beats (750 ms) + a refused probe, then fence and start.
	if took > 1500*time.Millisecond {
		t.Errorf("failover took %s of server time, want ≤ 1.5 s", took)
	}
	var kinds []string
	for _, e := range h.srv.Events(died) {
		kinds = append(kinds, e.Kind)
	}
	for _, k := range []string{"node", "probe", "fence", "start"} {
		if !slices.Contains(kinds, k) {
			t.Errorf("event log lacks %q: %v", k, kinds)
		}
	}
}

func TestBusyNodeIsNotFailedOver(t *testing.T) {
	h := newHAHarness(t, HAConfig{}, "n1", "n2", "n3")
	if _, err := h.srv.CreateGroup(context.Background(), dbGroup("n1", "n2")); err != nil {
		t.Fatal(err)
	}
	h.waitGroup("db", "running", "n1", 2*time.Second)
	h.mu.Lock()
	h.silent["n1"] = true // silent, but its probe answers: a busy machine
	h.mu.Unlock()
	h.step(5 * time.Second)
	if g, _ := h.srv.Group("db"); g.Node != "n1" || g.State != "running" {
		t.Errorf("group moved off a busy node: %+v", g)
	}
	if slices.ContainsFunc(h.agents.Commands(), func(c string) bool { return strings.HasPrefix(c, "fence") }) {
		t.Errorf("a busy node was fenced: %v", h.agents.Commands())
	}
	n, _ := h.srv.Node("n1")
	if n.State != string(membership.Suspect) {
		t.Errorf("busy node is %s, want suspect", n.State)
	}
}

func TestFenceLevelsInOrderAndNoRecoveryWithoutFence(t *testing.T) {
	h := newHAHarness(t, HAConfig{Groups: groups.Config{DefaultFenceLevels: []string{"ipmi", "pdu"}}}, "n1", "n2", "n3")
	h.fencer.fail["ipmi"], h.fencer.fail["pdu"] = true, true
	if _, err := h.srv.CreateGroup(context.Background(), dbGroup("n1", "n2")); err != nil {
		t.Fatal(err)
	}
	h.waitGroup("db", "running", "n1", 2*time.Second)
	h.kill("n1")
	h.step(3 * time.Second)
	g, _ := h.srv.Group("db")
	if g.State != "recovering" {
		t.Fatalf("with every fence level failing the group is %s (%s), want recovering", g.State, g.Reason)
	}
	if slices.Contains(h.agents.Commands(), "start n2 grp_db_ip") {
		t.Fatal("started on n2 without a fence")
	}
	cmds := h.agents.Commands()
	if i, j := slices.Index(cmds, "fence-failed n1 ipmi"), slices.Index(cmds, "fence-failed n1 pdu"); i < 0 || j < i {
		t.Errorf("fence levels not tried in order: %v", cmds)
	}
	// An operator who powered n1 off by hand confirms it.
	if err := h.srv.FenceNode(context.Background(), "n1", true); err != nil {
		t.Fatal(err)
	}
	h.waitGroup("db", "running", "n2", 2*time.Second)
}

func TestResourceFailuresRestartInPlaceThenFailOver(t *testing.T) {
	h := newHAHarness(t, HAConfig{}, "n1", "n2", "n3")
	if _, err := h.srv.CreateGroup(context.Background(), dbGroup("n1", "n2")); err != nil {
		t.Fatal(err)
	}
	h.waitGroup("db", "running", "n1", 2*time.Second)
	failMonitor := func() {
		h.agents.Update("n1", "grp_db_pg", func(st wire.WorkloadStatus) wire.WorkloadStatus {
			st.MonitorFailures++
			st.MonitorError = "exit status 1"
			return st
		})
	}
	failMonitor()
	h.step(1100 * time.Millisecond)
	h.waitGroup("db", "running", "n1", 2*time.Second)
	if got := h.agents.Commands(); !slices.Contains(got, "stop n1 grp_db_pg") || slices.Contains(got, "stop n1 grp_db_ip") {
		t.Fatalf("restart in place should stop pg only: %v", got)
	}
	failMonitor() // the restarted run fails too: restarts used up
	h.step(1100 * time.Millisecond)
	g := h.waitGroup("db", "running", "n2", 3*time.Second)
	if g.Failures["n1"] != 2 {
		t.Errorf("failures on n1 = %d, want 2", g.Failures["n1"])
	}
	if slices.ContainsFunc(h.agents.Commands(), func(c string) bool { return strings.HasPrefix(c, "fence") }) {
		t.Errorf("a resource failure fenced the node: %v", h.agents.Commands())
	}
}

func TestLostQuorumBlocksAndSelfFences(t *testing.T) {
	h := newHAHarness(t, HAConfig{}, "n1", "n2", "n3")
	if _, err := h.srv.CreateGroup(context.Background(), dbGroup("n1")); err != nil {
		t.Fatal(err)
	}
	h.waitGroup("db", "running", "n1", 2*time.Second)
	h.kill("n2")
	h.kill("n3")
	h.waitGroup("db", "blocked", "", 3*time.Second)
	if q := h.srv.quorumStatus(); q.Quorate {
		t.Fatalf("1 of 3 votes is quorate: %s", q)
	}
	if !slices.Contains(h.agents.Commands(), "self-fence n1") {
		t.Errorf("n1 was not told to self-fence: %v", h.agents.Commands())
	}
	if b, ok := h.srv.Beacon(); !ok || b.Quorate {
		t.Errorf("beacon %+v, want a non-quorate beacon", b)
	}
	if slices.ContainsFunc(h.agents.Commands(), func(c string) bool { return strings.HasPrefix(c, "fence") }) {
		t.Errorf("a partition without quorum fenced: %v", h.agents.Commands())
	}
}

func TestWitnessKeepsTwoNodesQuorate(t *testing.T) {
	w := &fakeWitness{granted: true}
	h := newHAHarness(t, HAConfig{Witness: w, Quorum: quorum.Config{WitnessVotes: 1}}, "n1", "n2")
	if _, err := h.srv.CreateGroup(context.Background(), dbGroup("n1", "n2")); err != nil {
		t.Fatal(err)
	}
	h.waitGroup("db", "running", "n1", 2*time.Second)
	h.kill("n1")
	h.waitGroup("db", "running", "n2", 3*time.Second)
	// Votes at run time: n2 alone with 0 votes has only the witness's.
	if _, err := h.srv.SetVotes(context.Background(), "n2", 0); err != nil {
		t.Fatal(err)
	}
	h.waitGroup("db", "blocked", "", 3*time.Second)
	if _, err := h.srv.SetVotes(context.Background(), "n2", 2); err != nil {
		t.Fatal(err)
	}
	h.waitGroup("db", "running", "n2", 3*time.Second)
	if _, err := h.srv.SetVotes(context.Background(), "nope", 1); !errors.Is(err, ErrNotFound) {
		t.Errorf("votes of an unknown node: %v", err)
	}
}

type fakeWitness struct {
	mu      sync.Mutex
	granted bool
}

func (w *fakeWitness) Granted() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.granted
}

func TestNewLeaderRestoresGroupsAndVotes(t *testing.T) {
	h := newHAHarness(t, HAConfig{}, "n1", "n2", "n3")
	if _, err := h.srv.CreateGroup(context.Background(), dbGroup("n1", "n2")); err != nil {
		t.Fatal(err)
	}
	h.waitGroup("db", "running", "n1", 2*time.Second)
	if _, err := h.srv.SetVotes(context.Background(), "n2", 3); err != nil {
		t.Fatal(err)
	}
	// The old leader is deposed; a new one starts on the same state.
	if err := h.srv.SetLeadership(context.Background(), false, 0, "other"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.srv.Groups(); !errors.Is(err, ErrNotLeader) {
		t.Errorf("a follower answered groups: %v", err)
	}
	before := len(h.agents.Commands())
	h.srv = h.newServer(HAConfig{Fencer: h.fencer, Prober: h.prober, State: h.state, Groups: groups.Config{DefaultFenceLevels: []string{"power"}}})
	h.step(time.Second)
	g := h.waitGroup("db", "running", "n1", 2*time.Second)
	if g.Resources[0].State != "started" {
		t.Errorf("restored resource state %+v", g.Resources)
	}
	if cmds := h.agents.Commands()[before:]; len(cmds) != 0 {
		t.Errorf("the new leader sent commands for a group that runs: %v", cmds)
	}
	q, err := h.srv.Quorum()
	if err != nil {
		t.Fatal(err)
	}
	if i := slices.IndexFunc(q.Nodes, func(v VotesView) bool { return v.Node == "n2" }); i < 0 || q.Nodes[i].Votes != 3 {
		t.Errorf("votes not restored: %+v", q.Nodes)
	}
}

// newLeaderWithAStartInFlight deposes the leader while the start of group
// db's first resource on n1 is held on its way, and makes a new server on
// the same state. Closing hold lets the held start answer (to the old one).
func newLeaderWithAStartInFlight(t *testing.T) (*haHarness, chan struct{}) {
	t.Helper()
	h := newHAHarness(t, HAConfig{}, "n1", "n2", "n3")
	hold := make(chan struct{})
	h.agents.mu.Lock()
	h.agents.HoldStart = map[string]chan struct{}{"grp_db_ip": hold}
	h.agents.mu.Unlock()
	if _, err := h.srv.CreateGroup(context.Background(), dbGroup("n1", "n2")); err != nil {
		t.Fatal(err)
	}
	h.waitGroup("db", "starting", "n1", 2*time.Second)
	if err := h.srv.SetLeadership(context.Background(), false, 0, "other"); err != nil {
		t.Fatal(err)
	}
	h.srv = h.newServer(HAConfig{Fencer: h.fencer, Prober: h.prober, State: h.state, Groups: groups.Config{DefaultFenceLevels: []string{"power"}}})
	return h, hold
}

// TestNewLeaderAsksAgainForAStartInFlight: the leader is deposed while a
// group resource's start is on its way; its answer goes to the old leader,
// which ignores it. The new leader must ask again (starts are idempotent)
// and the group must come up, once.
func TestNewLeaderAsksAgainForAStartInFlight(t *testing.T) {
	h, hold := newLeaderWithAStartInFlight(t)
	close(hold) // both starts answer now: the old leader's is ignored
	h.step(time.Second)
	g := h.waitGroup("db", "running", "n1", 3*time.Second)
	if g.Resources[0].State != "started" || g.Resources[1].State != "started" {
		t.Errorf("resources %+v, want both started", g.Resources)
	}
	if got := h.agents.Running("n1"); len(got) != 2 {
		t.Errorf("n1 runs %+v, want the group's two resources once each", got)
	}
	var asked bool
	for _, e := range h.srv.Events(time.Time{}) {
		asked = asked || strings.Contains(e.Detail, "asked again")
	}
	if !asked {
		t.Errorf("no event says the start was asked again: %v", h.srv.Events(time.Time{}))
	}
}

// TestDeposedWhileAskingAgainDoesNotCrash: a new leader that still has
// inherited starts parked (its nodes not running yet to it) is deposed; as
// a follower it goes on handling beats without an engine.
func TestDeposedWhileAskingAgainDoesNotCrash(t *testing.T) {
	h, hold := newLeaderWithAStartInFlight(t)
	// Deposed before its nodes ran to it: the inherited start is parked.
	if err := h.srv.SetLeadership(context.Background(), false, 0, "third"); err != nil {
		t.Fatal(err)
	}
	close(hold)
	h.step(time.Second) // beats and ticks reach a follower
	if _, err := h.srv.Groups(); !errors.Is(err, ErrNotLeader) {
		t.Errorf("the deposed server answered groups: %v", err)
	}
}

func TestOrphanGroupResourceIsStopped(t *testing.T) {
	h := newHAHarness(t, HAConfig{}, "n1", "n2")
	if _, err := h.srv.CreateGroup(context.Background(), dbGroup("n1", "n2")); err != nil {
		t.Fatal(err)
	}
	h.waitGroup("db", "running", "n1", 2*time.Second)
	// n2 reports a copy it should not run (left from a failover it slept through).
	if _, err := h.agents.Start(context.Background(), "n2", wire.WorkloadSpec{ID: "grp_db_pg", Command: []string{"x"}, Group: &wire.GroupRef{Group: "db", Resource: "pg"}}); err != nil {
		t.Fatal(err)
	}
	h.step(1100 * time.Millisecond)
	if !slices.Contains(h.agents.Commands(), "stop n2 grp_db_pg") {
		t.Errorf("orphan not stopped: %v", h.agents.Commands())
	}
}

func TestGroupRequestValidation(t *testing.T) {
	cases := []struct {
		name string
		req  GroupRequest
		want string
	}{
		{"no name", GroupRequest{Resources: dbGroup().Resources}, "group name"},
		{"underscore", GroupRequest{Name: "a_b", Resources: dbGroup().Resources}, "group name"},
		{"no resources", GroupRequest{Name: "db"}, "has no resources"},
		{"bad kind", GroupRequest{Name: "db", Resources: []ResourceRequest{{Name: "ip", Kind: "ip", Command: []string{"x"}}}}, `kind "ip" is not supported yet`},
		{"no command", GroupRequest{Name: "db", Resources: []ResourceRequest{{Name: "pg"}}}, `"command" is empty`},
		{"bad node", GroupRequest{Name: "db", Nodes: []string{"a.b"}, Resources: dbGroup().Resources}, "node name"},
		{"bad interval", GroupRequest{Name: "db", Resources: []ResourceRequest{{Name: "pg", Command: []string{"x"}, Monitor: &MonitorRequest{Interval: "soon"}}}}, "monitor interval"},
		{"bad failback", GroupRequest{Name: "db", Failback: "sometimes", Resources: dbGroup().Resources}, "failback"},
		{"twice", GroupRequest{Name: "db", Resources: []ResourceRequest{dbGroup().Resources[0], dbGroup().Resources[0]}}, "used twice"},
		{"bad timeout", GroupRequest{Name: "db", FailureTimeout: "-1s", Resources: dbGroup().Resources}, "failure_timeout"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.req.Group()
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want ErrInvalid containing %q", err, tc.want)
			}
		})
	}
	if _, err := dbGroup("n1").Group(); err != nil {
		t.Errorf("valid group refused: %v", err)
	}
}

func TestDrainMovesGroupsOffWithoutFence(t *testing.T) {
	h := newHAHarness(t, HAConfig{}, "n1", "n2", "n3")
	if _, err := h.srv.CreateGroup(context.Background(), dbGroup("n1", "n2")); err != nil {
		t.Fatal(err)
	}
	h.waitGroup("db", "running", "n1", 2*time.Second)
	if _, err := h.srv.DrainNode(context.Background(), "n1"); err != nil {
		t.Fatal(err)
	}
	h.waitGroup("db", "running", "n2", 2*time.Second)
	cmds := h.agents.Commands()
	if i, j := slices.Index(cmds, "stop n1 grp_db_pg"), slices.Index(cmds, "stop n1 grp_db_ip"); i < 0 || j < i {
		t.Errorf("drain did not stop the group in reverse on n1: %v", cmds)
	}
	if slices.ContainsFunc(cmds, func(c string) bool { return strings.HasPrefix(c, "fence") }) {
		t.Errorf("drain fenced a node: %v", cmds)
	}
	// Beats keep coming from n1: it must stay out of the group's way.
	h.step(2 * time.Second)
	if g, _ := h.srv.Group("db"); g.Node != "n2" {
		t.Fatalf("group went back to a drained node: %+v", g)
	}
	if _, err := h.srv.MoveGroup(context.Background(), "db", "n1"); !errors.Is(err, ErrConflict) {
		t.Errorf("move to a drained node: %v, want a conflict", err)
	}
	if _, err := h.srv.UndrainNode(context.Background(), "n1"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.srv.MoveGroup(context.Background(), "db", "n1"); err != nil {
		t.Errorf("move after undrain: %v", err)
	}
	h.waitGroup("db", "running", "n1", 2*time.Second)
}

// TestStartNotFailedByADeadRecordOfAnEarlierRun: a fenced node comes back
// with the dead records of its group resources (its agent re-adopted them
// from its state file). While the group's failback start there is in
// flight, the node's reports of those records are about the fenced run, not
// the one being started: they must not count as its failure.
func TestStartNotFailedByADeadRecordOfAnEarlierRun(t *testing.T) {
	h := newHAHarness(t, HAConfig{}, "n1", "n2", "n3")
	req := dbGroup("n1", "n2")
	req.Failback = "auto"
	if _, err := h.srv.CreateGroup(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	h.waitGroup("db", "running", "n1", 2*time.Second)
	first := h.agents.Running("n1")
	h.kill("n1")
	h.waitGroup("db", "running", "n2", 3*time.Second)
	// n1 reboots; its agent re-adopts the records of the run the fence
	// killed, and the failback's first start there is held in flight.
	hold := make(chan struct{})
	h.agents.mu.Lock()
	h.agents.running["n1"] = map[string]wire.WorkloadStatus{}
	for _, st := range first {
		st.State, st.Error = wire.StateFailed, "killed by signal SIGKILL"
		h.agents.running["n1"][st.ID] = st
	}
	h.agents.HoldStart = map[string]chan struct{}{"grp_db_ip": hold}
	h.agents.mu.Unlock()
	h.mu.Lock()
	h.silent["n1"] = false
	h.mu.Unlock()
	h.prober.set("n1", true)
	h.waitGroup("db", "starting", "n1", 3*time.Second)
	h.step(2500 * time.Millisecond) // n1 reports its dead records twice meanwhile
	close(hold)
	g := h.waitGroup("db", "running", "n1", 3*time.Second)
	if g.Failures["n1"] != 0 {
		t.Errorf("the dead records of the fenced run counted %d failures of the new run on n1 (%s); events: %v", g.Failures["n1"], g.Reason, h.srv.Events(time.Time{}))
	}
	if got := h.agents.Running("n1"); len(got) != 2 || slices.ContainsFunc(got, func(st wire.WorkloadStatus) bool { return st.State != wire.StateRunning }) {
		t.Errorf("n1 runs %+v, want both resources running again", got)
	}
}
