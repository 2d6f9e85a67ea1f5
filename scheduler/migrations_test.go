package scheduler

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/migrate"
	"github.com/batonhq/baton/scheduler/store"
	"github.com/batonhq/baton/wire"
)

func (h *harness) waitMigration(id string) MigrationView {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		m, err := h.srv.Migration(id)
		if err != nil {
			h.t.Fatal(err)
		}
		if !m.EndedAt.IsZero() {
			return m
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("migration %s did not end: %+v", id, m)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestMigrationMovesTheWorkload(t *testing.T) {
	h := newHarness(t, "n1", "n2")
	ctx := context.Background()
	w, err := h.srv.CreateWorkload(ctx, req("web", 100))
	if err != nil {
		t.Fatal(err)
	}
	hold := make(chan struct{})
	h.agents.HoldPrepare = hold
	m, err := h.srv.StartMigration(ctx, "web", MigrationRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := h.srv.Workload(w.ID); got.State != wire.StateMigrating || got.MigrationTarget != "n2" {
		t.Errorf("during the migration the workload is %+v, want migrating to n2", got)
	}
	if m.Source != "n1" || m.Target != "n2" || m.Mode != "stop-copy" || m.ModeReason == "" {
		t.Errorf("migration = %+v, want n1 → n2 in stop-copy with a reason", m)
	}
	if _, err := h.srv.StartMigration(ctx, w.ID, MigrationRequest{}); !errors.Is(err, ErrConflict) {
		t.Errorf("second migration of the same workload: %v, want ErrConflict", err)
	}
	// Heartbeats during the migration must not stop either copy.
	h.beat("n1")
	h.beat("n2")
	close(hold)
	m = h.waitMigration(m.ID)
	if m.State != "done" || m.TargetPID == 0 {
		t.Fatalf("migration ended %+v, want done with a target pid", m)
	}
	got, _ := h.srv.Workload(w.ID)
	if got.Node != "n2" || got.HostPID != m.TargetPID || got.State != wire.StateRunning || got.Migration != "" {
		t.Fatalf("after migration the workload is %+v", got)
	}
	h.beat("n1")
	h.beat("n2")
	for _, c := range h.agents.Commands() {
		if strings.HasPrefix(c, "stop") || strings.HasPrefix(c, "start n2") {
			t.Errorf("reconciliation interfered with the migration: %v", h.agents.Commands())
		}
	}
	if len(h.agents.Running("n1")) != 0 || len(h.agents.Running("n2")) != 1 {
		t.Errorf("copies: n1 %v, n2 %v; want one, on n2", h.agents.Running("n1"), h.agents.Running("n2"))
	}
}

func TestFailedMigrationRollsBack(t *testing.T) {
	for _, op := range []string{wire.OpMigratePrepare, wire.OpMigrateDump, wire.OpMigrateSendImages, wire.OpMigrateRestore} {
		t.Run(op, func(t *testing.T) {
			h := newHarness(t, "n1", "n2")
			ctx := context.Background()
			w, err := h.srv.CreateWorkload(ctx, req("web", 100))
			if err != nil {
				t.Fatal(err)
			}
			h.agents.FailMigration = op
			m, err := h.srv.StartMigration(ctx, w.ID, MigrationRequest{To: "n2"})
			if err != nil {
				t.Fatal(err)
			}
			m = h.waitMigration(m.ID)
			if m.State != "failed" || !strings.Contains(m.Reason, "injected failure") {
				t.Fatalf("migration ended %+v, want failed with the reason", m)
			}
			got, _ := h.srv.Workload(w.ID)
			if got.Node != "n1" || got.HostPID != w.HostPID || got.State != wire.StateRunning || got.Migration != "" {
				t.Fatalf("after rollback the workload is %+v", got)
			}
			if n1, n2 := h.agents.Running("n1"), h.agents.Running("n2"); len(n1) != 1 || n1[0].State != wire.StateRunning || len(n2) != 0 {
				t.Errorf("copies after rollback: n1 %+v, n2 %+v; want one running on n1", n1, n2)
			}
		})
	}
}

func TestMigrationRefusals(t *testing.T) {
	h := newHarness(t, "n1", "n2")
	ctx := context.Background()
	if _, err := h.srv.CreateWorkload(ctx, req("web", 100)); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		id   string
		req  MigrationRequest
		want error
	}{
		{"unknown workload", "nope", MigrationRequest{}, ErrNotFound},
		{"unknown mode", "web", MigrationRequest{Mode: "teleport"}, ErrInvalid},
		{"to its own node", "web", MigrationRequest{To: "n1"}, ErrInvalid},
		{"to an unknown node", "web", MigrationRequest{To: "n9"}, ErrNoFit},
		{"pre-copy without dirty tracking", "web", MigrationRequest{Mode: "pre-copy"}, ErrUnsupported},
		{"post-copy without lazy pages", "web", MigrationRequest{Mode: "post-copy"}, ErrUnsupported},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := h.srv.StartMigration(ctx, tc.id, tc.req); !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
		})
	}
	if ms := h.srv.Migrations(); len(ms) != 0 {
		t.Errorf("refused migrations were recorded: %+v", ms)
	}
}

