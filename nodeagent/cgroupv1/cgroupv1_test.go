package cgroupv1_test

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/batonhq/baton/nodeagent/cgroupv1"
	"github.com/batonhq/baton/nodeagent/internal/testutil"
)

func TestMain(m *testing.M) { testutil.Main(m) }

func TestNewRejectsBadPaths(t *testing.T) {
	for _, p := range []string{"", "/abs", "..", "../x", "a/../../x", "a//b", "a/", "."} {
		if _, err := cgroupv1.New("", p); !errors.Is(err, cgroupv1.ErrInvalidPath) {
			t.Errorf("New(%q) = %v, want ErrInvalidPath", p, err)
		}
	}
	g, err := cgroupv1.New("/root", "baton/n/w")
	if err != nil || g.Dir("pids") != "/root/pids/baton/n/w" || g.Path() != "baton/n/w" {
		t.Errorf("New = %v, %v", g, err)
	}
}

func TestGroupLifecycle(t *testing.T) {
	testutil.RequirePrivileged(t)
	node := testutil.NodeName(t)
	testutil.CleanupNode(t, node)
	g, err := cgroupv1.New("", filepath.Join("baton", node, "w"))
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Create(); err != nil {
		t.Fatal(err)
	}
	read := func(c, f string) string {
		b, err := os.ReadFile(filepath.Join(g.Dir(c), f))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	if err := g.SetMemoryLimit(32 << 20); err != nil {
		t.Fatal(err)
	}
	if got := read("memory", "memory.limit_in_bytes"); got != strconv.Itoa(32<<20) {
		t.Errorf("memory.limit_in_bytes = %s", got)
	}
	period, _ := strconv.Atoi(read("cpu", "cpu.cfs_period_us"))
	for millis, want := range map[int64]int{1500: period * 3 / 2, 1: 1000} {
		if err := g.SetCPUQuota(millis); err != nil {
			t.Fatal(err)
		}
		if got := read("cpu", "cpu.cfs_quota_us"); got != strconv.Itoa(want) {
			t.Errorf("quota for %d millis = %s, want %d", millis, got, want)
		}
	}
	if err := g.SetMemoryLimit(0); err == nil {
		t.Error("SetMemoryLimit(0) accepted")
	}

	cmd := exec.Command("sleep", "1000")
	cmd.Env = []string{"BATON_NODE=" + node} // seen by the leak check
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	if err := g.Add(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	if pids, err := g.Procs(); err != nil || !slices.Equal(pids, []int{cmd.Process.Pid}) {
		t.Errorf("Procs = %v, %v; want [%d]", pids, err, cmd.Process.Pid)
	}
	if in, err := g.Contains(cmd.Process.Pid); err != nil || !in {
		t.Errorf("Contains(child) = %v, %v", in, err)
	}
	if in, err := g.Contains(os.Getpid()); err != nil || in {
		t.Errorf("Contains(self) = %v, %v", in, err)
	}
	if err := g.Kill(t.Context()); err != nil {
		t.Fatal(err)
	}
	<-waited
	if err := g.Remove(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, c := range cgroupv1.Controllers {
		if _, err := os.Stat(g.Dir(c)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s group still exists: %v", c, err)
		}
	}
	if pids, err := g.Procs(); err != nil || len(pids) != 0 {
		t.Errorf("Procs of removed group = %v, %v", pids, err)
	}
	if err := g.Remove(t.Context()); err != nil {
		t.Errorf("second Remove = %v", err)
	}
}

func TestResidentBytes(t *testing.T) {
	testutil.RequirePrivileged(t)
	g, err := cgroupv1.New(cgroupv1.DefaultRoot, "baton/"+testutil.NodeName(t)+"/rss")
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Create(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Remove(context.Background()) })
	// The process joins the group before it touches 32 MiB (cgroup v1
	// charges pages to the group that first touched them).
	cmd := exec.Command("/usr/bin/python3", "-c",
		"import sys,time; sys.stdin.readline(); b=bytearray(32<<20); b[::4096]=b'x'*len(b[::4096]); print('ok',flush=True); time.sleep(60)")
	in, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	if err := g.Add(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(in, "go\n"); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(out, make([]byte, 2)); err != nil {
		t.Fatal(err)
	}
	rss, err := g.ResidentBytes()
	if err != nil || rss < 32<<20 || rss > 256<<20 {
		t.Fatalf("ResidentBytes = %d, %v; want about 32 MiB", rss, err)
	}
}
