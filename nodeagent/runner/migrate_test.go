package runner

import (
	"errors"
	"testing"
	"time"

	"github.com/batonhq/baton/wire"
)

// TestFreezeThawHandoff: the runner's source side of a migration without
// CRIU: a frozen workload is reported as migrating, survives a runner
// restart frozen, thaws back to running, and a handoff kills and forgets it
// without a failure.
func TestFreezeThawHandoff(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	r := e.runner(time.Second)
	// A tree: the shell forks sleeps that must be frozen and killed too.
	spec := wire.WorkloadSpec{ID: "w", Command: []string{"sh", "-c", "while :; do sleep 0.05; done"}}
	st, err := r.Start(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Handoff(ctx, "w"); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("Handoff of a running workload: %v, want ErrNotRunning", err)
	}
	fr, err := r.Freeze(ctx, "w", "m1")
	if err != nil {
		t.Fatal(err)
	}
	if fr.PID != st.HostPID || fr.Log != r.LogPath("w") || fr.Workdir != r.workloadDir("w") || fr.FreezerDir != e.group("w").FreezerDir() {
		t.Fatalf("Frozen: %+v", fr)
	}
	if s, _ := e.group("w").FreezerState(); s != "FROZEN" {
		t.Fatalf("freezer %s after Freeze", s)
	}
	if _, err := r.Freeze(ctx, "w", "m1"); err != nil {
		t.Fatalf("Freeze again for the same migration: %v", err)
	}
	if _, err := r.Freeze(ctx, "w", "m2"); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("Freeze for another migration: %v, want ErrNotRunning", err)
	}
	if got, _ := statusOf(r, "w"); got.State != wire.StateMigrating {
		t.Fatalf("status while frozen: %+v", got)
	}

	// A restart keeps it frozen and migrating.
	r.Close()
	r = e.runner(time.Second)
	if got, _ := statusOf(r, "w"); got.State != wire.StateMigrating || got.HostPID != st.HostPID {
		t.Fatalf("status after a restart: %+v", got)
	}
	if s, _ := e.group("w").FreezerState(); s != "FROZEN" {
		t.Fatalf("freezer %s after a restart", s)
	}
	if _, err := r.Thaw(ctx, "w", "m2"); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("Thaw for another migration: %v, want ErrNotRunning", err)
	}
	got, err := r.Thaw(ctx, "w", "m1")
	if err != nil || got.State != wire.StateRunning {
		t.Fatalf("Thaw: %+v, %v", got, err)
	}
	if _, err := r.Thaw(ctx, "w", "m1"); err != nil {
		t.Fatalf("Thaw again: %v", err)
	}

	if _, err := r.Freeze(ctx, "w", "m3"); err != nil {
		t.Fatal(err)
	}
	procs := identify(t, e.procs("w"))
	if err := r.Handoff(ctx, "w"); err != nil {
		t.Fatal(err)
	}
	for _, p := range procs {
		if p.alive() {
			t.Errorf("pid %d survived the handoff", p.pid)
		}
	}
	if _, ok := statusOf(r, "w"); ok || len(e.savedIDs()) != 0 {
		t.Fatalf("the runner still knows the workload after the handoff: %v", r.List())
	}
	if e.group("w").HasFreezer() {
		t.Error("the freezer group remains after the handoff")
	}
	if err := r.Handoff(ctx, "w"); err != nil {
		t.Fatalf("Handoff again: %v", err)
	}
}

// TestStopFrozen: stopping a workload frozen for a migration kills it.
func TestStopFrozen(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	r := e.runner(time.Second)
	if _, err := r.Start(ctx, wire.WorkloadSpec{ID: "w", Command: []string{"sleep", "1000"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Freeze(ctx, "w", "m1"); err != nil {
		t.Fatal(err)
	}
	procs := identify(t, e.procs("w"))
	st, err := r.Stop(ctx, "w")
	if err != nil || st.State != wire.StateStopped {
		t.Fatalf("Stop: %+v, %v", st, err)
	}
	for _, p := range procs {
		if p.alive() {
			t.Errorf("pid %d survived Stop", p.pid)
		}
	}
}

// TestAdoptAndDiscard: the target side: PrepareCgroups, a process moved into
// them (standing in for a restored one) adopted under the workload's id, and
// Discard killing it and forgetting it.
func TestAdoptAndDiscard(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	r := e.runner(time.Second)
	spec := wire.WorkloadSpec{ID: "w", Command: []string{"sleep", "1000"}, Resources: wire.Resources{MemoryMB: 32}}
	if _, err := r.PrepareCgroups(spec); err != nil {
		t.Fatal(err)
	}
	if lim := readFile(t, e.group("w").Dir("memory")+"/memory.limit_in_bytes"); lim != "33554432" {
		t.Errorf("memory limit %s", lim)
	}
	// Stand-in for a restored process: another workload's, moved over.
	st, err := r.Start(ctx, wire.WorkloadSpec{ID: "donor", Command: []string{"sleep", "1000"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Adopt(ctx, spec, st.HostPID); err == nil {
		t.Fatal("Adopt of a process outside the workload's cgroup succeeded")
	}
	if err := e.group("w").Add(st.HostPID); err != nil {
		t.Fatal(err)
	}
	got, err := r.Adopt(ctx, spec, st.HostPID)
	if err != nil || got.State != wire.StateRunning || got.HostPID != st.HostPID {
		t.Fatalf("Adopt: %+v, %v", got, err)
	}
	if again, err := r.Adopt(ctx, spec, st.HostPID); err != nil || again.HostPID != st.HostPID {
		t.Fatalf("Adopt again: %+v, %v", again, err)
	}
	if _, err := r.Adopt(ctx, spec, st.HostPID+1); !errors.Is(err, ErrAlreadyKnown) {
		t.Fatalf("Adopt of another pid: %v, want ErrAlreadyKnown", err)
	}
	if _, err := r.PrepareCgroups(spec); !errors.Is(err, ErrAlreadyKnown) {
		t.Fatalf("PrepareCgroups of a known workload: %v, want ErrAlreadyKnown", err)
	}
	p := identify(t, []int{st.HostPID})[0]
	if err := r.Discard(ctx, "w"); err != nil {
		t.Fatal(err)
	}
	if p.alive() {
		t.Error("the adopted process survived Discard")
	}
	if _, ok := statusOf(r, "w"); ok {
		t.Error("the runner still knows the discarded workload")
	}
	// The donor's own record saw its process go.
	if _, err := r.Stop(ctx, "donor"); err != nil {
		t.Fatal(err)
	}
	if err := r.Discard(ctx, "never"); err != nil {
		t.Fatalf("Discard of an unknown id: %v", err)
	}
}
