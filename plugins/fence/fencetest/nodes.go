package fencetest

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

// Helpers for tests whose "nodes" are local processes and files: what the
// process driver kills and what fence_dummy powers off.

// Token returns prefix followed by a random hex string: a name that only
// this test's processes and cgroups carry, so that selectors match nothing
// else on the machine.
func Token(t testing.TB, prefix string) string {
	t.Helper()
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return prefix + hex.EncodeToString(b)
}

// Spawn starts cmd (showing argv0 as its name unless argv0 is "") in its own
// process group, reaps it as soon as it exits (no zombies), and kills its
// whole group at cleanup. It returns the pid.
func Spawn(t testing.TB, cmd *exec.Cmd, argv0 string) int {
	t.Helper()
	if argv0 != "" {
		cmd.Args[0] = argv0
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	})
	return cmd.Process.Pid
}

// PidsCgroupRoot is the cgroup v1 pids hierarchy the agents use.
const PidsCgroupRoot = "/sys/fs/cgroup/pids"

// PidsCgroup makes the cgroup PidsCgroupRoot/name for the test and removes
// it, with its child cgroups, at cleanup; their processes must be gone by
// then (Spawn them after this call: cleanups run last first). Without root
// or the hierarchy it calls Unavailable.
func PidsCgroup(t testing.TB, name string) string {
	t.Helper()
	NeedRoot(t)
	if _, err := os.Stat(filepath.Join(PidsCgroupRoot, "cgroup.procs")); err != nil {
		Unavailable(t, "cgroup v1 pids hierarchy not mounted at "+PidsCgroupRoot)
	}
	dir := filepath.Join(PidsCgroupRoot, name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		subs, _ := filepath.Glob(filepath.Join(dir, "*"))
		for _, s := range subs {
			if fi, err := os.Stat(s); err == nil && fi.IsDir() {
				_ = os.Remove(s)
			}
		}
		if err := os.Remove(dir); err != nil {
			t.Errorf("remove test cgroup: %v", err)
		}
	})
	return dir
}

// DummyStatusFile makes a fence_dummy status file holding state. No
// trailing newline: fence_dummy compares the whole file with "on"/"off" and
// exits 1 on "off\n".
func DummyStatusFile(t testing.TB, state string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "status")
	if err := os.WriteFile(f, []byte(state), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}
