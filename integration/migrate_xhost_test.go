package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// startAgentOnOwnDisk starts node name's agent as if on another machine that
// shares nothing with this one but the network: in a mount namespace of its
// own where dir is an empty tmpfs and /etc/machine-id differs (so its host
// id, which tells agents whether they share a filesystem, differs too).
func (c *cluster) startAgentOnOwnDisk(name, dir string) *proc {
	c.t.Helper()
	machineID := filepath.Join(c.dataDir, name+".machine-id")
	if err := os.WriteFile(machineID, []byte(strings.Repeat("ab", 16)+"\n"), 0o644); err != nil {
		c.t.Fatal(err)
	}
	agent := strings.Join([]string{batonBin, "agent", "--nats", c.natsURL, "--name", name,
		"--data-dir", filepath.Join(c.dataDir, name), "--interval", "250ms", "--log-level", "debug"}, " ")
	script := fmt.Sprintf("set -e; mount -t tmpfs baton-test %s; mount --bind %s /etc/machine-id; exec %s", dir, machineID, agent)
	p := startCommand(c.t, "agent "+name+" (own mounts)", exec.Command("unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", script))
	c.agents[name] = p
	return p
}

// mountNS is the mount namespace of pid.
func mountNS(t testing.TB, pid int) string {
	t.Helper()
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", pid))
	if err != nil {
		t.Fatal(err)
	}
	return ns
}

// TestMigrationToAnotherMachineCarriesWorkdirAndLog moves the counter to a
// node that does not share this machine's files (its own mount namespace:
// the workload's workdir is an empty tmpfs there, and another machine id),
// and back. The workdir's files and the workload's log must arrive before
// the restore: the counter goes on appending to its count file there, from
// where it was, and its log holds what it wrote before the move.
func TestMigrationToAnotherMachineCarriesWorkdirAndLog(t *testing.T) {
	requireCRIU(t)
	c := newCluster(t, 1)
	home := c.node(1)
	dir := t.TempDir()
	req := counterWorkload("counter", dir)
	req["command"] = []string{"/bin/sh", "-c", "i=0; while :; do i=$((i+1)); echo $i >> count; echo tick $i; sleep 0.05; done"}
	var w workload
	c.mustDo("POST", "/v1/workloads", req, 201).decode(t, &w)
	c.waitCount(dir, 10)

	away := c.node(2)
	agent := c.startAgentOnOwnDisk(away, dir)
	c.waitNodesRunning(2)
	remote := fmt.Sprintf("/proc/%d/root%s", agent.cmd.Process.Pid, dir) // dir as the other machine sees it
	if _, err := os.Stat(filepath.Join(remote, "count")); !os.IsNotExist(err) {
		t.Fatalf("the other machine already sees the count file (%v): the test's mount namespace does not isolate it", err)
	}

	m := c.migrate(w.ID, away)
	if m.State != "done" || m.Target != away {
		t.Fatalf("migration to %s ended %+v", away, m)
	}
	t.Logf("%s → %s (own disk): frozen %.0f ms", m.Source, m.Target, m.FrozenMS)
	if got, want := mountNS(t, m.TargetPID), mountNS(t, agent.cmd.Process.Pid); got != want {
		t.Fatalf("the restored copy runs in mount namespace %s, not the other machine's %s", got, want)
	}
	left := len(readCounts(t, dir)) // the source stopped here
	c.waitCount(remote, left+10)    // and the copy there goes on from it
	if n := len(readCounts(t, dir)); n != left {
		t.Errorf("this machine's count file grew from %d to %d after the move: a copy still runs here", left, n)
	}
	logPath := filepath.Join(c.dataDir, away, "workloads", w.ID, "output.log")
	b, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatalf("the workload's log on %s: %v", away, err)
	}
	if !strings.HasPrefix(string(b), "tick 1\ntick 2\n") || !strings.Contains(string(b), fmt.Sprintf("tick %d\n", left+5)) {
		t.Errorf("the log on %s does not hold the lines written before and after the move:\n%.300s", away, b)
	}

	// Back home: the count file comes back with what was counted away.
	there := len(readCounts(t, remote))
	m = c.migrate(w.ID, home)
	if m.State != "done" || m.Target != home {
		t.Fatalf("migration back to %s ended %+v", home, m)
	}
	if got, want := mountNS(t, m.TargetPID), mountNS(t, os.Getpid()); got != want {
		t.Fatalf("back home the copy runs in mount namespace %s, not this machine's %s", got, want)
	}
	c.eventually(20*time.Second, "the counter goes on at home from what it counted away", func() error {
		if n := len(readCounts(t, dir)); n < there+10 {
			return fmt.Errorf("at %d (it had counted to at least %d away)", n, there)
		}
		return nil
	})
	c.mustDo("DELETE", "/v1/workloads/"+w.ID, nil, 200)
}
