package criu

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestEnsureKernelFactsCacheMakesATmpfsOnce(t *testing.T) {
	needCRIU(t) // root
	dir := filepath.Join(t.TempDir(), "kdat")
	mounted, err := EnsureKernelFactsCache(dir)
	if err != nil {
		t.Fatal(err)
	}
	if mounted {
		t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
	}
	if !onTmpfs(dir) {
		t.Fatalf("%s is not on a tmpfs after EnsureKernelFactsCache (mounted=%v)", dir, mounted)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("%s: mode %v (%v), want 0700: the cache is root's only", dir, fi.Mode().Perm(), err)
	}
	again, err := EnsureKernelFactsCache(dir)
	if err != nil || again {
		t.Errorf("second call: mounted=%v err=%v, want nothing done", again, err)
	}
}

// TestCRIUKeepsItsKernelFacts: the CRIU that make deps builds writes its
// kernel facts cache into KernelFactsDir (its RUNDIR), so later calls skip
// probing the kernel.
func TestCRIUKeepsItsKernelFacts(t *testing.T) {
	needCRIU(t)
	if _, err := EnsureKernelFactsCache(KernelFactsDir); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(criuPath, "check").CombinedOutput(); err != nil {
		t.Fatalf("criu check: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(KernelFactsDir, "criu.kdat")); err != nil {
		t.Fatalf("CRIU kept no kernel facts cache in %s (%v): was it built with RUNDIR=%s? run make deps", KernelFactsDir, err, KernelFactsDir)
	}
}

// TestRestoreProcessLifecycle: a criu process started ahead is ended by the
// restore it is handed to, even one that returns at once (its context
// already over), and a second use is refused.
func TestRestoreProcessLifecycle(t *testing.T) {
	c := needCRIU(t)
	p, err := c.StartRestore(context.Background(), RestoreOpts{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Restore(ctx, RestoreOpts{ImagesDir: t.TempDir(), Process: p}); !errors.Is(err, context.Canceled) {
		t.Fatalf("restore with an ended context: %v, want context.Canceled", err)
	}
	if _, err := p.take(); !errors.Is(err, ErrRestoreProcessUsed) {
		t.Errorf("the process outlived its restore: take = %v, want ErrRestoreProcessUsed", err)
	}
	if _, err := c.Restore(context.Background(), RestoreOpts{ImagesDir: t.TempDir(), Process: p}); !errors.Is(err, ErrRestoreProcessUsed) {
		t.Errorf("second restore with the same process: %v, want ErrRestoreProcessUsed", err)
	}
}

// TestStartRestoreThawsAFrozenTargetFreezer: the target's freezer cgroup
// left frozen (an earlier attempt that died) must not freeze the criu
// process that joins it.
func TestStartRestoreThawsAFrozenTargetFreezer(t *testing.T) {
	c := needCRIU(t)
	path := filepath.Join("baton", fmt.Sprintf("t%d-frozen", os.Getpid()), "w")
	f := NewFreezer(path)
	if err := f.Create(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Kill(context.Background()); _ = os.Remove(filepath.Dir(f.Dir)) })
	if err := f.Freeze(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := c.StartRestore(ctx, RestoreOpts{Cgroups: map[string]string{"freezer": "/" + path}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if st, _ := f.State(); st != "THAWED" {
		t.Errorf("the target freezer is %s with the criu process in it, want THAWED", st)
	}
	// The criu process answers: a version call would hang if it were frozen.
	done := make(chan error, 1)
	go func() { _, err := p.cr.GetCriuVersion(); done <- err }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("the criu process in the thawed freezer: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the criu process does not answer: frozen in the target's freezer")
	}
}
