package scheduler

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/scheduler/store"
	"github.com/batonhq/baton/wire"
)

type fakeClock struct{ now time.Time }

func (c *fakeClock) Now() time.Time { return c.now }

// harness is a Server on in-memory twins with nodes that heartbeat on demand.
type harness struct {
	t      *testing.T
	srv    *Server
	store  *store.Memory
	agents *MemoryAgents
	clock  *fakeClock
	lazy   bool // nodes report lazy pages (post-copy) in their features
}

func newHarness(t *testing.T, nodes ...string) *harness {
	h := &harness{t: t, store: store.NewMemory(), agents: NewMemoryAgents(), clock: &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}}
	h.srv = New(Config{Store: h.store, Agents: h.agents, Clock: h.clock})
	if err := h.srv.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		for _, n := range nodes {
			h.beat(n)
		}
	}
	return h
}

func (h *harness) beat(node string) {
	h.clock.now = h.clock.now.Add(100 * time.Millisecond)
	h.srv.HandleHeartbeat(context.Background(), wire.Heartbeat{
		V: wire.Version, Node: node, IntervalMS: 1000,
		Capacity:  wire.Capacity{CPUs: 4, CPUMillis: 4000, MemoryMB: 8192},
		Headroom:  wire.Headroom{CPUMillis: 4000, MemoryMB: 8192},
		Workloads: h.agents.Running(node),
		Features:  &wire.NodeFeatures{CRIU: true, LazyPages: h.lazy, UFFD: h.lazy},
	})
}

func req(name string, memMB int64) WorkloadRequest {
	return WorkloadRequest{Name: name, Command: []string{"/bin/sleep", "1000"}, Resources: wire.Resources{MemoryMB: memMB}}
}

func TestCreateReservesCapacity(t *testing.T) {
	h := newHarness(t, "n1", "n2")
	ctx := context.Background()
	// Bin-pack fills n1 (tie broken by name), then n2 once n1's 8 GiB are reserved.
	var nodes []string
	for i := range 3 {
		w, err := h.srv.CreateWorkload(ctx, req(fmt.Sprintf("w%d", i), 3000))
		if err != nil {
			t.Fatal(err)
		}
		if w.State != wire.StateRunning || w.HostPID == 0 {
			t.Errorf("created %+v, want running with a pid", w)
		}
		nodes = append(nodes, w.Node)
	}
	if want := []string{"n1", "n1", "n2"}; !slices.Equal(nodes, want) {
		t.Errorf("placed on %v, want %v", nodes, want)
	}
	_, err := h.srv.CreateWorkload(ctx, req("w3", 6000))
	if !errors.Is(err, ErrNoFit) {
		t.Fatalf("err = %v, want ErrNoFit", err)
	}
	if n := len(h.srv.Workloads()); n != 3 {
		t.Errorf("%d workloads after a rejected one, want 3", n)
	}
	stored, _ := h.store.List(ctx)
	if len(stored) != 3 {
		t.Errorf("%d records stored, want 3", len(stored))
	}
}

func TestCreateRejections(t *testing.T) {
	tests := []struct {
		name   string
		setup  func(h *harness)
		req    WorkloadRequest
		target error
		msg    string
	}{
		{"invalid", nil, WorkloadRequest{Name: "x"}, ErrInvalid, "command"},
		{"name in use", func(h *harness) { _, _ = h.srv.CreateWorkload(context.Background(), req("dup", 1)) }, req("dup", 1), ErrConflict, "already used"},
		{"agent refuses", func(h *harness) { h.agents.Refuse = "exec: no such file" }, req("x", 1), ErrAgent, "no such file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, "n1")
			if tc.setup != nil {
				tc.setup(h)
			}
			before := len(h.srv.Workloads())
			_, err := h.srv.CreateWorkload(context.Background(), tc.req)
			if !errors.Is(err, tc.target) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("err = %v, want %v mentioning %q", err, tc.target, tc.msg)
			}
			if after := len(h.srv.Workloads()); after != before {
				t.Errorf("workloads %d → %d: a rejected request left a record", before, after)
			}
			stored, _ := h.store.List(context.Background())
			if len(stored) != before {
				t.Errorf("%d records stored, want %d", len(stored), before)
			}
		})
	}
}