// newLazyHarness is newHarness with nodes n1 and n2 that report lazy pages.
func newLazyHarness(t *testing.T, policy migrate.Policy) *harness {
	h := &harness{t: t, store: store.NewMemory(), agents: NewMemoryAgents(), clock: &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}, lazy: true}
	h.srv = New(Config{Store: h.store, Agents: h.agents, Clock: h.clock, MigrationPolicy: policy})
	for range 2 {
		h.beat("n1")
		h.beat("n2")
	}
	return h
}

func TestPostCopyMigration(t *testing.T) {
	h := newLazyHarness(t, migrate.Policy{})
	ctx := context.Background()
	w, err := h.srv.CreateWorkload(ctx, req("web", 100))
	if err != nil {
		t.Fatal(err)
	}
	m, err := h.srv.StartMigration(ctx, w.ID, MigrationRequest{Mode: "post-copy"})
	if err != nil {
		t.Fatal(err)
	}
	m = h.waitMigration(m.ID)
	if m.State != "done" || m.Mode != "post-copy" {
		t.Fatalf("migration ended %+v, want done in post-copy", m)
	}
	var phases []string
	for _, p := range m.Phases {
		phases = append(phases, p.Phase)
	}
	if !strings.Contains(strings.Join(phases, ","), "restore,lazy-pages,commit") {
		t.Errorf("phases %v lack restore → lazy-pages → commit", phases)
	}
	// The source dies only after every page arrived.
	log := strings.Join(h.agents.Commands(), "\n")
	if i, j := strings.Index(log, wire.OpMigrateWaitPages+" n2"), strings.Index(log, wire.OpMigrateCommit+" n1 source"); i < 0 || j < i {
		t.Fatalf("the source was committed before wait-pages answered:\n%s", log)
	}
}

func TestPostCopyPageFailureRollsBackTargetFirst(t *testing.T) {
	h := newLazyHarness(t, migrate.Policy{})
	ctx := context.Background()
	w, err := h.srv.CreateWorkload(ctx, req("web", 100))
	if err != nil {
		t.Fatal(err)
	}
	h.agents.FailMigration = wire.OpMigrateWaitPages
	m, err := h.srv.StartMigration(ctx, w.ID, MigrationRequest{Mode: "post-copy"})
	if err != nil {
		t.Fatal(err)
	}
	m = h.waitMigration(m.ID)
	if m.State != "failed" || !strings.Contains(m.Reason, "lazy-pages") || !strings.Contains(m.Reason, "source resumed") {
		t.Fatalf("migration ended %+v, want failed in lazy-pages with the source resumed", m)
	}
	log := strings.Join(h.agents.Commands(), "\n")
	if i, j := strings.Index(log, wire.OpMigrateAbort+" n2 target"), strings.Index(log, wire.OpMigrateAbort+" n1 source"); i < 0 || j < i {
		t.Fatalf("the source resumed before the target's copy was killed:\n%s", log)
	}
	got, _ := h.srv.Workload(w.ID)
	if got.Node != "n1" || got.State != wire.StateRunning {
		t.Fatalf("after the rollback the workload is %+v", got)
	}
	if n1, n2 := h.agents.Running("n1"), h.agents.Running("n2"); len(n1) != 1 || len(n2) != 0 {
		t.Errorf("copies after rollback: n1 %+v, n2 %+v", n1, n2)
	}
}

