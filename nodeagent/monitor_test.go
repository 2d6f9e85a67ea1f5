package nodeagent

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/batonhq/baton/nodeagent/runner"
	"github.com/batonhq/baton/wire"
)

// command builds a real command from argv.
func command(argv ...string) func(context.Context) (*exec.Cmd, error) {
	return func(ctx context.Context) (*exec.Cmd, error) {
		return exec.CommandContext(ctx, argv[0], argv[1:]...), nil
	}
}

func TestRunCheck(t *testing.T) {
	tests := []struct {
		name    string
		argv    []string
		timeout time.Duration
		wantErr string // "" for success
	}{
		{"exit 0", []string{"true"}, 5 * time.Second, ""},
		{"exit 1 without output", []string{"false"}, 5 * time.Second, "exit status 1"},
		{"exit 3 quotes the last line", []string{"sh", "-c", "echo starting; echo 'db: connection refused' >&2; exit 3"}, 5 * time.Second, "exit status 3: db: connection refused"},
		{"too slow", []string{"sleep", "5"}, 200 * time.Millisecond, "timed out after 200ms"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := runCheck(t.Context(), tc.timeout, command(tc.argv...))
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || err.Error() != tc.wantErr) {
				t.Errorf("runCheck = %v, want %q", err, tc.wantErr)
			}
		})
	}

	t.Run("a timeout kills the whole process group", func(t *testing.T) {
		var cmd *exec.Cmd
		start := time.Now()
		err := runCheck(t.Context(), 200*time.Millisecond, func(ctx context.Context) (*exec.Cmd, error) {
			cmd = exec.CommandContext(ctx, "sh", "-c", "sleep 5 & sleep 5; wait")
			return cmd, nil
		})
		if err == nil || !strings.Contains(err.Error(), "timed out") {
			t.Fatalf("runCheck = %v, want a timeout", err)
		}
		if took := time.Since(start); took > 4*time.Second {
			t.Errorf("runCheck took %v: it waited for the sleeps", took)
		}
		// The group (pgid = the shell's pid) has no live member: the
		// background sleep died too. (Zombies wait for PID 1 to reap them.)
		if live := liveInGroup(t, cmd.Process.Pid); len(live) > 0 {
			t.Errorf("process group %d still has live members %v after the timeout", cmd.Process.Pid, live)
		}
	})

	t.Run("a check that cannot be built", func(t *testing.T) {
		err := runCheck(t.Context(), time.Second, func(context.Context) (*exec.Cmd, error) { return nil, errors.New("no such program") })
		if err == nil || !strings.Contains(err.Error(), "cannot run the check: no such program") {
			t.Errorf("runCheck = %v", err)
		}
	})

	t.Run("a cancelled context is not a failure of the check", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(50*time.Millisecond, cancel)
		if err := runCheck(ctx, 5*time.Second, command("sleep", "5")); !errors.Is(err, context.Canceled) {
			t.Errorf("runCheck = %v, want context.Canceled", err)
		}
	})
}

// liveInGroup returns the processes of process group pgid that are not
// zombies, waiting a little for SIGKILL to take effect.
func liveInGroup(t *testing.T, pgid int) []int {
	t.Helper()
	var live []int
	for deadline := time.Now().Add(5 * time.Second); ; {
		live = live[:0]
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			pid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
			if err != nil {
				continue
			}
			// Fields after the command name: state, ppid, pgrp, ...
			f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
			if len(f) > 2 && f[2] == strconv.Itoa(pgid) && f[0] != "Z" {
				live = append(live, pid)
			}
		}
		if len(live) == 0 || time.Now().After(deadline) {
			return live
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestTailBuffer(t *testing.T) {
	b := &tailBuffer{max: 8}
	b.Write([]byte("first line\nsec"))
	b.Write([]byte("ond\n\n"))
	if got := b.lastLine(); got != "second" {
		t.Errorf("lastLine = %q, want %q", got, "second")
	}
	long := &tailBuffer{max: 1000}
	long.Write([]byte(strings.Repeat("x", 300)))
	if got := long.lastLine(); len(got) != maxErrorLine+3 || !strings.HasSuffix(got, "...") {
		t.Errorf("lastLine of a long line has %d bytes, want it cut at %d", len(got), maxErrorLine)
	}
}

// fakeTarget is an in-memory monitorTarget, the twin of the runner: workload
// statuses set by the test, commands run as given, failures counted in the
// statuses as the runner counts them.
type fakeTarget struct {
	mu  sync.Mutex
	sts map[string]wire.WorkloadStatus
}

func (f *fakeTarget) Command(ctx context.Context, _ wire.WorkloadSpec, argv []string) (*exec.Cmd, error) {
	return exec.CommandContext(ctx, argv[0], argv[1:]...), nil
}

func (f *fakeTarget) MonitorFailed(id string, startedAt time.Time, reason string) (int, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st, ok := f.sts[id]
	if !ok || st.State != wire.StateRunning || !st.StartedAt.Equal(startedAt) {
		return 0, false
	}
	st.MonitorFailures++
	st.MonitorError = reason
	f.sts[id] = st
	return st.MonitorFailures, true
}

func (f *fakeTarget) set(st wire.WorkloadStatus) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sts[st.ID] = st
}

func (f *fakeTarget) get(id string) wire.WorkloadStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sts[id]
}

