package testutil

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/batonhq/baton/nodeagent/cgroupv1"
)

// RequirePrivileged skips t unless it runs as root on a machine with the
// cgroup v1 controllers the runner needs. With BATON_REQUIRE_PRIVILEGED=1
// (as in CI) a missing privilege fails t instead.
func RequirePrivileged(t testing.TB) {
	t.Helper()
	why := ""
	if os.Geteuid() != 0 {
		why = "needs root (PID namespaces, cgroups)"
	} else if err := cgroupv1.Available(""); err != nil {
		why = err.Error()
	}
	if why == "" {
		return
	}
	if os.Getenv("BATON_REQUIRE_PRIVILEGED") == "1" {
		t.Fatalf("BATON_REQUIRE_PRIVILEGED=1 but this test %s", why)
	}
	t.Skip(why)
}

// NodeName returns a node name unique to this test run, so that concurrent
// test runs never share cgroups or processes.
func NodeName(t testing.TB) string {
	var b [4]byte
	rand.Read(b[:])
	return fmt.Sprintf("t%d-%s", os.Getpid(), hex.EncodeToString(b[:]))
}

// NodeProcs returns the PIDs of the processes whose initial environment has
// BATON_NODE=node: every workload process of that node and its descendants.
func NodeProcs(node string) []int {
	want := []byte("BATON_NODE=" + node)
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil {
			continue
		}
		for v := range bytes.SplitSeq(env, []byte{0}) {
			if bytes.Equal(v, want) {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}

// CleanupNode registers a cleanup that fails t if any process of node is
// still alive (a leak: tests stop what they start), kills those processes,
// and removes the node's cgroups below baton/<node>. Call it before starting
// anything, so that it runs after the test's other cleanups.
func CleanupNode(t testing.TB, node string) {
	t.Helper()
	t.Cleanup(func() {
		if pids := NodeProcs(node); len(pids) > 0 {
			t.Errorf("leaked workload processes of node %s: %v", node, pids)
			for _, pid := range pids {
				unix.Kill(pid, unix.SIGKILL)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		parent := filepath.Join("baton", node)
		ents, _ := os.ReadDir(filepath.Join(cgroupv1.DefaultRoot, "pids", parent))
		for _, e := range ents {
			if !e.IsDir() {
				continue
			}
			g, err := cgroupv1.New("", filepath.Join(parent, e.Name()))
			if err != nil {
				continue
			}
			t.Errorf("leaked cgroup %s", g.Path())
			if err := g.Kill(ctx); err != nil {
				t.Errorf("cleanup: %v", err)
			}
			if err := g.Remove(ctx); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
		// Freezer groups (migrations) hold the same processes, killed above.
		fz, _ := os.ReadDir(filepath.Join(cgroupv1.DefaultRoot, cgroupv1.FreezerController, parent))
		for _, e := range fz {
			if e.IsDir() {
				dir := filepath.Join(cgroupv1.DefaultRoot, cgroupv1.FreezerController, parent, e.Name())
				t.Errorf("leaked freezer cgroup %s", dir)
				os.Remove(dir)
			}
		}
		for _, c := range append(cgroupv1.Controllers, cgroupv1.FreezerController) {
			os.Remove(filepath.Join(cgroupv1.DefaultRoot, c, parent))
		}
	})
}

// CheckGoroutines waits up to a few seconds for every goroutine running code
// of the node agent's packages to end, and describes those that do not. Call
// it from TestMain after m.Run.
func CheckGoroutines() error {
	const ours = "github.com/batonhq/baton/nodeagent"
	var leaked []string
	for deadline := time.Now().Add(5 * time.Second); ; {
		leaked = leaked[:0]
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		for g := range strings.SplitSeq(string(buf), "\n\n") {
			if strings.Contains(g, ours) && !strings.Contains(g, "testutil.CheckGoroutines") && !strings.Contains(g, ".TestMain(") {
				leaked = append(leaked, g)
			}
		}
		if len(leaked) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("leaked goroutines:\n\n%s", strings.Join(leaked, "\n\n"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Main runs the tests of a node agent package and then the goroutine leak
// check; use it as TestMain.
func Main(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if err := CheckGoroutines(); err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			code = 1
		}
	}
	os.Exit(code)
}

// WaitFor polls cond every 10ms until it returns true or timeout passes, and
// fails t with what on timeout.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(timeout); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