func TestDeleteStopsAndForgets(t *testing.T) {
	h := newHarness(t, "n1")
	ctx := context.Background()
	w, err := h.srv.CreateWorkload(ctx, req("web", 10))
	if err != nil {
		t.Fatal(err)
	}
	got, done, err := h.srv.DeleteWorkload(ctx, w.ID)
	if err != nil || !done || got.State != wire.StateStopped {
		t.Fatalf("delete = %+v done=%v err=%v", got, done, err)
	}
	if len(h.agents.Running("n1")) != 0 {
		t.Error("agent still runs the workload")
	}
	if _, err := h.srv.Workload(w.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("get after delete: %v, want ErrNotFound", err)
	}
	if _, _, err := h.srv.DeleteWorkload(ctx, w.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("second delete: %v, want ErrNotFound", err)
	}
}

func TestRestartedServerReconcilesFromStore(t *testing.T) {
	h := newHarness(t, "n1")
	ctx := context.Background()
	w, err := h.srv.CreateWorkload(ctx, req("web", 10))
	if err != nil {
		t.Fatal(err)
	}
	// A new server on the same store and agents knows the workload and does
	// not start it again: the node reports it running.
	h.srv = New(Config{Store: h.store, Agents: h.agents, Clock: h.clock})
	if err := h.srv.Load(ctx); err != nil {
		t.Fatal(err)
	}
	h.beat("n1")
	h.beat("n1")
	got, err := h.srv.Workload(w.ID)
	if err != nil || got.HostPID != w.HostPID || got.State != wire.StateRunning {
		t.Fatalf("after restart: %+v %v", got, err)
	}
	starts := 0
	for _, c := range h.agents.Commands() {
		if strings.HasPrefix(c, "start") {
			starts++
		}
	}
	if starts != 1 {
		t.Errorf("%d start commands, want 1: %v", starts, h.agents.Commands())
	}
}

func TestNodeStatesFollowHeartbeats(t *testing.T) {
	h := newHarness(t, "n1", "n2")
	for range 80 { // 8 s of n2 beating alone: n1 is down
		h.beat("n2")
		h.srv.Tick()
	}
	states := map[string]string{}
	for _, n := range h.srv.Nodes() {
		states[n.Name] = n.State
	}
	if states["n1"] != "down" || states["n2"] != "running" {
		t.Fatalf("states = %v, want n1 down, n2 running", states)
	}
	if _, err := h.srv.CreateWorkload(context.Background(), WorkloadRequest{Name: "x", Command: []string{"x"},
		Constraints: store.Constraints{Nodes: []string{"n1"}}}); !errors.Is(err, ErrNoFit) || !strings.Contains(err.Error(), "down") {
		t.Errorf("placing on a down node: %v, want a no-fit naming the down node", err)
	}
}

