package migration

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/batonhq/baton/migrate/criu"
	"github.com/batonhq/baton/wire"
)

func newLazyNode(t *testing.T, name string, dir string) *fakeNode {
	if dir == "" {
		dir = t.TempDir()
	}
	n := &fakeNode{c: &fakeCRIU{pid: 777}, r: newFakeRunner(dir)}
	var err error
	n.m, err = New(Config{Node: name, DataDir: dir, Runner: n.r, CRIU: n.c,
		Features:    wire.NodeFeatures{CRIU: true, HostID: "h", LazyPages: true, UFFD: true},
		Alive:       func(pid int) bool { return pid == n.c.pid },
		DumpEndWait: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.m.Close)
	return n
}

func lazyCmd() wire.MigrationCmd {
	mc := fakeCmd()
	mc.Mode, mc.PageServer = "post-copy", ""
	return mc
}

// lazyUpToRestore runs prepare, dump and restore of a post-copy migration
// and returns the command as the server would have completed it.
func lazyUpToRestore(t *testing.T, src, dst *fakeNode) wire.MigrationCmd {
	t.Helper()
	src.r.state["w"], src.r.pid["w"] = wire.StateRunning, 100
	mc := lazyCmd()
	if p := dst.must(t, wire.OpMigratePrepare, mc); p.PageServer != "" || dst.c.count("page-server") != 0 {
		t.Fatalf("post-copy prepare started a page server on the target: %+v", p)
	}
	d := src.must(t, wire.OpMigrateDump, mc)
	if d.PageServer != "127.0.0.1:5151" || src.c.count("lazy-dump") != 1 || src.c.count("dump") != 0 {
		t.Fatalf("post-copy dump: %+v, calls %v", d, src.c.calls)
	}
	mc.PageServer, mc.SourceLog = d.PageServer, d.SourceLog
	if r := dst.must(t, wire.OpMigrateRestore, mc); r.PID != 777 {
		t.Fatalf("restore: %+v", r)
	}
	if dst.c.count("lazy-pages 127.0.0.1:5151") != 1 {
		t.Fatalf("the target's daemon did not connect to the source's page server: %v", dst.c.calls)
	}
	return mc
}

// TestPostCopyCommitOnlyAfterEveryPage: the target commits only once
// wait-pages said every page arrived; the source is killed only by the
// commit, after its dump ended.
func TestPostCopyCommitOnlyAfterEveryPage(t *testing.T) {
	src, dst := newLazyNode(t, "src", ""), newLazyNode(t, "dst", "")
	mc := lazyUpToRestore(t, src, dst)
	tc := mc
	tc.Role = wire.RoleTarget
	if _, err := dst.do(wire.OpMigrateCommit, tc); !errors.Is(err, ErrWrongPhase) {
		t.Fatalf("target commit before every page arrived: %v, want ErrWrongPhase", err)
	}
	w1 := dst.must(t, wire.OpMigrateWaitPages, mc)
	w2 := dst.must(t, wire.OpMigrateWaitPages, mc)
	if w1.Bytes != 40960 || w2.Bytes != w1.Bytes {
		t.Fatalf("wait-pages: %+v then %+v", w1, w2)
	}
	src.c.lazySrc.end() // CRIU's dump ends once the daemon disconnected
	sc := mc
	sc.Role = wire.RoleSource
	src.must(t, wire.OpMigrateCommit, sc)
	dst.must(t, wire.OpMigrateCommit, tc)
	if got := src.r.callList(); !slices.Equal(got, []string{"freeze", "handoff"}) {
		t.Errorf("source runner calls: %v", got)
	}
	if got := dst.r.callList(); !slices.Equal(got, []string{"prepare-cgroups", "adopt"}) {
		t.Errorf("target runner calls: %v", got)
	}
}

// TestPostCopyTransferFailsTargetFirst: the page transfer fails; the target
// kills its copy at once (it runs on a memory with holes), and the abort
// then resumes the source: thawed and continued (CRIU left it stopped).
func TestPostCopyTransferFailsTargetFirst(t *testing.T) {
	src, dst := newLazyNode(t, "src", ""), newLazyNode(t, "dst", "")
	mc := lazyUpToRestore(t, src, dst)
	dst.c.pagesErr = criu.ErrIncomplete
	_, err := dst.do(wire.OpMigrateWaitPages, mc)
	if !errors.Is(err, ErrFailed) {
		t.Fatalf("wait-pages of a failed transfer: %v, want ErrFailed", err)
	}
	if got := dst.r.callList(); !slices.Equal(got, []string{"prepare-cgroups", "adopt", "discard"}) {
		t.Fatalf("target runner calls after the failed transfer: %v (the copy must go at once)", got)
	}
	tc, sc := mc, mc
	tc.Role, tc.KillTarget = wire.RoleTarget, true
	sc.Role, sc.ResumeSource = wire.RoleSource, true
	dst.must(t, wire.OpMigrateAbort, tc)
	// The source's dump still serves (say the daemon's RST never came):
	// the abort kills it, then thaws and continues the source.
	src.must(t, wire.OpMigrateAbort, sc)
	if src.c.count("lazy-dump-kill") != 1 {
		t.Errorf("the abort did not end the dump: %v", src.c.calls)
	}
	if got := src.r.callList(); !slices.Equal(got, []string{"freeze", "thaw", "continue"}) {
		t.Errorf("source runner calls: %v", got)
	}
	if src.r.get("w") != wire.StateRunning {
		t.Errorf("source workload is %q after the abort", src.r.get("w"))
	}
	if _, err := src.do(wire.OpMigrateCommit, sc); !errors.Is(err, ErrWrongPhase) {
		t.Errorf("a commit after the abort: %v, want ErrWrongPhase", err)
	}
}

// TestPostCopyAbortDuringWaitPages: an abort cancels a wait-pages in
// flight; the daemon and the copy are gone before the abort answers.
func TestPostCopyAbortDuringWaitPages(t *testing.T) {
	src, dst := newLazyNode(t, "src", ""), newLazyNode(t, "dst", "")
	mc := lazyUpToRestore(t, src, dst)
	dst.c.pagesHold = true
	errc := make(chan error, 1)
	go func() { _, err := dst.do(wire.OpMigrateWaitPages, mc); errc <- err }()
	tc := mc
	tc.Role, tc.KillTarget = wire.RoleTarget, true
	// The abort may come before the wait started: then the wait finds the
	// migration aborted. Either way both end and the copy is gone.
	dst.must(t, wire.OpMigrateAbort, tc)
	select {
	case err := <-errc:
		if err == nil {
			t.Fatal("wait-pages succeeded across an abort")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("wait-pages did not end after the abort")
	}
	if !slices.Contains(dst.r.callList(), "discard") {
		t.Fatalf("the abort did not discard the copy: %v", dst.r.callList())
	}
}

// TestPostCopyTargetRestartDropsCopy: the target agent restarts during the
// transfer (its lazy-pages daemon died with it): the restarted agent kills
// the copy at once, and wait-pages reports why.
func TestPostCopyTargetRestartDropsCopy(t *testing.T) {
	dir := t.TempDir()
	src, dst := newLazyNode(t, "src", ""), newLazyNode(t, "dst", dir)
	mc := lazyUpToRestore(t, src, dst)
	dst.m.Close()
	again := newLazyNode(t, "dst", dir)
	if got := again.r.callList(); !slices.Equal(got, []string{"discard"}) {
		t.Fatalf("restarted target's runner calls: %v, want the copy discarded at start", got)
	}
	if _, err := again.do(wire.OpMigrateWaitPages, mc); !errors.Is(err, ErrFailed) {
		t.Fatalf("wait-pages after the restart: %v, want ErrFailed", err)
	}
}

// TestPostCopySourceRestartRefreezes: the source agent restarts while its
// lazy dump serves (the dump dies with it, and the source would run again):
// the restarted agent freezes the source back at once; an abort then thaws
// and continues it.
func TestPostCopySourceRestartRefreezes(t *testing.T) {
	dir := t.TempDir()
	src, dst := newLazyNode(t, "src", dir), newLazyNode(t, "dst", "")
	mc := lazyUpToRestore(t, src, dst)
	src.m.Close()
	again := newLazyNode(t, "src", dir)
	again.r.state["w"], again.r.pid["w"] = wire.StateMigrating, 100
	if got := again.r.callList(); !slices.Equal(got, []string{"freeze"}) {
		t.Fatalf("restarted source's runner calls: %v, want the source frozen back at start", got)
	}
	sc := mc
	sc.Role, sc.ResumeSource = wire.RoleSource, true
	again.must(t, wire.OpMigrateAbort, sc)
	if got := again.r.callList(); !slices.Equal(got, []string{"freeze", "thaw", "continue"}) {
		t.Fatalf("source runner calls after the abort: %v", got)
	}
}
