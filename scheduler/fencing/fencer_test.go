package fencing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/batonhq/baton/plugins/fence"
	"github.com/batonhq/baton/plugins/fence/drivers/ipmi/ipmisim"
	"github.com/batonhq/baton/plugins/fence/fencetest"
)

// newFencer is a Fencer over the real driver binaries, closed at cleanup.
func newFencer(t *testing.T, cfg Config) *Fencer {
	t.Helper()
	f, err := NewFencer(cfg, Options{DriverDirs: []string{driversBuilt(t)}, Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// testWriter sends log lines to t.Log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func timeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestFenceDummy(t *testing.T) {
	t.Parallel()
	fencetest.NeedTool(t, "fence_dummy")
	n1, n2 := fencetest.DummyStatusFile(t, "on"), fencetest.DummyStatusFile(t, "on")
	f := newFencer(t, Config{
		Devices: map[string]Device{
			// fence_dummy has no plugs: one status file is one machine.
			"dummy-n1": {Driver: "fence-agent", Params: map[string]string{"agent": "fence_dummy", "status_file": n1}, Targets: map[string]string{"n1": "plug1"}},
			"dummy-n2": {Driver: "fence-agent", Params: map[string]string{"agent": "fence_dummy", "status_file": n2}},
		},
		Levels: map[string][]string{"n1": {"dummy-n1"}, "n2": {"dummy-n2"}},
	})
	ctx := timeout(t, 60*time.Second)
	if err := f.Check(ctx); err != nil {
		t.Fatalf("Check: %v", err)
	}
	// Both at once, each through its own device.
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, node := range []string{"n1", "n2"} {
		wg.Go(func() { errs[i] = f.Fence(ctx, node, "dummy-"+node) })
	}
	wg.Wait()
	for i, file := range []string{n1, n2} {
		if errs[i] != nil {
			t.Errorf("Fence(n%d): %v", i+1, errs[i])
		}
		if b, _ := os.ReadFile(file); string(b) != "off" {
			t.Errorf("n%d's status file holds %q after the fence, want off", i+1, b)
		}
	}
	// Fencing a node that is off already succeeds.
	if err := f.Fence(ctx, "n1", "dummy-n1"); err != nil {
		t.Errorf("second Fence(n1): %v", err)
	}
	err := f.Fence(ctx, "n1", "ipmi-n1")
	if !errors.Is(err, ErrUnknownDevice) || !strings.Contains(err.Error(), "dummy-n1, dummy-n2") {
		t.Errorf("Fence with an unknown device = %v, want ErrUnknownDevice listing the devices", err)
	}
}

// A level that fails must fail promptly with the driver's sentinel, the
// device and the node in the error.
func TestFenceFails(t *testing.T) {
	t.Parallel()
	fencetest.NeedTool(t, "fence_dummy")
	f := newFencer(t, Config{
		Devices: map[string]Device{
			// type=fail never powers off; power_timeout=1 gives up after 1 s.
			"broken": {Driver: "fence-agent", Params: map[string]string{"agent": "fence_dummy", "type": "fail", "power_timeout": "1"}},
			// random_sleep_range=60: the agent first sleeps 1 to 60 s.
			"slow": {Driver: "fence-agent", Params: map[string]string{"agent": "fence_dummy", "status_file": fencetest.DummyStatusFile(t, "on"), "random_sleep_range": "60"}},
		},
		DefaultLevels: []string{"broken", "slow"},
	})
	t.Run("DeviceFails", func(t *testing.T) {
		t.Parallel()
		err := f.Fence(timeout(t, 30*time.Second), "n1", "broken")
		if !errors.Is(err, fence.ErrFailed) {
			t.Fatalf("Fence through a failing fence_dummy = %v, want fence.ErrFailed", err)
		}
		for _, want := range []string{`node "n1"`, `device "broken"`, "fence-agent", "Timed out waiting to power OFF"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not say %q", err, want)
			}
		}
	})
	t.Run("Deadline", func(t *testing.T) {
		t.Parallel()
		start := time.Now()
		err := f.Fence(timeout(t, 1500*time.Millisecond), "n1", "slow")
		if !errors.Is(err, fence.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Fence past its deadline = %v, want fence.ErrTimeout and context.DeadlineExceeded", err)
		}
		if !strings.Contains(err.Error(), `device "slow"`) {
			t.Errorf("error %q does not name the device", err)
		}
		t.Logf("returned %v after the start, deadline 1.5 s", time.Since(start).Round(time.Millisecond))
	})
}

func TestFenceIPMI(t *testing.T) {
	t.Parallel()
	sim := ipmisim.Start(t)
	bmc := map[string]string{"ip": sim.Host, "username": sim.User, "password": sim.Password, "cipher": "3"}
	withPort := func(port string) map[string]string {
		p := map[string]string{"ipport": port}
		for k, v := range bmc {
			p[k] = v
		}
		return p
	}
	f := newFencer(t, Config{
		Devices: map[string]Device{
			"ipmi-n1": {Driver: "ipmi", Params: withPort(strconv.Itoa(sim.Port))},
			// A loopback port where no BMC answers.
			"ipmi-n2": {Driver: "ipmi", Params: withPort("9")},
		},
		Levels: map[string][]string{"n1": {"ipmi-n1"}, "n2": {"ipmi-n2"}},
	})
	// host_list is not in the params: the Fencer names the node.
	if err := f.Fence(timeout(t, 60*time.Second), "n1", "ipmi-n1"); err != nil {
		t.Fatal(err)
	}
	if on, err := sim.Power(); err != nil || on {
		t.Errorf("BMC power after the fence: on=%v, %v; want off", on, err)
	}
	start := time.Now()
	err := f.Fence(timeout(t, 2*time.Second), "n2", "ipmi-n2")
	if !errors.Is(err, fence.ErrTimeout) && !errors.Is(err, fence.ErrFailed) {
		t.Fatalf("Fence without a BMC = %v, want fence.ErrTimeout or fence.ErrFailed", err)
	}
	if !strings.Contains(err.Error(), `node "n2" with device "ipmi-n2"`) {
		t.Errorf("error %q does not name the node and the device", err)
	}
	t.Logf("no BMC: %v after %v (deadline 2 s)", err, time.Since(start).Round(time.Millisecond))
}

// nodes stands up fake nodes made of local processes: each node's "agent"
// is a process whose command line names the node, and with cgroups its
// "workloads" are a process tree in the node's cgroup, as baton agent's are.
type nodes struct {
	token   string
	cgroups string // "" without cgroups
}

func newNodes(t *testing.T, withCgroups bool) *nodes {
	t.Helper()
	n := &nodes{token: fencetest.Token(t, "baton-fencing-test-")}
	if withCgroups {
		n.cgroups = fencetest.PidsCgroup(t, n.token)
	}
	return n
}

// device is the process driver's device for these nodes.
func (n *nodes) device() Device {
	p := map[string]string{"match": "^" + regexp.QuoteMeta(n.token) + "-{node}-agent( |$)"}
	if n.cgroups != "" {
		p["cgroup"] = filepath.Join(n.cgroups, "{node}")
	}
	return Device{Driver: "process", Params: p}
}

// start starts node's processes and returns their pids (the workload
// tree's children are found through the cgroup).
func (n *nodes) start(t *testing.T, node string) []int {
	t.Helper()
	pids := []int{fencetest.Spawn(t, exec.Command("sleep", "3600"), n.token+"-"+node+"-agent")}
	if n.cgroups != "" {
		cg := filepath.Join(n.cgroups, node)
		if err := os.Mkdir(cg, 0o755); err != nil {
			t.Fatal(err)
		}
		// The workload: a shell with two children, moved into the cgroup
		// before it forks them (it waits for its stdin to close first).
		cmd := exec.Command("sh", "-c", "read x; sleep 3600 & sleep 3600 & wait")
		w, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		sh := fencetest.Spawn(t, cmd, "")
		if err := os.WriteFile(filepath.Join(cg, "cgroup.procs"), []byte(strconv.Itoa(sh)), 0o644); err != nil {
			t.Fatal(err)
		}
		w.Close()
		deadline := time.Now().Add(10 * time.Second)
		for len(cgroupPids(t, cg)) < 3 {
			if time.Now().After(deadline) {
				t.Fatalf("the workload's children did not start in %s", cg)
			}
			time.Sleep(10 * time.Millisecond) // a condition with a deadline
		}
		pids = append(pids, cgroupPids(t, cg)...)
	}
	return pids
}

func cgroupPids(t *testing.T, cg string) []int {
	b, err := os.ReadFile(filepath.Join(cg, "cgroup.procs"))
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil && fencetest.Alive(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func TestFenceProcess(t *testing.T) {
	t.Parallel()
	for _, cg := range []bool{false, true} {
		t.Run(fmt.Sprintf("cgroups=%v", cg), func(t *testing.T) {
			t.Parallel()
			ns := newNodes(t, cg)
			// Every node falls to the default level: the Fencer learns the
			// nodes (host_list) as it fences them.
			f := newFencer(t, Config{Devices: map[string]Device{"procs": ns.device()}, DefaultLevels: []string{"procs"}})
			pids := map[string][]int{}
			for _, node := range []string{"n1", "n2", "n3", "n10"} {
				pids[node] = ns.start(t, node)
			}
			ctx := timeout(t, 60*time.Second)
			if err := f.Fence(ctx, "n1", "procs"); err != nil {
				t.Fatal(err)
			}
			// Two nodes at once through the same device.
			var wg sync.WaitGroup
			errs := map[string]error{}
			var mu sync.Mutex
			for _, node := range []string{"n2", "n3"} {
				wg.Go(func() {
					err := f.Fence(ctx, node, "procs")
					mu.Lock()
					errs[node] = err
					mu.Unlock()
				})
			}
			wg.Wait()
			for node, err := range errs {
				if err != nil {
					t.Errorf("Fence(%s): %v", node, err)
				}
			}
			for node, ps := range pids {
				for _, pid := range ps {
					if want := node != "n10"; fencetest.Alive(pid) == want {
						t.Errorf("%s's process %d: alive=%v after fencing n1, n2 and n3", node, pid, !want)
					}
				}
			}
		})
	}
}

// A plugin that died is started again, once per fence.
func TestPluginRestart(t *testing.T) {
	t.Parallel()
	ns := newNodes(t, false)
	f := newFencer(t, Config{Devices: map[string]Device{"procs": ns.device()}, Levels: map[string][]string{"n1": {"procs"}}})
	ctx := timeout(t, 60*time.Second)
	if err := f.Check(ctx); err != nil {
		t.Fatalf("Check: %v", err)
	}
	first := f.devices["procs"].plugin.Pid()
	if err := syscall.Kill(first, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); fencetest.Alive(first); {
		if time.Now().After(deadline) {
			t.Fatalf("plugin %d alive 10 s after SIGKILL", first)
		}
		time.Sleep(10 * time.Millisecond) // a condition with a deadline
	}
	agent := ns.start(t, "n1")[0]
	if err := f.Fence(ctx, "n1", "procs"); err != nil {
		t.Fatalf("Fence after the plugin died: %v", err)
	}
	if fencetest.Alive(agent) {
		t.Error("n1's agent alive after the fence")
	}
	second := f.devices["procs"].plugin.Pid()
	if second == first || !fencetest.Alive(second) {
		t.Errorf("plugin pid %d after the restart (was %d), want a new live one", second, first)
	}
	f.Close()
	if fencetest.Alive(second) {
		t.Errorf("plugin %d alive after Close", second)
	}
	if err := f.Fence(ctx, "n1", "procs"); !errors.Is(err, ErrClosed) {
		t.Errorf("Fence after Close = %v, want ErrClosed", err)
	}
}

func TestCheckReportsBadParams(t *testing.T) {
	t.Parallel()
	f := newFencer(t, Config{
		Devices: map[string]Device{
			"ipmi-n1": {Driver: "ipmi", Params: map[string]string{"ipport": "623"}},
			"procs":   {Driver: "process", Params: map[string]string{"match": "x{node}", "signal": "TERM"}},
			"fine":    {Driver: "process", Params: map[string]string{"match": "^never-{node}$"}},
		},
		Levels: map[string][]string{"n1": {"ipmi-n1", "procs", "fine"}},
	})
	ctx := timeout(t, 60*time.Second)
	err := f.Check(ctx)
	if !errors.Is(err, fence.ErrInvalidConfig) {
		t.Fatalf("Check = %v, want fence.ErrInvalidConfig", err)
	}
	for _, want := range []string{
		`fence device "ipmi-n1" (driver ipmi): fence: invalid configuration: params lack ip, username`,
		`fence device "procs" (driver process): check the device's params (the driver takes host_list, pidfile, cgroup, match, kill_timeout, delay)`,
		`unknown parameter "signal"`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Check error %q\ndoes not say %q", err, want)
		}
	}
	if strings.Contains(err.Error(), `"fine"`) {
		t.Errorf("Check blames the good device: %v", err)
	}
	if err := f.Fence(ctx, "n1", "ipmi-n1"); !errors.Is(err, fence.ErrInvalidConfig) || !strings.Contains(err.Error(), `node "n1" with device "ipmi-n1"`) {
		t.Errorf("Fence with a misconfigured device = %v, want fence.ErrInvalidConfig naming node and device", err)
	}
}

func TestDriverNotFound(t *testing.T) {
	t.Parallel()
	empty := t.TempDir()
	for _, tt := range []struct{ driver, want string }{
		{"acme", "no executable baton-fence-acme in " + empty + ", $PATH ("},
		{"fence-agent", "no executable baton-fence-agent in " + empty},
		{"/nonexistent/acme-fence", "driver /nonexistent/acme-fence"},
	} {
		_, err := NewFencer(Config{Devices: map[string]Device{"d": {Driver: tt.driver}}, DefaultLevels: []string{"d"}}, Options{DriverDirs: []string{empty}})
		if !errors.Is(err, ErrDriverNotFound) || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), `fence device "d"`) {
			t.Errorf("NewFencer with driver %q = %v; want ErrDriverNotFound saying %q", tt.driver, err, tt.want)
		}
	}
	if _, err := NewFencer(Config{}, Options{}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("NewFencer(empty config) = %v, want ErrInvalidConfig", err)
	}
}

