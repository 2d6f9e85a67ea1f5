package fenceagent_test

import (
	"context"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/batonhq/baton/plugins/fence"
	"github.com/batonhq/baton/plugins/fence/fencetest"
)

// Closing the plugin in the middle of a call leaves no agent behind: the
// agent dies with the plugin (Pdeathsig) or with the call's cancellation.
func TestCloseDuringCallKillsAgent(t *testing.T) {
	t.Parallel()
	fencetest.NeedTool(t, "fence_dummy")
	bin := fencetest.BuildDriver(t, "github.com/batonhq/baton/plugins/fence/drivers/fenceagent/cmd/baton-fence-agent")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p, err := fence.Open(ctx, fence.Config{Path: bin})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	// random_sleep_range=60: fence_dummy sleeps 1 to 60 s before acting.
	configured(t, p, map[string]string{"agent": "fence_dummy", "status_file": fencetest.DummyStatusFile(t, "on"), "host_list": "node1", "random_sleep_range": "60"})

	errc := make(chan error, 1)
	go func() { errc <- p.Off(ctx, "node1") }()
	var agent int
	deadline := time.Now().Add(20 * time.Second)
	for agent == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the plugin never started fence_dummy")
		}
		select {
		case err := <-errc:
			t.Skipf("Off finished before Close (fence_dummy slept briefly): %v", err)
		case <-time.After(10 * time.Millisecond):
		}
		agent = childOf(p.Pid(), "fence_dummy")
	}
	p.Close()
	if err := <-errc; err == nil {
		t.Error("Off returned nil though the plugin was closed mid-call")
	}
	deadline = time.Now().Add(10 * time.Second)
	for syscall.Kill(agent, 0) == nil && !zombie(agent) {
		if time.Now().After(deadline) {
			t.Fatalf("fence_dummy (pid %d) still running 10 s after the plugin was closed", agent)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// childOf returns a child of ppid whose command line contains name, or 0.
func childOf(ppid int, name string) int {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(stat)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) < 2 || f[1] != strconv.Itoa(ppid) {
			continue
		}
		if cmd, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline"); strings.Contains(string(cmd), name) {
			return pid
		}
	}
	return 0
}

func zombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(f) > 0 && f[0] == "Z"
}
