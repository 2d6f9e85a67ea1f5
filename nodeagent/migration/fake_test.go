package migration

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/batonhq/baton/migrate/criu"
	"github.com/batonhq/baton/nodeagent/runner"
	"github.com/batonhq/baton/wire"
)

// fakeCRIU is Checkpointer's in-memory twin: it records its calls, can fail
// them, and can hold Dump and Restore until released (like the real CRIU,
// it does not watch ctx once started).
type fakeCRIU struct {
	mu          sync.Mutex
	calls       []string
	dumpErr     error
	restoreErr  error
	hold        chan struct{} // non-nil: Dump and Restore wait for it to close
	started     chan string   // receives "dump"/"restore" when one starts
	pid         int
	stoppedPSes int
	openProcs   int             // restore processes started ahead, not ended
	ctx         context.Context // of the last Dump or Restore
	// post-copy
	lazySrc   *fakeLazySource // the last LazyDump's
	pagesErr  error           // what the target's Wait answers
	pagesHold bool            // Wait holds until killed or cancelled
}

func (f *fakeCRIU) opCtx() context.Context {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ctx
}

func (f *fakeCRIU) note(s string) {
	f.mu.Lock()
	f.calls = append(f.calls, s)
	f.mu.Unlock()
}

func (f *fakeCRIU) count(s string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		if c == s {
			n++
		}
	}
	return n
}

func (f *fakeCRIU) PageServer(ctx context.Context, dir, addr string) (func() error, int, error) {
	f.note("page-server")
	return func() error {
		f.mu.Lock()
		f.stoppedPSes++
		f.mu.Unlock()
		return nil
	}, 4242, nil
}

func (f *fakeCRIU) wait(ctx context.Context, what string) {
	f.mu.Lock()
	f.ctx = ctx
	f.mu.Unlock()
	if f.started != nil {
		f.started <- what
	}
	if f.hold != nil {
		<-f.hold
	}
}

func (f *fakeCRIU) Dump(ctx context.Context, o criu.DumpOpts) (criu.DumpResult, error) {
	f.note("dump")
	f.wait(ctx, "dump")
	return criu.DumpResult{PagesWritten: 10}, f.dumpErr
}

func (f *fakeCRIU) Restore(ctx context.Context, o criu.RestoreOpts, p RestoreProcess) (criu.RestoreResult, error) {
	if p != nil {
		defer p.Close() // as the real one: a restore ends its process
		f.note("restore with the process started ahead")
	}
	f.note("restore")
	f.wait(ctx, "restore")
	if f.restoreErr != nil {
		return criu.RestoreResult{}, f.restoreErr
	}
	return criu.RestoreResult{PID: f.pid}, nil
}

// StartRestore starts a twin of the restore's criu process; the fake counts
// the ones not ended.
func (f *fakeCRIU) StartRestore(ctx context.Context, o criu.RestoreOpts) (RestoreProcess, error) {
	f.note("start-restore")
	f.mu.Lock()
	defer f.mu.Unlock()
	f.openProcs++
	return &fakeRestoreProcess{f: f}, nil
}

// fakeRestoreProcess is the in-memory twin of criu.RestoreProcess.
type fakeRestoreProcess struct {
	f     *fakeCRIU
	ended bool // guarded by f.mu
}

func (p *fakeRestoreProcess) Close() {
	p.f.mu.Lock()
	defer p.f.mu.Unlock()
	if !p.ended {
		p.ended = true
		p.f.openProcs--
	}
}

// open is the number of restore processes started and not ended.
func (f *fakeCRIU) open() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.openProcs
}

// LazyDump: a lazy source that serves until killed or ended.
func (f *fakeCRIU) LazyDump(ctx context.Context, o criu.DumpOpts) (LazySource, error) {
	f.note("lazy-dump")
	f.wait(ctx, "lazy-dump")
	if f.dumpErr != nil {
		return nil, f.dumpErr
	}
	src := &fakeLazySource{f: f, done: make(chan struct{})}
	f.mu.Lock()
	f.lazySrc = src
	f.mu.Unlock()
	return src, nil
}

// LazyPages: a daemon whose Wait answers pagesErr (nil: 40960 bytes), or
// holds until it is killed when pagesHold is set.
func (f *fakeCRIU) LazyPages(ctx context.Context, imagesDir, pageServer string) (LazyTarget, error) {
	f.note("lazy-pages " + pageServer)
	return &fakeLazyTarget{f: f, killed: make(chan struct{})}, nil
}