// BenchmarkHeartbeat measures the server's cost per heartbeat: decoding the
// message and reconciling a node that runs 10 workloads, in a cluster of 100.
func BenchmarkHeartbeat(b *testing.B) {
	st := store.NewMemory()
	agents := NewMemoryAgents()
	srv := New(Config{Store: st, Agents: agents})
	ctx := context.Background()
	var payloads [][]byte
	for i := range 100 {
		node := fmt.Sprintf("n%03d", i)
		hb := wire.Heartbeat{V: wire.Version, Node: node, IntervalMS: 1000,
			Capacity: wire.Capacity{CPUs: 32, CPUMillis: 32000, MemoryMB: 262144},
			Headroom: wire.Headroom{CPUMillis: 32000, MemoryMB: 262144}}
		srv.HandleHeartbeat(ctx, hb)
		srv.HandleHeartbeat(ctx, hb)
	}
	for i := range 1000 {
		if _, err := srv.CreateWorkload(ctx, WorkloadRequest{Name: fmt.Sprintf("w%04d", i), Command: []string{"x"},
			Resources: wire.Resources{CPUMillis: 100, MemoryMB: 64}, Strategy: "spread"}); err != nil {
			b.Fatal(err)
		}
	}
	for i := range 100 {
		node := fmt.Sprintf("n%03d", i)
		payloads = append(payloads, wire.Encode(wire.Heartbeat{V: wire.Version, Node: node, IntervalMS: 1000,
			Capacity:  wire.Capacity{CPUs: 32, CPUMillis: 32000, MemoryMB: 262144},
			Headroom:  wire.Headroom{CPUMillis: 30000, MemoryMB: 200000},
			Workloads: agents.Running(node)}))
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		hb, err := wire.DecodeHeartbeat(payloads[i%len(payloads)])
		if err != nil {
			b.Fatal(err)
		}
		srv.HandleHeartbeat(ctx, hb)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1000, "µs/heartbeat")
}

// BenchmarkHeartbeatDecodeOnly is BenchmarkHeartbeat's baseline: decoding the
// same heartbeats without handling them.
func BenchmarkHeartbeatDecodeOnly(b *testing.B) {
	var payloads [][]byte
	for i := range 100 {
		var ws []wire.WorkloadStatus
		for j := range 10 {
			ws = append(ws, wire.WorkloadStatus{ID: fmt.Sprintf("w-%03d%02d", i, j), Name: "x", State: wire.StateRunning, HostPID: 1000 + j,
				Resources: wire.Resources{CPUMillis: 100, MemoryMB: 64}})
		}
		payloads = append(payloads, wire.Encode(wire.Heartbeat{V: wire.Version, Node: fmt.Sprintf("n%03d", i), IntervalMS: 1000, Workloads: ws}))
	}
	for i := 0; b.Loop(); i++ {
		if _, err := wire.DecodeHeartbeat(payloads[i%len(payloads)]); err != nil {
			b.Fatal(err)
		}
	}
}

// TestStartAnswerForAMovedRecordIsIgnored: a start's answer from a node
// that no longer holds the record (it moved meanwhile, by a reload or a
// drain's restart elsewhere) must not mark the record running there.
func TestStartAnswerForAMovedRecordIsIgnored(t *testing.T) {
	h := newHarness(t, "n1", "n2")
	ctx := context.Background()
	w, err := h.srv.CreateWorkload(ctx, req("web", 100))
	if err != nil {
		t.Fatal(err)
	}
	other := "n2"
	if w.Node == "n2" {
		other = "n1"
	}
	// The record moves to the other node, not started there yet.
	h.srv.mu.Lock()
	rec := h.srv.workloads[w.ID]
	rec.Node, rec.State, rec.HostPID = other, wire.StateStarting, 0
	h.srv.cacheLocked(rec)
	h.srv.mu.Unlock()
	late := wire.WorkloadStatus{ID: w.ID, State: wire.StateRunning, HostPID: 4242}
	got := h.srv.recordStart(ctx, w.ID, w.Node, late, nil)
	if got.Node != other || got.State != wire.StateStarting || got.HostPID != 0 {
		t.Errorf("after a late answer from %s the record is %s on %s (pid %d), want still starting on %s", w.Node, got.State, got.Node, got.HostPID, other)
	}
	// The answer from the node it is on counts.
	if got := h.srv.recordStart(ctx, w.ID, other, late, nil); got.State != wire.StateRunning || got.HostPID != 4242 {
		t.Errorf("the answer from %s left the record %s (pid %d), want running", other, got.State, got.HostPID)
	}
}
