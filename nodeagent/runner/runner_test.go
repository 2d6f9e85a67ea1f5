package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/batonhq/baton/nodeagent/cgroupv1"
	"github.com/batonhq/baton/nodeagent/internal/testutil"
	"github.com/batonhq/baton/wire"
)

func TestMain(m *testing.M) { testutil.Main(m) }

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// env is one test's node: a unique node name, a data dir and the leak check.
type env struct {
	t    *testing.T
	node string
	dir  string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	testutil.RequirePrivileged(t)
	e := &env{t: t, node: testutil.NodeName(t), dir: t.TempDir()}
	testutil.CleanupNode(t, e.node)
	return e
}

func (e *env) runner(grace time.Duration) *Runner {
	e.t.Helper()
	r, err := New(Config{DataDir: e.dir, Node: e.node, StopGrace: grace, Logger: testLogger(e.t)})
	if err != nil {
		e.t.Fatalf("New: %v", err)
	}
	e.t.Cleanup(func() { r.Close() })
	return r
}

func (e *env) group(id string) *cgroupv1.Group {
	g, err := cgroupv1.New("", filepath.Join("baton", e.node, id))
	if err != nil {
		e.t.Fatal(err)
	}
	return g
}

func (e *env) procs(id string) []int {
	e.t.Helper()
	pids, err := e.group(id).Procs()
	if err != nil {
		e.t.Fatal(err)
	}
	return pids
}