type fakeLazySource struct {
	f    *fakeCRIU
	done chan struct{}
	once sync.Once
}

func (l *fakeLazySource) Address() string       { return "127.0.0.1:5151" }
func (l *fakeLazySource) Done() <-chan struct{} { return l.done }
func (l *fakeLazySource) end()                  { l.once.Do(func() { close(l.done) }) }
func (l *fakeLazySource) Kill()                 { l.f.note("lazy-dump-kill"); l.end() }
func (l *fakeLazySource) Wait(ctx context.Context) (criu.DumpResult, error) {
	select {
	case <-l.done:
		return criu.DumpResult{}, nil
	case <-ctx.Done():
		return criu.DumpResult{}, ctx.Err()
	}
}

type fakeLazyTarget struct {
	f      *fakeCRIU
	killed chan struct{}
	once   sync.Once
}

func (l *fakeLazyTarget) PID() int                { return 1 }
func (l *fakeLazyTarget) LastProgress() time.Time { return time.Now() }
func (l *fakeLazyTarget) Kill() {
	l.f.note("lazy-pages-kill")
	l.once.Do(func() { close(l.killed) })
}
func (l *fakeLazyTarget) Wait(ctx context.Context, stall time.Duration) (int64, error) {
	l.f.mu.Lock()
	hold, err := l.f.pagesHold, l.f.pagesErr
	l.f.mu.Unlock()
	if hold {
		select {
		case <-l.killed:
			return 0, criu.ErrIncomplete
		case <-ctx.Done():
			l.Kill()
			return 0, ctx.Err()
		}
	}
	if err != nil {
		l.Kill()
		return 0, err
	}
	return 40960, nil
}

// fakeRunner is Workloads' in-memory twin: workload states and the calls
// made, in order.
type fakeRunner struct {
	dir   string
	mu    sync.Mutex
	state map[string]string // id → running, migrating
	pid   map[string]int
	calls []string
}

func newFakeRunner(dir string) *fakeRunner {
	return &fakeRunner{dir: dir, state: map[string]string{}, pid: map[string]int{}}
}

func (r *fakeRunner) note(s string) { r.calls = append(r.calls, s) }

func (r *fakeRunner) LogPath(id string) string              { return filepath.Join(r.dir, id, "output.log") }
func (r *fakeRunner) Workdir(spec wire.WorkloadSpec) string { return filepath.Join(r.dir, spec.ID) }
func (r *fakeRunner) CgroupPath(id string) string           { return "baton/fake/" + id }

func (r *fakeRunner) Freeze(ctx context.Context, id, mid string) (runner.Frozen, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.note("freeze")
	if r.state[id] == "" {
		return runner.Frozen{}, runner.ErrUnknownWorkload
	}
	r.state[id] = wire.StateMigrating
	return runner.Frozen{PID: r.pid[id], Log: r.LogPath(id), Workdir: filepath.Join(r.dir, id), FrozenAt: time.Now()}, nil
}

func (r *fakeRunner) Thaw(ctx context.Context, id, mid string) (wire.WorkloadStatus, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.note("thaw")
	if r.state[id] == "" {
		return wire.WorkloadStatus{}, runner.ErrUnknownWorkload
	}
	r.state[id] = wire.StateRunning
	return wire.WorkloadStatus{ID: id, State: wire.StateRunning, HostPID: r.pid[id]}, nil
}

func (r *fakeRunner) Handoff(ctx context.Context, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.note("handoff")
	if s := r.state[id]; s != "" && s != wire.StateMigrating {
		return runner.ErrNotRunning
	}
	delete(r.state, id)
	return nil
}

func (r *fakeRunner) Continue(ctx context.Context, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.note("continue")
	return nil
}

func (r *fakeRunner) PrepareCgroups(spec wire.WorkloadSpec) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.note("prepare-cgroups")
	if r.state[spec.ID] != "" {
		return "", runner.ErrAlreadyKnown
	}
	if err := os.MkdirAll(filepath.Dir(r.LogPath(spec.ID)), 0o755); err != nil {
		return "", err
	}
	return r.CgroupPath(spec.ID), nil
}

func (r *fakeRunner) Adopt(ctx context.Context, spec wire.WorkloadSpec, pid int) (wire.WorkloadStatus, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.note("adopt")
	if err := ctx.Err(); err != nil {
		return wire.WorkloadStatus{}, err
	}
	r.state[spec.ID], r.pid[spec.ID] = wire.StateRunning, pid
	return wire.WorkloadStatus{ID: spec.ID, State: wire.StateRunning, HostPID: pid}, nil
}

