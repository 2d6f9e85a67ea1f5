package fencetest

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Main runs the package's tests, then fails the run if any child process
// of the test binary is still alive 5 s later (a plugin, fence agent,
// ipmitool or ipmi_sim that a test forgot to kill). Use it from TestMain:
//
//	func TestMain(m *testing.M) { fencetest.Main(m) }
func Main(m *testing.M) { os.Exit(RunMain(m)) }

// RunMain is Main without the exit: it returns the exit code, so that a
// TestMain can clean up after it.
func RunMain(m *testing.M) int {
	code := m.Run()
	deadline := time.Now().Add(5 * time.Second)
	left := children()
	for len(left) > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond) // a condition with a deadline
		left = children()
	}
	if len(left) > 0 {
		fmt.Fprintf(os.Stderr, "fencetest: leaked child processes: %s\n", strings.Join(left, "; "))
		if code == 0 {
			code = 1
		}
	}
	return code
}

// children lists the live (non-zombie) children of this process as
// "pid cmdline".
func children() []string {
	self := os.Getpid()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid, ok := liveParent(pid); !ok || ppid != self {
			continue
		}
		cmd, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		out = append(out, fmt.Sprintf("%d %s", pid, strings.ReplaceAll(strings.TrimRight(string(cmd), "\x00"), "\x00", " ")))
	}
	return out
}

// Alive reports whether process pid exists and is not a zombie.
func Alive(pid int) bool {
	_, ok := liveParent(pid)
	return ok
}

// liveParent returns the parent of process pid, and false if pid is gone
// or a zombie.
func liveParent(pid int) (int, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 || f[0] == "Z" || f[0] == "X" {
		return 0, false
	}
	ppid, _ := strconv.Atoi(f[1])
	return ppid, true
}