// savedIDs returns the workload IDs of the state file.
func (e *env) savedIDs() []string {
	e.t.Helper()
	st, err := readState(e.dir)
	if err != nil {
		e.t.Fatal(err)
	}
	var ids []string
	for _, w := range st.Workloads {
		ids = append(ids, w.Spec.ID)
	}
	return ids
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// procID is a process identity: PID and start time.
type procID struct {
	pid   int
	ticks uint64
}

func identify(t *testing.T, pids []int) []procID {
	t.Helper()
	var out []procID
	for _, pid := range pids {
		ps, err := readProcStat(pid)
		if err != nil {
			t.Fatalf("pid %d: %v", pid, err)
		}
		out = append(out, procID{pid, ps.startTicks})
	}
	return out
}

// alive reports whether the process still exists and is not a zombie.
func (p procID) alive() bool {
	ps, err := readProcStat(p.pid)
	return err == nil && ps.startTicks == p.ticks && ps.state != 'Z' && ps.state != 'X'
}

func statusOf(r *Runner, id string) (wire.WorkloadStatus, bool) {
	for _, s := range r.List() {
		if s.ID == id {
			return s, true
		}
	}
	return wire.WorkloadStatus{}, false
}

func TestStartRunsIsolatedAndLimited(t *testing.T) {
	e := newEnv(t)
	r := e.runner(200 * time.Millisecond)
	ctx := ctxT(t)
	spec := wire.WorkloadSpec{
		ID:        "web-1",
		Name:      "web",
		Command:   []string{"/bin/sh", "-c", `echo $$ $BATON_NODE $BATON_WORKLOAD $BATON_WORKLOAD_ID $FOO "$(pwd)"; sleep 1000`},
		Env:       map[string]string{"FOO": "bar", "BATON_NODE": "spoofed"},
		Resources: wire.Resources{CPUMillis: 250, MemoryMB: 64},
	}
	st, err := r.Start(ctx, spec)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	if st.State != wire.StateRunning || st.HostPID <= 0 || st.StartedAt.IsZero() {
		t.Fatalf("status = %+v, want running with a pid and a start time", st)
	}
	pid := st.HostPID
	if err := unix.Kill(pid, 0); err != nil {
		t.Fatalf("host pid %d not alive: %v", pid, err)
	}
	if got := e.savedIDs(); !slices.Equal(got, []string{"web-1"}) {
		t.Errorf("state file holds %v before Start returned, want [web-1]", got)
	}

	t.Run("pid namespace and session", func(t *testing.T) {
		status := readFile(t, fmt.Sprintf("/proc/%d/status", pid))
		for _, want := range []string{fmt.Sprintf("NSpid:\t%d\t1", pid), fmt.Sprintf("NSsid:\t%d\t1", pid), fmt.Sprintf("NSpgid:\t%d\t1", pid)} {
			if !strings.Contains(status, want) {
				t.Errorf("/proc/%d/status lacks %q (PID 1 and session leader of its own namespace):\n%s", pid, want, status)
			}
		}
		sid, _ := unix.Getsid(pid)
		if mine, _ := unix.Getsid(0); sid == mine {
			t.Errorf("workload shares the agent's session %d", sid)
		}
	})
	t.Run("log, environment and workdir", func(t *testing.T) {
		logPath := r.LogPath("web-1")
		want := fmt.Sprintf("1 %s web web-1 bar %s", e.node, filepath.Dir(logPath))
		testutil.WaitFor(t, 10*time.Second, "the workload's output", func() bool {
			b, _ := os.ReadFile(logPath)
			return strings.TrimSpace(string(b)) == want
		})
	})
	t.Run("cgroup limits and membership", func(t *testing.T) {
		g := e.group("web-1")
		if got := readFile(t, filepath.Join(g.Dir("memory"), "memory.limit_in_bytes")); got != strconv.Itoa(64<<20) {
			t.Errorf("memory.limit_in_bytes = %s, want %d", got, 64<<20)
		}
		period, _ := strconv.Atoi(readFile(t, filepath.Join(g.Dir("cpu"), "cpu.cfs_period_us")))
		if got := readFile(t, filepath.Join(g.Dir("cpu"), "cpu.cfs_quota_us")); got != strconv.Itoa(period/4) {
			t.Errorf("cpu.cfs_quota_us = %s, want %d (250 millis of period %d)", got, period/4, period)
		}
		for _, c := range cgroupv1.Controllers {
			procs := readFile(t, filepath.Join(g.Dir(c), "cgroup.procs"))
			if !slices.Contains(strings.Fields(procs), strconv.Itoa(pid)) {
				t.Errorf("%s cgroup.procs = %q, lacks workload pid %d", c, procs, pid)
			}
		}
	})
	t.Run("start again is idempotent", func(t *testing.T) {
		before := len(e.procs("web-1"))
		st2, err := r.Start(ctx, spec)
		if err != nil || st2.HostPID != pid {
			t.Fatalf("second Start = %+v, %v; want the same pid %d", st2, err, pid)
		}
		if after := len(e.procs("web-1")); after != before {
			t.Errorf("cgroup had %d processes, now %d: a second process was started", before, after)
		}
	})

	got, err := r.Stop(ctx, "web-1")
	if err != nil || got.State != wire.StateStopped || got.HostPID != pid {
		t.Fatalf("Stop = %+v, %v; want stopped", got, err)
	}
	if err := unix.Kill(pid, 0); err == nil {
		t.Errorf("pid %d still exists after Stop", pid)
	}
	if l := r.List(); len(l) != 0 {
		t.Errorf("List after Stop = %+v, want empty", l)
	}
	if ids := e.savedIDs(); len(ids) != 0 {
		t.Errorf("state file after Stop holds %v", ids)
	}
	for _, c := range cgroupv1.Controllers {
		if _, err := os.Stat(e.group("web-1").Dir(c)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s cgroup still exists after Stop (%v)", c, err)
		}
	}
	if _, err := os.Stat(r.LogPath("web-1")); err != nil {
		t.Errorf("log removed by Stop: %v", err)
	}
	// Stop is idempotent.
	if got, err := r.Stop(ctx, "web-1"); err != nil || got.State != wire.StateStopped {
		t.Errorf("second Stop = %+v, %v; want stopped", got, err)
	}
}

func TestStopKillsWholeTree(t *testing.T) {
	e := newEnv(t)
	r := e.runner(200 * time.Millisecond)
	ctx := ctxT(t)
	if _, err := r.Start(ctx, wire.WorkloadSpec{ID: "tree", Command: []string{"sh", "-c", "sleep 1000 & sleep 1000 & wait"}}); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "3 processes in the cgroup", func() bool { return len(e.procs("tree")) == 3 })
	tree := identify(t, e.procs("tree"))
	if _, err := r.Stop(ctx, "tree"); err != nil {
		t.Fatal(err)
	}
	for _, p := range tree {
		if p.alive() {
			t.Errorf("process %d survived Stop", p.pid)
		}
	}
}

