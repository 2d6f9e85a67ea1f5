package criu

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestFeatures(t *testing.T) {
	c := needCRIU(t)
	f, err := c.Features(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("features: %+v", f)
	f2, _ := c.Features(context.Background())
	if f != f2 {
		t.Fatalf("cached features differ: %+v vs %+v", f, f2)
	}
}

// TestStopCopyThereAndBack moves a counter that keeps its state in memory
// from node a to node b (pages streamed to b's page server, b's own log and
// cgroups), checks it goes on counting where it was, as PID 1 of its
// namespace, in b's cgroups, then moves it back.
func TestStopCopyThereAndBack(t *testing.T) {
	c := needCRIU(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	tag := fmt.Sprintf("t%d", os.Getpid())
	a, b := newNode(t, tag+"a"), newNode(t, tag+"b")
	wd := filepath.Join(t.TempDir(), "work")
	const id = "counter"
	pid := startCounter(t, a, id, wd)
	waitFor(t, 10*time.Second, "the counter to reach 5", func() bool { return last(counts(t, wd)) >= 5 })

	hop := func(from, to *node, pid int, logKey string) int {
		t.Helper()
		m := &migration{c: c, from: from, to: to, id: id, srcPID: pid, logKey: logKey}
		_, port := m.prepareTarget(t)
		if err := m.freezeAndDump(ctx, port); err != nil {
			t.Fatal(err)
		}
		if st, _ := m.freezer.State(); st != "FROZEN" {
			t.Fatalf("source freezer is %s after the dump, want FROZEN (rollback needs it)", st)
		}
		atDump := last(counts(t, wd))
		if err := m.transferAndRestore(ctx); err != nil {
			t.Fatal(err)
		}
		newPID := m.restore.PID
		t.Logf("%s → %s: pid %d → %d, count %d at the dump, frozen %s (CRIU dump %s, frozen %s; restore %s), %d pages, %d B of other images",
			from.name, to.name, pid, newPID, atDump, m.frozen.Round(time.Millisecond), m.dump.Duration.Round(time.Millisecond),
			m.dump.FrozenTime.Round(time.Millisecond), m.restore.Duration.Round(time.Millisecond), m.dump.PagesWritten, m.imageBytes)
		if got := nsPID(t, newPID); got != 1 {
			t.Errorf("restored pid %d is pid %d in its namespace, want 1", newPID, got)
		}
		checkInCgroups(t, newPID, to.name, id)
		waitFor(t, 10*time.Second, "the restored counter to go on", func() bool { return last(counts(t, wd)) >= atDump+3 })
		// Commit: the frozen source dies.
		if err := m.freezer.Kill(ctx); err != nil {
			t.Fatal(err)
		}
		if err := os.RemoveAll(m.srcImages); err != nil {
			t.Fatal(err)
		}
		checkConsecutive(t, counts(t, wd))
		logb, err := os.ReadFile(to.r.LogPath(id))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(logb), fmt.Sprintf("tick %d\n", atDump+1)) {
			t.Errorf("target log %s lacks tick %d: the restored process does not write to the target's log:\n%s", to.r.LogPath(id), atDump+1, logb)
		}
		return newPID
	}
	pid = hop(a, b, pid, a.r.LogPath(id))
	pid = hop(b, a, pid, b.r.LogPath(id))
	_ = pid
	n := last(counts(t, wd))
	waitFor(t, 10*time.Second, "the counter to go on after the way back", func() bool { return last(counts(t, wd)) >= n+2 })
	checkConsecutive(t, counts(t, wd))
}

// TestRestoreFailsSourceResumes: the restore fails (a corrupt image); the
// error carries CRIU's log, nothing runs on the target, and thawing the
// source (the rollback) lets it go on where it was.
func TestRestoreFailsSourceResumes(t *testing.T) {
	c := needCRIU(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	tag := fmt.Sprintf("t%d", os.Getpid())
	a, b := newNode(t, tag+"c"), newNode(t, tag+"d")
	wd := filepath.Join(t.TempDir(), "work")
	const id = "counter"
	pid := startCounter(t, a, id, wd)
	waitFor(t, 10*time.Second, "the counter to reach 3", func() bool { return last(counts(t, wd)) >= 3 })

	m := &migration{c: c, from: a, to: b, id: id, srcPID: pid, logKey: a.r.LogPath(id)}
	_, port := m.prepareTarget(t)
	if err := m.freezeAndDump(ctx, port); err != nil {
		t.Fatal(err)
	}
	atDump := last(counts(t, wd))
	// Corrupt the page map on the target.
	maps, _ := filepath.Glob(filepath.Join(m.dstImages, "pagemap-*.img"))
	if len(maps) == 0 {
		t.Fatalf("no pagemap image in %s: the page server wrote nothing", m.dstImages)
	}
	for _, p := range maps {
		if err := os.WriteFile(p, []byte("garbage"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	err := m.transferAndRestore(ctx)
	if !errors.Is(err, ErrCRIU) {
		t.Fatalf("restore of corrupt images: got %v, want ErrCRIU", err)
	}
	if !strings.Contains(err.Error(), RestoreLog) || !strings.Contains(err.Error(), "Error") {
		t.Errorf("the restore error does not carry CRIU's log: %v", err)
	}
	t.Logf("restore error, as a user sees it: %v", err)
	// CRIU kills what it forked of a failed restore; the killed task
	// leaves the target's cgroup once the kernel has reaped it.
	waitFor(t, 5*time.Second, "the failed restore's processes to be gone from the target", func() bool {
		pids, _ := Procs(filepath.Join(CgroupV1Root, "memory", "baton", b.name, id))
		return len(pids) == 0
	})
	time.Sleep(0) // the source is frozen: the counter must not move
	if got := last(counts(t, wd)); got != atDump {
		t.Fatalf("the frozen source counted on: %d, want %d", got, atDump)
	}
	// Rollback.
	if err := m.freezer.Thaw(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the resumed source to count on", func() bool { return last(counts(t, wd)) >= atDump+3 })
	checkConsecutive(t, counts(t, wd))
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
		t.Fatalf("the source pid %d is gone after the rollback", pid)
	}
}

func TestRSS(t *testing.T) {
	n, err := RSS(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if n < 1<<20 {
		t.Fatalf("RSS of the test process: %d bytes, implausibly small", n)
	}
	if _, err := RSS(1 << 30); err == nil {
		t.Fatal("RSS of a missing pid: no error")
	}
}
