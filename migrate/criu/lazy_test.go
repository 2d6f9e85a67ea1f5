package criu

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/batonhq/baton/nodeagent/cgroupv1"
)

// lazyHop is the adapter's side of one post-copy migration, in the order the
// agents carry it out: freeze, lazy dump (page server on the source), images
// to the target, lazy-pages daemon, lazy restore.
type lazyHop struct {
	m      *migration
	dump   *LazyDumpRun
	daemon *LazyPagesDaemon
	// Where the frozen time goes: freeze, the lazy dump until its page
	// server listens, the images' copy, the daemon's start (the restore
	// is m.restore.Duration).
	freezeTook, dumpTook, copyTook, daemonTook time.Duration
}

func startLazyHop(t testing.TB, ctx context.Context, m *migration) *lazyHop {
	t.Helper()
	if _, err := EnsurePipeMaxSize(); err != nil {
		t.Fatal(err)
	}
	cg, err := cgroupv1.New(cgroupv1.DefaultRoot, filepath.Join("baton", m.to.name, m.id))
	if err != nil {
		t.Fatal(err)
	}
	if err := cg.Create(); err != nil {
		t.Fatal(err)
	}
	m.dstImages = filepath.Join(m.to.dir, "migrate", m.id, "images")
	m.startRestoreProcess(t)
	m.freezer = NewFreezer(filepath.Join("baton", m.from.name, m.id))
	if err := m.freezer.Create(); err != nil {
		t.Fatal(err)
	}
	if err := m.freezer.AddGroup(filepath.Join(CgroupV1Root, "memory", "baton", m.from.name, m.id)); err != nil {
		t.Fatal(err)
	}
	m.frozenAt = time.Now()
	if err := m.freezer.Freeze(ctx); err != nil {
		t.Fatal(err)
	}
	m.srcImages = filepath.Join(m.from.dir, "migrate", m.id, "images")
	h := &lazyHop{m: m}
	mark := m.frozenAt
	lap := func(d *time.Duration) { now := time.Now(); *d = now.Sub(mark); mark = now }
	lap(&h.freezeTook)
	h.dump, err = m.c.LazyDump(ctx, DumpOpts{PID: m.srcPID, ImagesDir: m.srcImages, PageServer: "127.0.0.1:0",
		FreezeCgroup: m.freezer.Dir, NetworkLockSkip: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.dump.Kill)
	lap(&h.dumpTook)
	if m.imageBytes, err = CopyImages(m.srcImages, m.dstImages); err != nil {
		t.Fatal(err)
	}
	lap(&h.copyTook)
	if h.daemon, err = m.c.LazyPages(ctx, m.dstImages, h.dump.Addr); err != nil {
		t.Fatal(err)
	}
	lap(&h.daemonTook)
	t.Cleanup(h.daemon.Kill)
	logf, err := m.openTargetLog()
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	path := filepath.Join("baton", m.to.name, m.id)
	m.restore, err = m.c.Restore(ctx, RestoreOpts{
		ImagesDir: m.dstImages, Cgroups: CgroupRoots(path), Log: logf, LogKey: m.logKey,
		Detach: true, LazyPages: true, Process: m.restoreProc,
	})
	m.restoreProc = nil
	if err != nil {
		t.Fatal(err)
	}
	m.frozen = time.Since(m.frozenAt)
	return h
}

// TestPostCopyThereAndBack moves the counter with lazy pages: the target
// runs before its memory has arrived, the source stays frozen until every
// page is there, then the source is killed; and back.
func TestPostCopyThereAndBack(t *testing.T) {
	c := needCRIU(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	tag := fmt.Sprintf("t%d", os.Getpid())
	a, b := newNode(t, tag+"p"), newNode(t, tag+"q")
	wd := filepath.Join(t.TempDir(), "work")
	const id = "counter"
	pid := startCounter(t, a, id, wd)
	waitFor(t, 10*time.Second, "the counter to reach 3", func() bool { return last(counts(t, wd)) >= 3 })
	hop := func(from, to *node, pid int, logKey string) int {
		t.Helper()
		m := &migration{c: c, from: from, to: to, id: id, srcPID: pid, logKey: logKey}
		h := startLazyHop(t, ctx, m)
		bytes, err := h.daemon.Wait(ctx, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.dump.Wait(ctx); err != nil {
			t.Fatalf("the lazy dump failed after every page arrived: %v", err)
		}
		if st, _ := m.freezer.State(); st != "FROZEN" {
			t.Errorf("the source's freezer is %s after the transfer, want FROZEN (--leave-stopped + freeze-cgroup)", st)
		}
		atCommit := last(counts(t, wd))
		if err := m.freezer.Kill(ctx); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s → %s: pid %d → %d, frozen %s (restore %s), %d KiB of pages lazily, %d B of other images",
			from.name, to.name, pid, m.restore.PID, m.frozen.Round(time.Millisecond), m.restore.Duration.Round(time.Millisecond), bytes>>10, m.imageBytes)
		checkInCgroups(t, m.restore.PID, to.name, id)
		waitFor(t, 10*time.Second, "the restored counter to go on", func() bool { return last(counts(t, wd)) >= atCommit+3 })
		checkConsecutive(t, counts(t, wd))
		// As the agents do: the images go once the migration is over.
		os.RemoveAll(m.srcImages)
		os.RemoveAll(m.dstImages)
		return m.restore.PID
	}
	pid = hop(a, b, pid, a.r.LogPath(id))
	hop(b, a, pid, b.r.LogPath(id))
}

// TestPostCopyDaemonKilledSourceResumes kills the target's lazy-pages daemon
// while a 256 MiB workload's pages stream: Wait reports the transfer
// incomplete, the source (frozen whatever CRIU thinks) stays whole; the
// abort kills the target's copy first, then thaws and continues the source,
// which goes on from its state at the freeze with intact memory.
func TestPostCopyDaemonKilledSourceResumes(t *testing.T) {
	c := needCRIU(t)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	tag := fmt.Sprintf("t%d", os.Getpid())
	a, b := newNode(t, tag+"r"), newNode(t, tag+"s")
	wd := filepath.Join(t.TempDir(), "work")
	const id = "mem"
	pid := startMem(t, a, id, wd, 256)
	waitFor(t, 10*time.Second, "the counter to reach 2", func() bool { return last(counts(t, wd)) >= 2 })
	m := &migration{c: c, from: a, to: b, id: id, srcPID: pid, logKey: a.r.LogPath(id)}
	h := startLazyHop(t, ctx, m)
	atFreeze := last(counts(t, wd))
	// The fault: the daemon dies mid-transfer (256 MiB take a few hundred
	// ms to stream; the kill comes right after the restore).
	if err := syscall.Kill(h.daemon.PID(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_, err := h.daemon.Wait(ctx, 10*time.Second)
	if !errors.Is(err, ErrIncomplete) {
		t.Fatalf("Wait after the daemon was killed: %v, want ErrIncomplete", err)
	}
	t.Logf("as reported: %v", firstLine(err.Error()))
	// Abort, target first.
	dst := NewFreezer(filepath.Join("baton", b.name, id))
	if err := dst.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	if pids, _ := Procs(dst.Dir); len(pids) != 0 {
		t.Fatalf("the target copy still runs: %v", pids)
	}
	// The dump sees the daemon's end (EOF or reset); either way CRIU leaves
	// the source frozen.
	dctx, dcancel := context.WithTimeout(ctx, 10*time.Second)
	_, derr := h.dump.Wait(dctx)
	dcancel()
	if errors.Is(derr, context.DeadlineExceeded) {
		h.dump.Kill()
	}
	t.Logf("the source's dump ended with: %v", derr)
	if st, _ := m.freezer.State(); st != "FROZEN" {
		t.Fatalf("the source's freezer is %s after a failed transfer, want FROZEN", st)
	}
	if got := last(counts(t, wd)); got > atFreeze+1 {
		t.Logf("the target's copy wrote %d lines before it was killed", got-atFreeze)
	}
	n := len(counts(t, wd))
	if err := m.freezer.Thaw(ctx); err != nil {
		t.Fatal(err)
	}
	pids, _ := Procs(m.freezer.Dir)
	for _, p := range pids {
		syscall.Kill(p, syscall.SIGCONT)
	}
	waitFor(t, 20*time.Second, "the resumed source to count on", func() bool { return len(counts(t, wd)) >= n+3 })
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
		t.Fatalf("the source pid %d is gone after the rollback", pid)
	}
	// The source goes on from its own state: after the target's lines (if
	// any) it writes atFreeze+1, atFreeze+2, ...
	xs := counts(t, wd)
	tail := xs[n:]
	if tail[0] != atFreeze+1 {
		t.Fatalf("after the rollback the source wrote %v, want it to go on from %d", tail, atFreeze)
	}
}

func firstLine(s string) string { l, _, _ := strings.Cut(s, "\n"); return l }
