package process_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/plugins/fence"
	"github.com/batonhq/baton/plugins/fence/drivers/process"
	"github.com/batonhq/baton/plugins/fence/fencetest"
)

// world is a test's fake cluster: node processes named with a random token
// so that the selectors can only ever match what this test started.
type world struct {
	token   string
	dir     string // pid files
	cgroups string // "" when cgroups cannot be used (not root)
}

func newWorld(t *testing.T, withCgroups bool) *world {
	t.Helper()
	w := &world{token: fencetest.Token(t, "baton-fencetest-"), dir: t.TempDir()}
	if withCgroups {
		w.cgroups = fencetest.PidsCgroup(t, w.token)
	}
	return w
}

func (w *world) params(nodes string) map[string]string {
	p := map[string]string{
		"host_list": nodes,
		"pidfile":   filepath.Join(w.dir, "{node}.pid"),
		"match":     "^" + regexp.QuoteMeta(w.token) + "-{node}-worker( |$)",
	}
	if w.cgroups != "" {
		p["cgroup"] = filepath.Join(w.cgroups, "{node}")
	}
	return p
}

// spawn starts `sleep 3600` showing argv0 as name, in its own process
// group, killed and reaped at cleanup, and returns its pid.
func spawn(t *testing.T, name string) int {
	t.Helper()
	return fencetest.Spawn(t, exec.Command("sleep", "3600"), name)
}

