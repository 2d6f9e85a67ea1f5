package integration

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestDevLeavesNothingBehind runs `baton dev`, places a workload, sends
// SIGTERM and checks that no agent and no workload process remains.
func TestDevLeavesNothingBehind(t *testing.T) {
	requirePrivileged(t)
	dataDir := filepath.Join(t.TempDir(), "not", "there", "yet") // baton dev creates it
	addr := freeAddr(t)
	dev := startProc(t, "baton dev", "dev", "--nodes", "3", "--api", addr, "--data-dir", dataDir)
	c := &cluster{t: t, api: "http://" + addr}
	c.eventually(30*time.Second, "baton dev's API answers", func() error { _, err := c.get("/v1/health"); return err })
	c.waitNodesRunning(3)
	agents := procsMentioning(dataDir, dev.cmd.Process.Pid)
	if len(agents) != 3 {
		t.Fatalf("found %d agent processes using %s, want 3", len(agents), dataDir)
	}
	var w workload
	c.mustDo("POST", "/v1/workloads", treeWorkload("demo", t.TempDir()), 201).decode(t, &w)
	tree := descendants(w.HostPID)

	dev.stop(t, 40*time.Second)
	if dev.err != nil {
		t.Errorf("baton dev exited with %v after SIGTERM\n%s", dev.err, dev.out.String())
	}
	for _, pid := range append(agents, tree...) {
		if alive(pid) {
			t.Errorf("process %d outlived baton dev", pid)
		}
	}
	if _, err := os.Stat(dataDir); err != nil {
		t.Errorf("the user's --data-dir was removed: %v", err)
	}
}

// procsMentioning returns the pids other than except whose command line contains s.
func procsMentioning(s string, except int) []int {
	var out []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == except {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(b), s) && alive(pid) {
			out = append(out, pid)
		}
	}
	return out
}