// statusDriver is the in-memory device whose Status answers what the test
// says, whatever Off did.
type statusDriver struct {
	*fencetest.Memory
	state fence.PowerState
	err   error
}

func (d *statusDriver) Status(ctx context.Context, target string) (fence.PowerState, error) {
	if d.err != nil {
		return fence.PowerUnknown, d.err
	}
	return d.state, nil
}

// The status right after Off decides: off confirms, on or an error does not,
// and a driver without Status leaves Off's confirmation standing. The
// driver runs behind the real gRPC shims, in process.
func TestStatusAfterOff(t *testing.T) {
	t.Parallel()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		state fence.PowerState
		err   error
		want  error // nil: fenced
		says  string
	}{
		{"Off", fence.PowerOff, nil, nil, ""},
		{"StillOn", fence.PowerOn, nil, fence.ErrFailed, "the status right after says on; not counted as fenced"},
		{"StatusFails", 0, fmt.Errorf("bmc: %w: connection lost", fence.ErrFailed), fence.ErrFailed, "checking the status failed"},
		{"NoStatus", 0, fence.ErrUnsupported, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			drv := &statusDriver{Memory: fencetest.NewMemory(), state: tt.state, err: tt.err}
			f, err := NewFencer(Config{Devices: map[string]Device{"mem": {Driver: self}}, DefaultLevels: []string{"mem"}}, Options{})
			if err != nil {
				t.Fatal(err)
			}
			f.open = func(ctx context.Context, _ *device) (*fence.Plugin, error) { return fence.ServeInProcess(ctx, drv) }
			t.Cleanup(func() { f.Close() })
			// Memory takes targets, not host_list: the test names them.
			f.devices["mem"].params = map[string]string{"targets": "n1"}
			err = f.Fence(timeout(t, 10*time.Second), "n1", "mem")
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("Fence = %v, want %v", err, tt.want)
			}
			if err != nil && !strings.Contains(err.Error(), tt.says) {
				t.Errorf("Fence = %q, want it to say %q", err, tt.says)
			}
			if ev := drv.Events(); len(ev) != 1 || ev[0] != "off n1" {
				t.Errorf("device events %v, want [off n1]", ev)
			}
		})
	}
}

// make build puts the drivers next to bin/baton, where a server started
// from bin/baton finds them. make test sets BATON_BIN.
func TestDriversNextToBaton(t *testing.T) {
	bin := os.Getenv("BATON_BIN")
	if bin == "" {
		t.Skip("BATON_BIN is not set (make test sets it to bin/baton after make build)")
	}
	for _, driver := range []string{"fence-agent", "ipmi", "process"} {
		path, err := FindDriver(driver, []string{filepath.Dir(bin)})
		if err != nil {
			t.Errorf("%v (does make build still build the drivers?)", err)
		} else if filepath.Dir(path) != filepath.Dir(bin) {
			t.Errorf("driver %s found at %s, not next to %s", driver, path, bin)
		}
	}
}