func (r *fakeRunner) Discard(ctx context.Context, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.note("discard")
	delete(r.state, id)
	return nil
}

func (r *fakeRunner) get(id string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.state[id]
}

func (r *fakeRunner) callList() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

// fakeNode is a Manager on fakes.
type fakeNode struct {
	m *Manager
	c *fakeCRIU
	r *fakeRunner
}

func newFakeNode(t *testing.T, name string) *fakeNode {
	dir := t.TempDir()
	n := &fakeNode{c: &fakeCRIU{pid: 777}, r: newFakeRunner(dir)}
	var err error
	n.m, err = New(Config{Node: name, DataDir: dir, Runner: n.r, CRIU: n.c, Features: wire.NodeFeatures{CRIU: true, HostID: "h"},
		Alive: func(pid int) bool { return pid == n.c.pid }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.m.Close)
	return n
}

func (n *fakeNode) do(op string, mc wire.MigrationCmd) (*wire.MigrationReply, error) {
	return n.m.Handle(context.Background(), wire.Command{V: wire.Version, Op: op, Migration: &mc})
}

func fakeCmd() wire.MigrationCmd {
	return wire.MigrationCmd{ID: "m1", Workload: wire.WorkloadSpec{ID: "w", Command: []string{"x"}}, Source: "src", Target: "dst", PageServer: "127.0.0.1:4242", SourceLog: "/log"}
}

func (n *fakeNode) must(t *testing.T, op string, mc wire.MigrationCmd) *wire.MigrationReply {
	t.Helper()
	rep, err := n.do(op, mc)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// TestRetriesDoNotRedo: every op retried answers the first outcome and
// calls CRIU and the runner once.
func TestRetriesDoNotRedo(t *testing.T) {
	src, dst := newFakeNode(t, "src"), newFakeNode(t, "dst")
	src.r.state["w"], src.r.pid["w"] = wire.StateRunning, 100
	mc := fakeCmd()
	p1 := dst.must(t, wire.OpMigratePrepare, mc)
	p2 := dst.must(t, wire.OpMigratePrepare, mc)
	if p1.PageServer != "127.0.0.1:4242" || p2.PageServer != p1.PageServer || dst.c.count("page-server") != 1 {
		t.Fatalf("prepare: %+v then %+v, %d page servers", p1, p2, dst.c.count("page-server"))
	}
	d1 := src.must(t, wire.OpMigrateDump, mc)
	d2 := src.must(t, wire.OpMigrateDump, mc)
	if !d1.FrozenAt.Equal(d2.FrozenAt) || src.c.count("dump") != 1 || src.r.get("w") != wire.StateMigrating {
		t.Fatalf("dump: %+v then %+v, %d dumps", d1, d2, src.c.count("dump"))
	}
	if d1.Bytes <= 0 || d1.SourceLog == "" {
		t.Errorf("dump reply: %+v", d1)
	}
	r1 := dst.must(t, wire.OpMigrateRestore, mc)
	r2 := dst.must(t, wire.OpMigrateRestore, mc)
	if r1.PID != 777 || r2.PID != 777 || dst.c.count("restore") != 1 {
		t.Fatalf("restore: pid %d then %d, %d restores", r1.PID, r2.PID, dst.c.count("restore"))
	}
	mc.Role = wire.RoleSource
	src.must(t, wire.OpMigrateCommit, mc)
	src.must(t, wire.OpMigrateCommit, mc)
	if got := src.r.callList(); !slices.Equal(got, []string{"freeze", "handoff"}) {
		t.Errorf("source runner calls: %v", got)
	}
	mc.Role = wire.RoleTarget
	dst.must(t, wire.OpMigrateCommit, mc)
	if _, err := dst.do(wire.OpMigrateAbort, mc); !errors.Is(err, ErrWrongPhase) {
		t.Errorf("abort after commit: %v, want ErrWrongPhase", err)
	}
	if got := dst.r.callList(); !slices.Equal(got, []string{"prepare-cgroups", "adopt"}) {
		t.Errorf("target runner calls: %v", got)
	}
}

// TestAbortWaitsForDump: an abort sent during a dump waits for it to end,
// then thaws the source; a dump after the abort is refused.
func TestAbortWaitsForDump(t *testing.T) {
	src := newFakeNode(t, "src")
	src.r.state["w"], src.r.pid["w"] = wire.StateRunning, 100
	src.c.hold, src.c.started = make(chan struct{}), make(chan string, 1)
	mc := fakeCmd()
	dumped := make(chan error, 1)
	go func() {
		_, err := src.do(wire.OpMigrateDump, mc)
		dumped <- err
	}()
	<-src.c.started
	aborted := make(chan error, 1)
	abort := mc
	abort.Role, abort.ResumeSource = wire.RoleSource, true
	go func() {
		_, err := src.do(wire.OpMigrateAbort, abort)
		aborted <- err
	}()
	// The abort cannot end while the dump is held (no sleep: if it could,
	// this select would sometimes see it).
	select {
	case err := <-aborted:
		t.Fatalf("abort returned (%v) while the dump ran", err)
	default:
	}
	close(src.c.hold)
	if err := <-dumped; err != nil {
		t.Logf("dump: %v", err)
	}
	if err := <-aborted; err != nil {
		t.Fatal(err)
	}
	if got := src.r.callList(); got[len(got)-1] != "thaw" || src.r.get("w") != wire.StateRunning {
		t.Fatalf("after the abort: calls %v, state %s; want thawed last", got, src.r.get("w"))
	}
	if _, err := src.do(wire.OpMigrateDump, mc); !errors.Is(err, ErrWrongPhase) {
		t.Fatalf("dump after abort: %v, want ErrWrongPhase", err)
	}
}

// TestAbortDuringRestoreDiscards: a restore that completes after the
// abort's cancel is never adopted; the abort discards what it started.
func TestAbortDuringRestoreDiscards(t *testing.T) {
	dst := newFakeNode(t, "dst")
	mc := fakeCmd()
	dst.must(t, wire.OpMigratePrepare, mc)
	dst.c.hold, dst.c.started = make(chan struct{}), make(chan string, 1)
	restored := make(chan error, 1)
	go func() {
		_, err := dst.do(wire.OpMigrateRestore, mc)
		restored <- err
	}()
	<-dst.c.started
	abort := mc
	abort.Role, abort.KillTarget = wire.RoleTarget, true
	aborted := make(chan error, 1)
	go func() {
		_, err := dst.do(wire.OpMigrateAbort, abort)
		aborted <- err
	}()
	// Wait until the abort has cancelled the restore's context (the
	// restore itself, like CRIU, goes on until released).
	for deadline := time.Now().Add(10 * time.Second); dst.c.opCtx().Err() == nil; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the abort did not cancel the restore")
		}
	}
	select {
	case err := <-aborted:
		t.Fatalf("abort returned (%v) while the restore ran", err)
	default:
	}
	close(dst.c.hold)
	if err := <-restored; err == nil {
		t.Fatal("a restore cancelled by an abort succeeded")
	}
	if err := <-aborted; err != nil {
		t.Fatal(err)
	}
	if s := dst.r.get("w"); s != "" {
		t.Fatalf("the target still has the workload: %s", s)
	}
	if got := dst.r.callList(); slices.Contains(got, "adopt") && got[len(got)-1] != "discard" {
		t.Fatalf("target calls %v: adopted after the abort", got)
	}
}