// startNode starts a node: an agent with a pid file, a worker found by its
// command line and, with cgroups, a workload in the node's cgroup.
func (w *world) startNode(t *testing.T, node string) []int {
	t.Helper()
	agent := spawn(t, w.token+"-"+node+"-agent")
	if err := os.WriteFile(filepath.Join(w.dir, node+".pid"), []byte(strconv.Itoa(agent)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	worker := spawn(t, w.token+"-"+node+"-worker")
	pids := []int{agent, worker}
	if w.cgroups != "" {
		cg := filepath.Join(w.cgroups, node)
		if err := os.MkdirAll(cg, 0o755); err != nil {
			t.Fatal(err)
		}
		wl := spawn(t, w.token+"-"+node+"-workload")
		if err := os.WriteFile(filepath.Join(cg, "cgroup.procs"), []byte(strconv.Itoa(wl)), 0o644); err != nil {
			t.Fatal(err)
		}
		pids = append(pids, wl)
	}
	return pids
}

func configured(t *testing.T, d fence.Driver, p map[string]string) fence.Driver {
	t.Helper()
	if err := d.Configure(context.Background(), p); err != nil {
		t.Fatalf("Configure(%v): %v", p, err)
	}
	return d
}

func TestConformance(t *testing.T) {
	for _, cg := range []bool{false, true} {
		t.Run(fmt.Sprintf("cgroups=%v", cg), func(t *testing.T) {
			w := newWorld(t, cg)
			p := w.params("node1,node2")
			fencetest.Run(t, func(t *testing.T) fence.Driver { return configured(t, process.New(), p) },
				fencetest.Options{
					Target:      "node1",
					Unsupported: []string{"on", "reboot"},
					PowerOn:     func(t *testing.T) { w.startNode(t, "node1") },
				})
		})
	}
}

// The process driver as a real plugin process.
func TestConformancePlugin(t *testing.T) {
	bin := fencetest.BuildDriver(t, "github.com/batonhq/baton/plugins/fence/drivers/process/cmd/baton-fence-process")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := fence.Open(ctx, fence.Config{Path: bin})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	w := newWorld(t, false)
	configured(t, p, w.params("node1"))
	fencetest.Run(t, func(t *testing.T) fence.Driver { return p }, fencetest.Options{
		Target: "node1", Unsupported: []string{"on", "reboot"},
		PowerOn: func(t *testing.T) { w.startNode(t, "node1") },
	})
}

func TestOffKillsOnlyTheNode(t *testing.T) {
	w := newWorld(t, os.Geteuid() == 0)
	d := configured(t, process.New(), w.params("node1,node10"))
	n1 := w.startNode(t, "node1")
	n10 := w.startNode(t, "node10") // a prefix of its name is node1's
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := d.Off(ctx, "node1"); err != nil {
		t.Fatal(err)
	}
	for _, pid := range n1 {
		if fencetest.Alive(pid) {
			t.Errorf("node1 process %d alive after Off", pid)
		}
	}
	for _, pid := range n10 {
		if !fencetest.Alive(pid) {
			t.Errorf("node10 process %d died when node1 was fenced", pid)
		}
	}
	if st, err := d.Status(ctx, "node10"); err != nil || st != fence.PowerOn {
		t.Errorf("Status(node10) = %v, %v; want on", st, err)
	}
}

// A pid file older than the process holding its pid is stale: that pid was
// reused, and the process must be left alone.
func TestStalePidFile(t *testing.T) {
	w := newWorld(t, false)
	p := w.params("node1")
	delete(p, "match")
	d := configured(t, process.New(), p)
	other := spawn(t, w.token+"-unrelated")
	pf := filepath.Join(w.dir, "node1.pid")
	if err := os.WriteFile(pf, []byte(strconv.Itoa(other)), 0o644); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(pf, old, old); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if st, err := d.Status(ctx, "node1"); err != nil || st != fence.PowerOff {
		t.Errorf("Status with a stale pid file = %v, %v; want off", st, err)
	}
	if err := d.Off(ctx, "node1"); err != nil {
		t.Fatal(err)
	}
	if !fencetest.Alive(other) {
		t.Error("Off killed the process that reused the stale pid")
	}
}

func TestNeverKillsItself(t *testing.T) {
	self, err := os.ReadFile("/proc/self/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	d := configured(t, process.New(), map[string]string{
		"host_list": "node1",
		"match":     "^" + regexp.QuoteMeta(process.CmdLine(self)) + "(?:{node})?$",
	})
	ctx := context.Background()
	if st, err := d.Status(ctx, "node1"); err != nil || st != fence.PowerOff {
		t.Errorf("Status matching only the test itself = %v, %v; want off", st, err)
	}
	if err := d.Off(ctx, "node1"); err != nil {
		t.Errorf("Off: %v", err)
	}
}

func TestConfigureErrors(t *testing.T) {
	tests := []struct {
		name string
		p    map[string]string
	}{
		{"NoNodes", map[string]string{"match": "x{node}"}},
		{"MatchWithoutNode", map[string]string{"host_list": "n1", "match": "sleep"}},
		{"CgroupWithoutNode", map[string]string{"host_list": "n1", "cgroup": "/sys/fs/cgroup/pids"}},
		{"SharedPidFile", map[string]string{"host_list": "n1,n2", "pidfile": "/run/agent.pid"}},
		{"NoSelector", map[string]string{"host_list": "n1"}},
		{"RelativePidFile", map[string]string{"host_list": "n1", "pidfile": "run/{node}.pid"}},
		{"CgroupOutsideSys", map[string]string{"host_list": "n1", "cgroup": "/tmp/{node}"}},
		{"BadRegexp", map[string]string{"host_list": "n1", "match": "({node}"}},
		{"SlashInNode", map[string]string{"host_list": "../n1", "match": "x{node}"}},
		{"BadTimeout", map[string]string{"host_list": "n1", "match": "x{node}", "kill_timeout": "0"}},
		{"Unknown", map[string]string{"host_list": "n1", "match": "x{node}", "signal": "TERM"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := process.New().Configure(context.Background(), tt.p); !errors.Is(err, fence.ErrInvalidConfig) {
				t.Errorf("Configure(%v) = %v, want ErrInvalidConfig", tt.p, err)
			}
		})
	}
}

func TestConfigureDelay(t *testing.T) {
	tests := []struct {
		delay string
		ok    bool
	}{
		{"", true}, {"0", true}, {"5", true}, {"50", true},
		{"-1", false}, {"51", false}, {"600", false}, {"1.5", false}, {"5s", false}, {"five", false}, {" 5", false},
	}
	for _, tt := range tests {
		t.Run(strconv.Quote(tt.delay), func(t *testing.T) {
			err := process.New().Configure(context.Background(), map[string]string{"host_list": "n1", "match": "x{node}", "delay": tt.delay})
			if tt.ok {
				if err != nil {
					t.Errorf("delay=%q: %v, want it accepted", tt.delay, err)
				}
				return
			}
			if !errors.Is(err, fence.ErrInvalidConfig) {
				t.Fatalf("delay=%q: %v, want ErrInvalidConfig", tt.delay, err)
			}
			if msg := err.Error(); !strings.Contains(msg, `delay="`+tt.delay+`"`) || !strings.Contains(msg, "whole seconds, 0 to 50") {
				t.Errorf("delay=%q: the error %q does not say which value is wrong and what to give", tt.delay, msg)
			}
		})
	}
}

// delayedNode returns a driver configured with delay (seconds) for node1,
// and node1's processes, started.
func delayedNode(t *testing.T, delay string) (fence.Driver, []int) {
	t.Helper()
	w := newWorld(t, os.Geteuid() == 0)
	p := w.params("node1")
	p["delay"] = delay
	return configured(t, process.New(), p), w.startNode(t, "node1")
}

// Off kills nothing before the delay has passed: a call that ends during it
// fails and leaves every process alive, while Status answers at once.
func TestOffKillsNothingDuringTheDelay(t *testing.T) {
	d, pids := delayedNode(t, "30")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := d.Off(ctx, "node1")
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "delay") {
		t.Fatalf("Off with a 30 s delay and a 300 ms deadline = %v, want the deadline exceeded during the delay", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("Off took %v to notice its deadline", took)
	}
	for _, pid := range pids {
		if !fencetest.Alive(pid) {
			t.Errorf("process %d was killed although the call ended during the delay", pid)
		}
	}
	if st, err := d.Status(context.Background(), "node1"); err != nil || st != fence.PowerOn {
		t.Errorf("Status during the delay = %v, %v; want on", st, err)
	}
}

// Off waits the delay, then kills the node.
func TestOffWaitsTheDelayThenKills(t *testing.T) {
	d, pids := delayedNode(t, "1")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	if err := d.Off(ctx, "node1"); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < time.Second {
		t.Errorf("Off returned after %v, before its 1 s delay", took)
	}
	for _, pid := range pids {
		if fencetest.Alive(pid) {
			t.Errorf("process %d alive after Off", pid)
		}
	}
}