func TestAutoChoosesPostCopyOnlyIfAllowed(t *testing.T) {
	for _, allow := range []bool{false, true} {
		h := newLazyHarness(t, migrate.Policy{AllowPostCopy: allow, MaxFrozen: time.Millisecond})
		w, err := h.srv.CreateWorkload(context.Background(), req("web", 100))
		if err != nil {
			t.Fatal(err)
		}
		m, err := h.srv.StartMigration(context.Background(), w.ID, MigrationRequest{})
		if err != nil {
			t.Fatal(err)
		}
		want := map[bool]string{false: "stop-copy", true: "post-copy"}[allow]
		if m.Mode != want || !strings.Contains(m.ModeReason, "budget") {
			t.Errorf("AllowPostCopy=%t: auto chose %s (%s), want %s", allow, m.Mode, m.ModeReason, want)
		}
		h.waitMigration(m.ID)
	}
}

// TestMigrationResumedAfterServerRestart: the server driving a migration
// dies (its driver hangs in prepare for good); a new server on the same
// stores finds the migration unfinished, rolls it back (the target first),
// and lists it, like a third server after it.
func TestMigrationResumedAfterServerRestart(t *testing.T) {
	h := newHarness(t)
	ms := store.NewMemoryMigrations()
	// The first server's migration operations never return: it is dead.
	dead := deadAgents{MemoryAgents: h.agents, hang: make(chan struct{})}
	h.srv = New(Config{Store: h.store, Agents: dead, Clock: h.clock, MigrationStore: ms})
	ctx := context.Background()
	if err := h.srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		h.beat("n1")
		h.beat("n2")
	}
	w, err := h.srv.CreateWorkload(ctx, req("web", 100))
	if err != nil {
		t.Fatal(err)
	}
	m, err := h.srv.StartMigration(ctx, w.ID, MigrationRequest{To: "n2"})
	if err != nil {
		t.Fatal(err)
	}

	h.srv = New(Config{Store: h.store, Agents: h.agents, Clock: h.clock, MigrationStore: ms})
	if err := h.srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	got := h.waitMigration(m.ID)
	if got.State != "failed" || !strings.Contains(got.Reason, "driver stopped") || got.StartedAt != m.StartedAt {
		t.Fatalf("resumed migration ended %+v, want failed (rolled back) with its start kept", got)
	}
	if len(got.Phases) < 2 || got.Phases[0].Phase != "prepare" {
		t.Errorf("phases %+v: want the first driver's prepare, then the rollback", got.Phases)
	}
	if wl, _ := h.srv.Workload(w.ID); wl.Node != "n1" || wl.State != wire.StateRunning || wl.Migration != "" {
		t.Fatalf("after the rollback the workload is %+v", wl)
	}
	log := strings.Join(h.agents.Commands(), "\n")
	if i, j := strings.Index(log, wire.OpMigrateAbort+" n2 target"), strings.Index(log, wire.OpMigrateAbort+" n1 source"); i < 0 || j < i {
		t.Fatalf("the rollback did not abort the target before the source:\n%s", log)
	}

	third := New(Config{Store: h.store, Agents: h.agents, Clock: h.clock, MigrationStore: ms})
	if err := third.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if list := third.Migrations(); len(list) != 1 || list[0].ID != m.ID || list[0].State != "failed" || list[0].Reason != got.Reason {
		t.Fatalf("a restarted server lists %+v, want the failed migration %s", list, m.ID)
	}
}

// deadAgents hangs every migration operation (the server that sent it is
// gone); starts and stops go through.
type deadAgents struct {
	*MemoryAgents
	hang chan struct{}
}

func (d deadAgents) Migrate(ctx context.Context, node, op string, cmd wire.MigrationCmd) (wire.MigrationReply, error) {
	<-d.hang
	return wire.MigrationReply{}, errors.New("dead")
}
