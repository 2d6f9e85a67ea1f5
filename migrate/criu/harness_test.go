package criu

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/batonhq/baton/nodeagent/cgroupv1"
	"github.com/batonhq/baton/nodeagent/runner"
	"github.com/batonhq/baton/wire"
)

// criuPath is the CRIU the tests use: $BATON_CRIU, or the one `make deps`
// installs.
var criuPath = func() string {
	if p := os.Getenv("BATON_CRIU"); p != "" {
		return p
	}
	return "/usr/local/sbin/criu"
}()

// needCRIU skips the test (or fails it under BATON_REQUIRE_PRIVILEGED=1)
// unless it runs as root with a working CRIU and cgroup v1 freezer.
func needCRIU(t testing.TB) *Client {
	t.Helper()
	miss := func(why string) {
		if os.Getenv("BATON_REQUIRE_PRIVILEGED") == "1" {
			t.Fatalf("BATON_REQUIRE_PRIVILEGED=1 but %s", why)
		}
		t.Skip(why)
	}
	if os.Geteuid() != 0 {
		miss("not root")
	}
	if _, err := os.Stat(criuPath); err != nil {
		miss(fmt.Sprintf("no CRIU at %s (run make deps): %v", criuPath, err))
	}
	for _, c := range []string{"memory", "cpu", "pids", "freezer"} {
		if _, err := os.Stat(filepath.Join(CgroupV1Root, c, "cgroup.procs")); err != nil {
			miss(fmt.Sprintf("cgroup v1 %s hierarchy not mounted", c))
		}
	}
	c := New(criuPath)
	if _, err := c.Version(context.Background()); err != nil {
		miss(err.Error())
	}
	return c
}

// node is one simulated node on this machine: a runner with its own data
// dir and cgroup parent baton/<name>.
type node struct {
	name string
	dir  string
	r    *runner.Runner
}

func newNode(t testing.TB, name string) *node {
	t.Helper()
	n := &node{name: name, dir: filepath.Join(t.TempDir(), name)}
	r, err := runner.New(runner.Config{DataDir: n.dir, Node: name, StopGrace: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	n.r = r
	t.Cleanup(func() {
		r.Close()
		killNodeCgroups(t, name)
	})
	return n
}

// killNodeCgroups kills every process below baton/<node> in every hierarchy
// the tests use and removes the groups.
func killNodeCgroups(t testing.TB, node string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, ctrl := range []string{"freezer", "memory", "cpu", "pids"} {
		base := filepath.Join(CgroupV1Root, ctrl, "baton", node)
		var dirs []string
		filepath.WalkDir(base, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			if ctrl == "freezer" {
				if err := (&Freezer{Dir: dirs[i]}).Kill(ctx); err != nil {
					t.Errorf("cleanup: %v", err)
				}
				continue
			}
			for {
				pids, _ := Procs(dirs[i])
				for _, p := range pids {
					unix.Kill(p, unix.SIGKILL)
				}
				if err := unix.Rmdir(dirs[i]); err == nil || err == unix.ENOENT {
					break
				}
				if ctx.Err() != nil {
					t.Errorf("cleanup: cannot remove %s (pids %v)", dirs[i], pids)
					break
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
	}
}

// counterScript keeps its counter in the shell's memory, prints it to the
// log and appends it to ./count every 100 ms.
const counterScript = `i=0; while :; do i=$((i+1)); echo "tick $i"; echo $i >> count; sleep 0.1; done`

// startCounter starts the counter workload id on n with workdir wd.
func startCounter(t testing.TB, n *node, id, wd string) int {
	t.Helper()
	if err := os.MkdirAll(wd, 0o755); err != nil {
		t.Fatal(err)
	}
	st, err := n.r.Start(context.Background(), wire.WorkloadSpec{ID: id, Command: []string{"sh", "-c", counterScript}, Workdir: wd})
	if err != nil {
		t.Fatal(err)
	}
	return st.HostPID
}

// startMem starts a workload that touches mib MiB and then counts like the
// counter.
func startMem(t testing.TB, n *node, id, wd string, mib int) int {
	t.Helper()
	if err := os.MkdirAll(wd, 0o755); err != nil {
		t.Fatal(err)
	}
	py := fmt.Sprintf(`
import time
b = bytearray(%d << 20)
for j in range(0, len(b), 4096):
    b[j] = 1
open("ready", "w").close()
i = 0
while True:
    i += 1
    with open("count", "a") as f:
        f.write("%%d\n" %% i)
    time.sleep(0.1)
`, mib)
	st, err := n.r.Start(context.Background(), wire.WorkloadSpec{ID: id, Command: []string{"/usr/bin/python3", "-c", py}, Workdir: wd})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "the workload to touch its memory", func() bool {
		_, err := os.Stat(filepath.Join(wd, "ready"))
		return err == nil
	})
	return st.HostPID
}

func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// counts reads the count file.
func counts(t testing.TB, wd string) []int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(wd, "count"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var out []int
	for _, l := range strings.Fields(string(b)) {
		v, err := strconv.Atoi(l)
		if err != nil {
			t.Fatalf("count file: %q", l)
		}
		out = append(out, v)
	}
	return out
}

func last(xs []int) int {
	if len(xs) == 0 {
		return 0
	}
	return xs[len(xs)-1]
}

// checkConsecutive fails unless xs is 1, 2, 3, ...: the counter never
// restarted and no second copy wrote.
func checkConsecutive(t testing.TB, xs []int) {
	t.Helper()
	for i, v := range xs {
		if v != i+1 {
			t.Fatalf("count file is not 1..n: at line %d got %d (around %v): the counter restarted or two copies ran", i+1, v, xs[max(0, i-3):min(len(xs), i+3)])
		}
	}
}

// nsPID returns the PID of host pid inside its innermost PID namespace.
func nsPID(t testing.TB, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "NSpid:"); ok {
			f := strings.Fields(v)
			n, _ := strconv.Atoi(f[len(f)-1])
			return n
		}
	}
	t.Fatal("no NSpid")
	return 0
}

// checkInCgroups checks that the restored pid runs in node's cgroups of
// workload id, in every hierarchy Baton uses.
func checkInCgroups(t testing.TB, pid int, node, id string) {
	t.Helper()
	for _, ctrl := range []string{"memory", "cpu", "pids", "freezer"} {
		want := "/baton/" + node + "/" + id
		if got := cgroupOf(t, pid, ctrl); got != want {
			t.Errorf("restored pid %d is in %s:%s, want %s", pid, ctrl, got, want)
		}
	}
}

// cgroupOf returns pid's path in hierarchy ctrl.
func cgroupOf(t testing.TB, pid int, ctrl string) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.SplitN(l, ":", 3)
		if len(f) == 3 && f[1] == ctrl {
			return f[2]
		}
	}
	return ""
}

