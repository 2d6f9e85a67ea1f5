package runner

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/nodeagent/internal/testutil"
	"github.com/batonhq/baton/wire"
)

func TestGroupResourceKill(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	exits := make(chan wire.WorkloadStatus, 10)
	r, err := New(Config{DataDir: e.dir, Node: e.node, StopGrace: time.Minute, Logger: testLogger(t),
		OnExit: func(st wire.WorkloadStatus) { exits <- st }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })

	ref := &wire.GroupRef{Group: "db", Resource: "postgres"}
	mon := &wire.MonitorSpec{Command: []string{"true"}, IntervalMS: 100, TimeoutMS: 100}
	// A tree that ignores SIGTERM: Kill must not wait for a grace period.
	res := wire.WorkloadSpec{ID: "db-postgres", Command: []string{"sh", "-c", "trap '' TERM; sleep 1000 & wait"}, Group: ref, Monitor: mon}
	plain := wire.WorkloadSpec{ID: "web", Command: []string{"sleep", "1000"}}
	st, err := r.Start(ctx, res)
	if err != nil {
		t.Fatal(err)
	}
	if st.Group == nil || *st.Group != *ref {
		t.Errorf("Start status group = %v, want %v", st.Group, ref)
	}
	if _, err := r.Start(ctx, plain); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "2 processes in the resource's cgroup", func() bool { return len(e.procs("db-postgres")) == 2 })

	got := r.GroupResources()
	if len(got) != 1 || got[0].Spec.ID != "db-postgres" || got[0].Spec.Monitor == nil || *got[0].Status.Group != *ref {
		t.Fatalf("GroupResources = %+v, want only db-postgres with its monitor and group", got)
	}
	if s, ok := statusOf(r, "db-postgres"); !ok || s.Group == nil || *s.Group != *ref {
		t.Errorf("List status of db-postgres = %+v, want group %v", s, ref)
	}

	// Failed health checks count for the current run only.
	if n, ok := r.MonitorFailed("db-postgres", st.StartedAt, "exit status 1: down"); n != 1 || !ok {
		t.Errorf("MonitorFailed = %d, %v; want 1, true", n, ok)
	}
	if _, ok := r.MonitorFailed("db-postgres", st.StartedAt.Add(-time.Second), "of an earlier run"); ok {
		t.Error("MonitorFailed counted a check of another run")
	}
	if _, ok := r.MonitorFailed("nope", st.StartedAt, "x"); ok {
		t.Error("MonitorFailed counted a check of an unknown workload")
	}

	// The group, the monitor and the count survive a restart of the runner.
	r.Close()
	if r, err = New(Config{DataDir: e.dir, Node: e.node, StopGrace: time.Minute, Logger: testLogger(t),
		OnExit: func(st wire.WorkloadStatus) { exits <- st }}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	if got := r.GroupResources(); len(got) != 1 || got[0].Status.State != wire.StateRunning || got[0].Spec.Monitor == nil || *got[0].Status.Group != *ref ||
		got[0].Status.MonitorFailures != 1 || got[0].Status.MonitorError != "exit status 1: down" {
		t.Fatalf("re-adopted GroupResources = %+v", got)
	}

	start := time.Now()
	st, err = r.Kill(ctx, "db-postgres", "self-fenced: test")
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 30*time.Second {
		t.Errorf("Kill took %v", took)
	}
	if st.State != wire.StateFailed || !strings.HasPrefix(st.Error, "self-fenced: test (") {
		t.Errorf("status after Kill = %+v, want failed with the reason first", st)
	}
	if pids := e.procs("db-postgres"); len(pids) != 0 {
		t.Errorf("cgroup of the killed resource still holds %v", pids)
	}
	if s, ok := statusOf(r, "web"); !ok || s.State != wire.StateRunning {
		t.Errorf("plain workload after Kill: %+v, want running", s)
	}
	select {
	case ex := <-exits:
		if ex.ID != "db-postgres" || ex.Group == nil || ex.State != wire.StateFailed {
			t.Errorf("OnExit got %+v", ex)
		}
	case <-time.After(10 * time.Second):
		t.Error("OnExit not called for the killed resource")
	}
	// Known, failed, with its reason, also in the state file.
	if s, ok := statusOf(r, "db-postgres"); !ok || s.State != wire.StateFailed || !strings.HasPrefix(s.Error, "self-fenced") {
		t.Errorf("listed after Kill: %+v (found %v)", s, ok)
	}
	if st, err := readState(e.dir); err != nil || len(st.Workloads) != 2 || !strings.HasPrefix(st.Workloads[0].Status.Error, "self-fenced") {
		t.Errorf("state file after Kill: %+v, %v", st, err)
	}
	if _, ok := r.MonitorFailed("db-postgres", st.StartedAt, "x"); ok {
		t.Error("MonitorFailed counted a check of a killed workload")
	}
	// Again: nothing to do.
	if again, err := r.Kill(ctx, "db-postgres", "twice"); err != nil || again.Error != st.Error {
		t.Errorf("second Kill = %+v, %v; want the same status", again, err)
	}
	if s, err := r.Kill(ctx, "nope", "x"); err != nil || s.State != wire.StateStopped {
		t.Errorf("Kill of an unknown id = %+v, %v", s, err)
	}
	for _, id := range []string{"db-postgres", "web"} {
		if _, err := r.Stop(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	// The exit that Stop caused is Stop's to report, not OnExit's: a
	// server stopping a resource must not take its exit for a failure.
	select {
	case ex := <-exits:
		t.Errorf("OnExit called for an exit caused by Stop: %+v", ex)
	default:
	}
}

func TestCommandRunsAsTheWorkload(t *testing.T) {
	e := newEnv(t)
	r := e.runner(time.Second)
	workdir := t.TempDir()
	if err := os.WriteFile(filepath.Join(workdir, "marker"), []byte("here"), 0o644); err != nil {
		t.Fatal(err)
	}
	spec := wire.WorkloadSpec{ID: "db-1", Name: "db", Workdir: workdir, Env: map[string]string{"FOO": "bar"}}
	cmd, err := r.Command(t.Context(), spec, []string{"sh", "-c", `echo "$BATON_NODE $BATON_WORKLOAD $BATON_WORKLOAD_ID $FOO $(cat marker)"`})
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.Output()
	if want := e.node + " db db-1 bar here\n"; err != nil || string(out) != want {
		t.Errorf("output %q, %v; want %q", out, err, want)
	}
	if _, err := r.Command(t.Context(), spec, []string{"baton-no-such-check"}); !errors.Is(err, ErrInvalidSpec) {
		t.Errorf("Command of a missing program: %v, want ErrInvalidSpec", err)
	}
	if _, err := r.Command(t.Context(), spec, nil); !errors.Is(err, ErrInvalidSpec) {
		t.Errorf("Command of nothing: %v, want ErrInvalidSpec", err)
	}
}

// TestEndedGroupResourceStartsAgain: a group resource whose run ended (it
// crashed, or its node was fenced and the agent re-adopted a dead record)
// gets a new run from Start, while a plain workload's ended run is only
// reported (Start stays idempotent for it).
func TestEndedGroupResourceStartsAgain(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	r, err := New(Config{DataDir: e.dir, Node: e.node, StopGrace: time.Minute, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, id := range []string{"db-app", "job"} {
			_, _ = r.Stop(context.Background(), id)
		}
		r.Close()
	})
	res := wire.WorkloadSpec{ID: "db-app", Command: []string{"sh", "-c", "exit 3"}, Group: &wire.GroupRef{Group: "db", Resource: "app"}}
	plain := wire.WorkloadSpec{ID: "job", Command: []string{"sh", "-c", "exit 3"}}
	for _, spec := range []wire.WorkloadSpec{res, plain} {
		if _, err := r.Start(ctx, spec); err != nil {
			t.Fatal(err)
		}
	}
	testutil.WaitFor(t, 10*time.Second, "both runs end", func() bool {
		a, _ := statusOf(r, "db-app")
		b, _ := statusOf(r, "job")
		return a.State == wire.StateFailed && b.State == wire.StateFailed
	})
	first, _ := statusOf(r, "db-app")
	res.Command = []string{"sleep", "1000"}
	st, err := r.Start(ctx, res)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != wire.StateRunning || st.StartedAt.Equal(first.StartedAt) {
		t.Errorf("the group resource was not started again: %+v", st)
	}
	plain.Command = []string{"sleep", "1000"}
	if st, _ := r.Start(ctx, plain); st.State != wire.StateFailed {
		t.Errorf("a plain workload's ended run was replaced: %+v", st)
	}
}
