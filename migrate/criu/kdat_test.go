package criu

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

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