// migration is the adapter's side of one stop-copy migration between two
// nodes on this machine, in the order the state machine asks for it.
type migration struct {
	c          *Client
	from, to   *node
	id         string
	srcPID     int
	srcImages  string
	dstImages  string
	logKey     string // the log's path as the source's process has it open
	freezer    *Freezer
	dump       DumpResult
	restore    RestoreResult
	frozenAt   time.Time
	frozen     time.Duration // freeze → restored
	imageBytes int64
	// restoreProc is the restore's criu process, started before the
	// freeze as the agents do (startRestoreProcess).
	restoreProc *RestoreProcess
}

// openTargetLog opens the workload's log on the target (creating its dir).
func (m *migration) openTargetLog() (*os.File, error) {
	p := m.to.r.LogPath(m.id)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return nil, err
	}
	return os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
}

// startRestoreProcess starts the restore's criu process in the target's
// cgroups with the target's log, before the freeze, as the agents do.
func (m *migration) startRestoreProcess(t testing.TB) {
	t.Helper()
	logf, err := m.openTargetLog()
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	if m.restoreProc, err = m.c.StartRestore(context.Background(), RestoreOpts{Cgroups: CgroupRoots(filepath.Join("baton", m.to.name, m.id)), Log: logf}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.restoreProc.Close)
}

// prepareTarget creates the target's cgroups (as its agent would, with the
// workload's limits) and images dir, and starts its page server.
func (m *migration) prepareTarget(t testing.TB) (stop func() error, port int) {
	t.Helper()
	cg, err := cgroupv1.New(cgroupv1.DefaultRoot, filepath.Join("baton", m.to.name, m.id))
	if err != nil {
		t.Fatal(err)
	}
	if err := cg.Create(); err != nil {
		t.Fatal(err)
	}
	m.dstImages = filepath.Join(m.to.dir, "migrate", m.id, "images")
	stop, port, err = m.c.PageServer(context.Background(), m.dstImages, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stop() })
	m.startRestoreProcess(t)
	return stop, port
}

// freezeAndDump freezes the source through its freezer group and dumps it,
// pages to the target's page server.
func (m *migration) freezeAndDump(ctx context.Context, port int) error {
	m.freezer = NewFreezer(filepath.Join("baton", m.from.name, m.id))
	if err := m.freezer.Create(); err != nil {
		return err
	}
	if err := m.freezer.AddGroup(filepath.Join(CgroupV1Root, "memory", "baton", m.from.name, m.id)); err != nil {
		return err
	}
	m.frozenAt = time.Now()
	if err := m.freezer.Freeze(ctx); err != nil {
		return err
	}
	m.srcImages = filepath.Join(m.from.dir, "migrate", m.id, "images")
	var err error
	m.dump, err = m.c.Dump(ctx, DumpOpts{
		PID: m.srcPID, ImagesDir: m.srcImages, PageServer: fmt.Sprintf("127.0.0.1:%d", port),
		LeaveRunning: true, FreezeCgroup: m.freezer.Dir, NetworkLockSkip: true,
	})
	return err
}

// transferAndRestore copies the non-page images and restores on the target
// with the target's own log file.
func (m *migration) transferAndRestore(ctx context.Context) error {
	n, err := CopyImages(m.srcImages, m.dstImages)
	m.imageBytes = n
	if err != nil {
		return err
	}
	logf, err := m.openTargetLog()
	if err != nil {
		return err
	}
	defer logf.Close()
	path := filepath.Join("baton", m.to.name, m.id)
	m.restore, err = m.c.Restore(ctx, RestoreOpts{
		ImagesDir: m.dstImages, Cgroups: CgroupRoots(path), Log: logf, LogKey: m.logKey,
		Detach: true, Process: m.restoreProc,
	})
	m.restoreProc = nil
	m.frozen = time.Since(m.frozenAt)
	return err
}