// TestFailuresAreFinal: a failed dump thaws the source at once; a failed
// restore discards; retries answer ErrFailed.
func TestFailuresAreFinal(t *testing.T) {
	src, dst := newFakeNode(t, "src"), newFakeNode(t, "dst")
	src.r.state["w"], src.r.pid["w"] = wire.StateRunning, 100
	src.c.dumpErr = fmt.Errorf("%w: no page server", criu.ErrCRIU)
	mc := fakeCmd()
	if _, err := src.do(wire.OpMigrateDump, mc); !errors.Is(err, criu.ErrCRIU) {
		t.Fatalf("dump: %v", err)
	}
	if src.r.get("w") != wire.StateRunning {
		t.Fatal("the source stays frozen after a failed dump")
	}
	if _, err := src.do(wire.OpMigrateDump, mc); !errors.Is(err, ErrFailed) || !strings.Contains(err.Error(), "no page server") {
		t.Fatalf("retried dump: %v, want ErrFailed with the reason", err)
	}
	dst.must(t, wire.OpMigratePrepare, mc)
	dst.c.restoreErr = fmt.Errorf("%w: corrupt", criu.ErrCRIU)
	if _, err := dst.do(wire.OpMigrateRestore, mc); !errors.Is(err, criu.ErrCRIU) {
		t.Fatalf("restore: %v", err)
	}
	if _, err := dst.do(wire.OpMigrateRestore, mc); !errors.Is(err, ErrFailed) {
		t.Fatalf("retried restore: %v, want ErrFailed", err)
	}
	if got := dst.r.callList(); !slices.Contains(got, "discard") {
		t.Fatalf("a failed restore did not discard: %v", got)
	}
}

