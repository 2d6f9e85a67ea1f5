package scheduler

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

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