func newTestMonitors(t *testing.T) (*monitors, *ManualClock, *fakeTarget, chan struct{}) {
	clock := NewManualClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	target := &fakeTarget{sts: map[string]wire.WorkloadStatus{}}
	failures := make(chan struct{}, 100)
	m := newMonitors(slog.New(slog.DiscardHandler), clock, target, func() { failures <- struct{}{} })
	t.Cleanup(m.close)
	return m, clock, target, failures
}

func TestMonitors(t *testing.T) {
	m, clock, target, failures := newTestMonitors(t)
	started := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	spec := wire.WorkloadSpec{ID: "g-r", Command: []string{"x"}, Group: &wire.GroupRef{Group: "g", Resource: "r"},
		Monitor: &wire.MonitorSpec{Command: []string{"sh", "-c", "echo unhealthy; exit 1"}, IntervalMS: 1000, TimeoutMS: 5000}}
	run1 := wire.WorkloadStatus{ID: "g-r", State: wire.StateRunning, HostPID: 100, StartedAt: started}
	target.set(run1)
	m.sync([]runner.Resource{{Spec: spec, Status: run1}})

	// tickUntilFailure advances the clock an interval at a time until the
	// monitor reports a failure (its loop may not have its ticker yet).
	tickUntilFailure := func() {
		t.Helper()
		for deadline := time.Now().Add(15 * time.Second); ; {
			clock.Advance(time.Second)
			select {
			case <-failures:
				return
			case <-time.After(100 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatal("no monitor failure")
			}
		}
	}

	tickUntilFailure()
	if got := target.get("g-r"); got.MonitorFailures != 1 || got.MonitorError != "exit status 1: unhealthy" {
		t.Errorf("after one failed check: %d failures, error %q", got.MonitorFailures, got.MonitorError)
	}
	tickUntilFailure()
	if got := target.get("g-r"); got.MonitorFailures != 2 {
		t.Errorf("after two failed checks: %d failures", got.MonitorFailures)
	}

	// Started again: the old run's monitor stops, a new one checks the new
	// run.
	run2 := wire.WorkloadStatus{ID: "g-r", State: wire.StateRunning, HostPID: 200, StartedAt: started.Add(time.Minute)}
	target.set(run2)
	m.sync([]runner.Resource{{Spec: spec, Status: run2}})
	tickUntilFailure()
	if got := target.get("g-r"); got.MonitorFailures != 1 {
		t.Errorf("new run after one failed check: %d failures", got.MonitorFailures)
	}

	// Exited: the checks stop.
	exited := target.get("g-r")
	exited.State = wire.StateFailed
	target.set(exited)
	m.sync([]runner.Resource{{Spec: spec, Status: exited}})
	for range 3 {
		clock.Advance(time.Second)
	}
	select {
	case <-failures:
		t.Error("a monitor counted a failure after its workload exited")
	case <-time.After(300 * time.Millisecond):
	}
	m.sync(nil)
	m.mu.Lock()
	n := len(m.runs)
	m.mu.Unlock()
	if n != 0 {
		t.Errorf("%d monitor runs left after every workload went", n)
	}
}

func TestMonitorStopsWhenItsRunIsOver(t *testing.T) {
	m, clock, target, failures := newTestMonitors(t)
	spec := wire.WorkloadSpec{ID: "g-r", Command: []string{"x"}, Group: &wire.GroupRef{Group: "g", Resource: "r"},
		Monitor: &wire.MonitorSpec{Command: []string{"false"}, IntervalMS: 1000, TimeoutMS: 5000}}
	st := wire.WorkloadStatus{ID: "g-r", State: wire.StateRunning, HostPID: 100}
	m.sync([]runner.Resource{{Spec: spec, Status: st}})
	// The runner already knows it exited, the monitors not yet: the failed
	// checks count nothing and the loop ends.
	st.State = wire.StateFailed
	target.set(st)
	for range 20 {
		clock.Advance(time.Second)
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case <-failures:
		t.Error("a failed check of a workload that is no longer running was counted")
	default:
	}
	if got := target.get("g-r"); got.MonitorFailures != 0 {
		t.Errorf("%d failures counted for an exited run", got.MonitorFailures)
	}
}