func TestStopSignals(t *testing.T) {
	tests := []struct {
		name    string
		script  string
		grace   time.Duration
		minTime time.Duration // Stop takes at least this long
		maxTime time.Duration // and at most this long
		wantLog string
	}{{
		name:    "handler exits on SIGTERM",
		script:  `trap 'echo bye; exit 0' TERM; echo ready; while :; do sleep 0.1; done`,
		grace:   time.Minute,
		maxTime: 20 * time.Second,
		wantLog: "bye",
	}, {
		name:    "handler ignores SIGTERM, killed after grace",
		script:  `trap 'echo got TERM' TERM; echo ready; while :; do sleep 0.1; done`,
		grace:   500 * time.Millisecond,
		minTime: 500 * time.Millisecond,
		maxTime: 20 * time.Second,
		wantLog: "got TERM",
	}, {
		// The kernel drops SIGTERM for a namespace's PID 1 without a handler,
		// so waiting would only waste the grace period: SIGKILL at once.
		name:    "no handler: PID 1 cannot get SIGTERM, killed without waiting",
		script:  `echo ready; sleep 1000`,
		grace:   time.Minute,
		maxTime: 20 * time.Second,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			r := e.runner(tc.grace)
			ctx := ctxT(t)
			st, err := r.Start(ctx, wire.WorkloadSpec{ID: "sig", Command: []string{"sh", "-c", tc.script}})
			if err != nil {
				t.Fatal(err)
			}
			testutil.WaitFor(t, 10*time.Second, "ready", func() bool {
				b, _ := os.ReadFile(r.LogPath("sig"))
				return strings.Contains(string(b), "ready")
			})
			tree := identify(t, e.procs("sig"))
			start := time.Now()
			got, err := r.Stop(ctx, "sig")
			took := time.Since(start)
			if err != nil || got.State != wire.StateStopped || got.HostPID != st.HostPID {
				t.Fatalf("Stop = %+v, %v", got, err)
			}
			if took < tc.minTime || took > tc.maxTime {
				t.Errorf("Stop took %v, want between %v and %v", took, tc.minTime, tc.maxTime)
			}
			for _, p := range tree {
				if p.alive() {
					t.Errorf("process %d survived Stop", p.pid)
				}
			}
			if tc.wantLog != "" {
				testutil.WaitFor(t, 5*time.Second, fmt.Sprintf("%q in the log", tc.wantLog), func() bool {
					b, _ := os.ReadFile(r.LogPath("sig"))
					return strings.Contains(string(b), tc.wantLog)
				})
			}
		})
	}
}

func TestExitIsRecorded(t *testing.T) {
	tests := []struct {
		name      string
		script    string
		wantState string
		wantCode  int
	}{
		{"exit 3 fails", "exit 3", wire.StateFailed, 3},
		{"exit 0 stops", "exit 0", wire.StateStopped, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			r := e.runner(time.Second)
			ctx := ctxT(t)
			if _, err := r.Start(ctx, wire.WorkloadSpec{ID: "x", Command: []string{"sh", "-c", tc.script}}); err != nil {
				t.Fatal(err)
			}
			var st wire.WorkloadStatus
			testutil.WaitFor(t, 10*time.Second, "the exit to be recorded", func() bool {
				st, _ = statusOf(r, "x")
				return st.State != wire.StateRunning
			})
			if st.State != tc.wantState || st.ExitCode == nil || *st.ExitCode != tc.wantCode {
				t.Fatalf("status = %+v (exit code %v), want %s with exit code %d", st, st.ExitCode, tc.wantState, tc.wantCode)
			}
			// The exit is saved, so a restarted agent still reports it.
			r.Close()
			r2 := e.runner(time.Second)
			if st2, ok := statusOf(r2, "x"); !ok || st2.State != tc.wantState || st2.ExitCode == nil || *st2.ExitCode != tc.wantCode {
				t.Errorf("after restart: %+v, %v", st2, ok)
			}
			got, err := r2.Stop(ctx, "x")
			if err != nil || got.State != tc.wantState {
				t.Errorf("Stop of an exited workload = %+v, %v; want its exit status", got, err)
			}
			if l := r2.List(); len(l) != 0 {
				t.Errorf("List after Stop = %+v", l)
			}
		})
	}
}