// TestRefusals: commands this node must not carry out.
func TestRefusals(t *testing.T) {
	n := newFakeNode(t, "dst")
	noCRIU, err := New(Config{Node: "dst", DataDir: t.TempDir(), Runner: n.r, CRIU: Real(nil)})
	if err != nil {
		t.Fatal(err)
	}
	mc := fakeCmd()
	for _, tc := range []struct {
		name string
		m    *Manager
		op   string
		edit func(*wire.MigrationCmd)
		want error
	}{
		{"no CRIU", noCRIU, wire.OpMigratePrepare, nil, ErrNoCRIU},
		{"dump on the target", n.m, wire.OpMigrateDump, nil, ErrWrongNode},
		{"prepare for another target", n.m, wire.OpMigratePrepare, func(c *wire.MigrationCmd) { c.Target = "other" }, ErrWrongNode},
		{"post-copy without lazy pages here", n.m, wire.OpMigratePrepare, func(c *wire.MigrationCmd) { c.Mode = "post-copy" }, ErrMode},
		{"pre-copy", n.m, wire.OpMigratePrepare, func(c *wire.MigrationCmd) { c.Mode = "pre-copy" }, ErrMode},
		{"restore before prepare", n.m, wire.OpMigrateRestore, nil, ErrUnknown},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := mc
			if tc.edit != nil {
				tc.edit(&c)
			}
			_, err := tc.m.Handle(context.Background(), wire.Command{V: wire.Version, Op: tc.op, Migration: &c})
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	n.r.state["w"] = wire.StateRunning
	if _, err := n.do(wire.OpMigratePrepare, mc); !errors.Is(err, runner.ErrAlreadyKnown) {
		t.Fatalf("prepare of a workload the target has: %v", err)
	}
}

// TestRestoreProcessStartedAheadIsAlwaysEnded: the target starts the
// restore's criu process at prepare (once, however often prepare is
// retried) and it is ended whatever comes next: the restore that takes it,
// a failed restore, an abort, the agent's shutdown.
func TestRestoreProcessStartedAheadIsAlwaysEnded(t *testing.T) {
	prepared := func(t *testing.T) (*fakeNode, wire.MigrationCmd) {
		t.Helper()
		dst := newFakeNode(t, "dst")
		mc := fakeCmd()
		dst.must(t, wire.OpMigratePrepare, mc)
		dst.must(t, wire.OpMigratePrepare, mc) // a retry starts no second one
		if n, open := dst.c.count("start-restore"), dst.c.open(); n != 1 || open != 1 {
			t.Fatalf("after prepare: %d started, %d open; want 1 and 1", n, open)
		}
		return dst, mc
	}
	for _, tc := range []struct {
		name string
		then func(t *testing.T, dst *fakeNode, mc wire.MigrationCmd)
	}{
		{"restored", func(t *testing.T, dst *fakeNode, mc wire.MigrationCmd) {
			dst.must(t, wire.OpMigrateRestore, mc)
			if dst.c.count("restore with the process started ahead") != 1 {
				t.Errorf("the restore did not use the process started at prepare: %v", dst.c.calls)
			}
		}},
		{"restore failed", func(t *testing.T, dst *fakeNode, mc wire.MigrationCmd) {
			dst.c.restoreErr = fmt.Errorf("%w: corrupt", criu.ErrCRIU)
			if _, err := dst.do(wire.OpMigrateRestore, mc); err == nil {
				t.Fatal("restore succeeded")
			}
		}},
		{"aborted before the restore", func(t *testing.T, dst *fakeNode, mc wire.MigrationCmd) {
			abort := mc
			abort.Role, abort.KillTarget = wire.RoleTarget, true
			dst.must(t, wire.OpMigrateAbort, abort)
		}},
		{"agent shut down", func(t *testing.T, dst *fakeNode, mc wire.MigrationCmd) {
			dst.m.Close()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst, mc := prepared(t)
			tc.then(t, dst, mc)
			if open := dst.c.open(); open != 0 {
				t.Errorf("%d restore process(es) left running", open)
			}
		})
	}
}