func TestReadoptAfterRestart(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	r1 := e.runner(200 * time.Millisecond)
	spec := wire.WorkloadSpec{ID: "db", Command: []string{"sleep", "1000"}}
	st, err := r1.Start(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	r1.Close()
	if _, err := r1.Start(ctx, wire.WorkloadSpec{ID: "other", Command: []string{"true"}}); !errors.Is(err, ErrClosed) {
		t.Errorf("Start after Close: %v, want ErrClosed", err)
	}
	if _, err := r1.Stop(ctx, "db"); !errors.Is(err, ErrClosed) {
		t.Errorf("Stop after Close: %v, want ErrClosed", err)
	}
	if err := unix.Kill(st.HostPID, 0); err != nil {
		t.Fatalf("Close killed the workload: %v", err)
	}

	r2 := e.runner(200 * time.Millisecond)
	if r3, err := New(Config{DataDir: e.dir, Node: e.node}); !errors.Is(err, ErrDataDirInUse) {
		if r3 != nil {
			r3.Close()
		}
		t.Errorf("second Runner on one data dir: %v, want ErrDataDirInUse", err)
	}
	got, ok := statusOf(r2, "db")
	if !ok || got.State != wire.StateRunning || got.HostPID != st.HostPID {
		t.Fatalf("after restart: %+v (found %v), want running with pid %d", got, ok, st.HostPID)
	}
	if _, err := r2.Start(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if pids := e.procs("db"); !slices.Equal(pids, []int{st.HostPID}) {
		t.Errorf("cgroup holds %v, want only the adopted %d", pids, st.HostPID)
	}
	p := identify(t, []int{st.HostPID})[0]
	if _, err := r2.Stop(ctx, "db"); err != nil {
		t.Fatal(err)
	}
	if p.alive() {
		t.Errorf("adopted pid %d survived Stop", p.pid)
	}
}

func TestExitWhileClosedIsCollectedOnReadopt(t *testing.T) {
	// The workload exits while no Runner watches it. It is still a child of
	// this (test) process, so the next Runner reaps it and learns its exit
	// code; a real agent restart is a new process and reports it unknown.
	e := newEnv(t)
	ctx := ctxT(t)
	r1 := e.runner(200 * time.Millisecond)
	st, err := r1.Start(ctx, wire.WorkloadSpec{ID: "brief", Command: []string{"sh", "-c", "while [ ! -e exit-now ]; do sleep 0.01; done; exit 5"}})
	if err != nil {
		t.Fatal(err)
	}
	r1.Close()
	if err := os.WriteFile(filepath.Join(e.dir, "workloads", "brief", "exit-now"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "the workload to exit", func() bool {
		ps, err := readProcStat(st.HostPID)
		return err == nil && ps.state == 'Z'
	})
	r2 := e.runner(200 * time.Millisecond)
	var got wire.WorkloadStatus
	testutil.WaitFor(t, 10*time.Second, "the exit to be recorded", func() bool {
		got, _ = statusOf(r2, "brief")
		return got.State != wire.StateRunning
	})
	if got.State != wire.StateFailed || got.ExitCode == nil || *got.ExitCode != 5 {
		t.Errorf("status = %+v, want failed with exit code 5", got)
	}
	if _, err := readProcStat(st.HostPID); err == nil {
		t.Errorf("zombie %d not reaped", st.HostPID)
	}
	if _, err := r2.Stop(ctx, "brief"); err != nil {
		t.Fatal(err)
	}
}

func TestParseProcStat(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    procStat
		wantErr bool
	}{
		{"plain", "42 (sleep) S 1 42 42 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 123456 1 2 3", procStat{'S', 123456}, false},
		{"odd command name", "42 (a) b ) (c) Z 1 42 42 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 99 1", procStat{'Z', 99}, false},
		{"truncated", "42 (sleep) S 1 42", procStat{}, true},
		{"no name", "42 sleep S", procStat{}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseProcStat([]byte(tc.in))
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("parseProcStat = %+v, %v; want %+v, error %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestLookPath(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	os.Mkdir(bin, 0o755)
	os.WriteFile(filepath.Join(bin, "tool"), []byte("#!/bin/sh\n"), 0o755)
	os.WriteFile(filepath.Join(bin, "data"), nil, 0o644)
	tests := []struct {
		name, cmd, path, want string
	}{
		{"in PATH", "tool", "/nonexistent:" + bin, filepath.Join(bin, "tool")},
		{"relative PATH entry", "tool", "bin", filepath.Join(bin, "tool")},
		{"relative with slash", "bin/tool", "", filepath.Join(bin, "tool")},
		{"absolute", filepath.Join(bin, "tool"), "", filepath.Join(bin, "tool")},
		{"not executable", "data", bin, ""},
		{"directory", "bin", dir, ""},
		{"missing", "nope", bin, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := lookPath(tc.cmd, tc.path, dir)
			if got != tc.want || (err != nil) != (tc.want == "") {
				t.Errorf("lookPath(%q, %q) = %q, %v; want %q", tc.cmd, tc.path, got, err, tc.want)
			}
		})
	}
}

func TestDeadProcessIsNotAdopted(t *testing.T) {
	exited := exec.Command("true")
	if err := exited.Run(); err != nil {
		t.Fatal(err)
	}
	self, err := readProcStat(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		pid   int
		ticks uint64
	}{
		{"process gone", exited.Process.Pid, self.startTicks},
		{"pid reused by another process", os.Getpid(), self.startTicks + 1},
		{"no identity", 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			ctx := ctxT(t)
			rec := record{
				Spec:       wire.WorkloadSpec{ID: "ghost", Command: []string{"sleep", "1000"}},
				Status:     wire.WorkloadStatus{ID: "ghost", State: wire.StateRunning, HostPID: tc.pid},
				StartTicks: tc.ticks,
				Cgroup:     filepath.Join("baton", e.node, "ghost"),
			}
			if err := writeState(e.dir, stateFile{V: stateVersion, Node: e.node, Workloads: []record{rec}}); err != nil {
				t.Fatal(err)
			}
			r := e.runner(100 * time.Millisecond)
			st, ok := statusOf(r, "ghost")
			if !ok || st.State != wire.StateFailed || st.ExitCode != nil || !strings.Contains(st.Error, "exit status unknown") {
				t.Fatalf("status = %+v (found %v), want failed with an unknown exit status", st, ok)
			}
			saved, _ := readState(e.dir)
			if len(saved.Workloads) != 1 || saved.Workloads[0].Status.State != wire.StateFailed {
				t.Errorf("state file not updated: %+v", saved.Workloads)
			}
			// Stopping it must signal nothing (for "pid reused" that would
			// be this test process) and forget it.
			if _, err := r.Stop(ctx, "ghost"); err != nil {
				t.Fatal(err)
			}
			if l := r.List(); len(l) != 0 {
				t.Errorf("List after Stop = %+v", l)
			}
		})
	}
}

func TestStartRejectsBadSpecs(t *testing.T) {
	dir := t.TempDir()
	notExec := filepath.Join(dir, "not-exec")
	badFormat := filepath.Join(dir, "bad-format")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Executable but no shebang and no ELF header: execve fails with
	// ENOEXEC, which only the shim can see.
	if err := os.WriteFile(badFormat, []byte("echo hi\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		spec    wire.WorkloadSpec
		wantErr string
	}{
		{"empty command", wire.WorkloadSpec{ID: "w"}, "empty command"},
		{"empty program", wire.WorkloadSpec{ID: "w", Command: []string{""}}, "empty command"},
		{"bad id", wire.WorkloadSpec{ID: "../etc", Command: []string{"true"}}, "id"},
		{"missing workdir", wire.WorkloadSpec{ID: "w", Command: []string{"true"}, Workdir: filepath.Join(dir, "nope")}, "does not exist"},
		{"relative workdir", wire.WorkloadSpec{ID: "w", Command: []string{"true"}, Workdir: "tmp"}, "not an absolute path"},
		{"command not found", wire.WorkloadSpec{ID: "w", Command: []string{"baton-no-such-command"}}, "not found"},
		{"command path not found", wire.WorkloadSpec{ID: "w", Command: []string{"/nonexistent/cmd"}}, "not found"},
		{"not executable", wire.WorkloadSpec{ID: "w", Command: []string{notExec}}, "not executable"},
		{"exec format error", wire.WorkloadSpec{ID: "w", Command: []string{badFormat}}, "exec format error"},
		{"negative memory", wire.WorkloadSpec{ID: "w", Command: []string{"true"}, Resources: wire.Resources{MemoryMB: -1}}, "negative"},
		{"bad env", wire.WorkloadSpec{ID: "w", Command: []string{"true"}, Env: map[string]string{"A=B": "c"}}, "environment"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			r := e.runner(time.Second)
			st, err := r.Start(ctxT(t), tc.spec)
			if !errors.Is(err, ErrInvalidSpec) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Start error = %v, want ErrInvalidSpec mentioning %q", err, tc.wantErr)
			}
			if st.State != wire.StateFailed || st.Error == "" {
				t.Errorf("status = %+v, want failed with the error", st)
			}
			if l := r.List(); len(l) != 0 {
				t.Errorf("List = %+v, want empty", l)
			}
			if ids := e.savedIDs(); len(ids) != 0 {
				t.Errorf("state file holds %v", ids)
			}
			if pids := testutil.NodeProcs(e.node); len(pids) != 0 {
				t.Errorf("processes left running: %v", pids)
			}
			if tc.spec.ID != "" && !strings.Contains(tc.spec.ID, "/") {
				if _, err := os.Stat(e.group(tc.spec.ID).Dir("pids")); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("cgroup left behind (%v)", err)
				}
			}
		})
	}
}

func TestConcurrentStartsOfOneID(t *testing.T) {
	e := newEnv(t)
	r := e.runner(200 * time.Millisecond)
	ctx := ctxT(t)
	spec := wire.WorkloadSpec{ID: "once", Command: []string{"sleep", "1000"}}
	pids := make([]int, 8)
	var wg sync.WaitGroup
	for i := range pids {
		wg.Go(func() {
			st, err := r.Start(ctx, spec)
			if err != nil {
				t.Error(err)
			}
			pids[i] = st.HostPID
		})
	}
	wg.Wait()
	for _, p := range pids {
		if p != pids[0] || p == 0 {
			t.Fatalf("Starts returned pids %v, want one and the same", pids)
		}
	}
	if got := e.procs("once"); len(got) != 1 {
		t.Errorf("cgroup holds %v, want 1 process", got)
	}
	if _, err := r.Stop(ctx, "once"); err != nil {
		t.Fatal(err)
	}
}

func TestStopAll(t *testing.T) {
	e := newEnv(t)
	r := e.runner(200 * time.Millisecond)
	ctx := ctxT(t)
	var all []procID
	for _, id := range []string{"a", "b", "c"} {
		st, err := r.Start(ctx, wire.WorkloadSpec{ID: id, Command: []string{"sleep", "1000"}})
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, identify(t, []int{st.HostPID})...)
	}
	start := time.Now()
	if err := r.StopAll(ctx); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("StopAll took %v: workloads were not stopped concurrently", took)
	}
	for _, p := range all {
		if p.alive() {
			t.Errorf("pid %d survived StopAll", p.pid)
		}
	}
	if l := r.List(); len(l) != 0 {
		t.Errorf("List = %+v", l)
	}
}
