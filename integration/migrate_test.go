package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// counterWorkload keeps a counter in the shell's memory and appends it to a
// file in its workdir every 50 ms: after a migration the file must go on
// from where it was, never from 1.
func counterWorkload(name, dir string) map[string]any {
	return map[string]any{
		"name":    name,
		"command": []string{"/bin/sh", "-c", "i=0; while :; do i=$((i+1)); echo $i >> count; sleep 0.05; done"},
		"workdir": dir,
	}
}

// readCounts parses the count file and checks it is 1, 2, 3, ... with no
// restart and no gap.
func readCounts(t testing.TB, dir string) []int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "count"))
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for i, f := range strings.Fields(string(b)) {
		n, err := strconv.Atoi(f)
		if err != nil {
			t.Fatalf("line %d of the count file is %q", i+1, f)
		}
		if n != i+1 {
			t.Fatalf("the counter went %v then %d at line %d: it restarted or skipped (a second copy, or lost state)", out[max(0, len(out)-3):], n, i+1)
		}
		out = append(out, n)
	}
	return out
}

type migration struct {
	ID        string  `json:"id"`
	State     string  `json:"state"`
	Source    string  `json:"source"`
	Target    string  `json:"target"`
	Mode      string  `json:"mode"`
	Reason    string  `json:"reason"`
	FrozenMS  float64 `json:"frozen_ms"`
	TargetPID int     `json:"target_pid"`
	EndedAt   string  `json:"ended_at"`
}

func (c *cluster) migrate(id, to string) migration {
	c.t.Helper()
	return c.migrateWith(id, map[string]any{"to": to})
}

// startCounterOnTwo starts the counter in dir on a two-node cluster, waits
// until it counts, and returns it with the node it is not on.
func (c *cluster) startCounterOnTwo(name, dir string) (workload, string) {
	c.t.Helper()
	var w workload
	c.mustDo("POST", "/v1/workloads", counterWorkload(name, dir), 201).decode(c.t, &w)
	c.waitCount(dir, 5)
	other := c.node(1)
	if w.Node == other {
		other = c.node(2)
	}
	return w, other
}

func (c *cluster) waitCount(dir string, atLeast int) {
	c.t.Helper()
	c.eventually(20*time.Second, fmt.Sprintf("the counter reaches %d", atLeast), func() error {
		if _, err := os.Stat(filepath.Join(dir, "count")); err != nil {
			return err // a counter just started may not have written yet
		}
		if n := len(readCounts(c.t, dir)); n < atLeast {
			return fmt.Errorf("at %d", n)
		}
		return nil
	})
}

func TestLiveMigrationThereAndBack(t *testing.T) {
	requireCRIU(t)
	c := newCluster(t, 3)
	dir := t.TempDir()
	var w workload
	c.mustDo("POST", "/v1/workloads", counterWorkload("counter", dir), 201).decode(t, &w)
	c.waitCount(dir, 5)

	// To each of the two other nodes in turn, then home.
	var hops []string
	for i := 1; i <= 3; i++ {
		if c.node(i) != w.Node {
			hops = append(hops, c.node(i))
		}
	}
	hops = append(hops, w.Node)
	pid := w.HostPID
	for _, to := range hops {
		before := len(readCounts(t, dir))
		m := c.migrate(w.ID, to)
		if m.State != "done" || m.Target != to || m.TargetPID <= 0 {
			t.Fatalf("migration to %s ended %+v", to, m)
		}
		t.Logf("%s → %s: frozen %.0f ms (mode %s)", m.Source, m.Target, m.FrozenMS, m.Mode)
		got := c.workload(w.ID)
		if got.Node != to || got.HostPID != m.TargetPID || got.State != "running" {
			t.Fatalf("after migrating to %s the workload is %+v", to, got)
		}
		if alive(pid) {
			t.Errorf("the source copy (pid %d) still runs after the commit", pid)
		}
		c.checkImagesRemoved(m)
		pid = got.HostPID
		c.waitCount(dir, before+10) // it counts on, from where it was
		if n := countWorkloadProcs(c, to); n < 1 {
			t.Errorf("no process in %s's workload cgroups", to)
		}
	}
	c.mustDo("DELETE", "/v1/workloads/"+w.ID, nil, 200)
	if alive(pid) {
		t.Error("the migrated workload survived its deletion")
	}
}

func TestMigrationToADeadAgentRollsBack(t *testing.T) {
	requireCRIU(t)
	c := newCluster(t, 2)
	dir := t.TempDir()
	w, target := c.startCounterOnTwo("counter", dir)
	c.agents[target].kill() // still "running" to the server for a moment
	m := c.migrate(w.ID, target)
	if m.State != "failed" || m.Reason == "" {
		t.Fatalf("migration to a dead agent ended %+v, want failed with a reason", m)
	}
	got := c.workload(w.ID)
	if got.Node != w.Node || got.HostPID != w.HostPID || got.State != "running" {
		t.Fatalf("after the rollback the workload is %+v, want it running where it was", got)
	}
	before := len(readCounts(t, dir))
	c.waitCount(dir, before+5)
}

func TestMigrationWhoseSourceAgentDiesRollsBackWhenItReturns(t *testing.T) {
	requireCRIU(t)
	c := newCluster(t, 2)
	dir := t.TempDir()
	w, target := c.startCounterOnTwo("counter", dir)
	c.agents[w.Node].kill()
	var m migration
	c.mustDo("POST", "/v1/workloads/"+w.ID+"/migrate", map[string]any{"to": target}, 202).decode(t, &m)
	time.Sleep(time.Second) // the server retries its rollback meanwhile
	c.startAgent(w.Node)
	c.eventually(time.Minute, "the migration ends", func() error {
		c.mustDo("GET", "/v1/migrations/"+m.ID, nil, 200).decode(t, &m)
		if m.EndedAt == "" {
			return fmt.Errorf("in %s", m.State)
		}
		return nil
	})
	if m.State != "failed" {
		t.Fatalf("migration ended %+v, want failed", m)
	}
	got := c.workload(w.ID)
	if got.Node != w.Node || got.HostPID != w.HostPID {
		t.Fatalf("after the rollback the workload is %+v", got)
	}
	before := len(readCounts(t, dir))
	c.waitCount(dir, before+5)
	if n := countWorkloadProcs(c, target); n != 0 {
		t.Errorf("%d processes on the target after the rollback", n)
	}
}

// checkImagesRemoved checks that after a committed migration neither agent
// keeps its images (they live in the agents' data dirs until the commit).
func (c *cluster) checkImagesRemoved(m migration) {
	c.t.Helper()
	c.eventually(10*time.Second, "migration "+m.ID+"'s images are removed from both agents", func() error {
		for _, node := range []string{m.Source, m.Target} {
			if _, err := os.Stat(filepath.Join(c.dataDir, node, "migrations")); err != nil {
				c.t.Fatalf("%s has no migrations dir where its images would be: %v", node, err)
			}
			dir := filepath.Join(c.dataDir, node, "migrations", m.ID, "images")
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				return fmt.Errorf("%s still has %s (%v)", node, dir, err)
			}
		}
		return nil
	})
}

// requireCRIU fails (under BATON_REQUIRE_PRIVILEGED=1) or skips without a
// working CRIU 4.
func requireCRIU(t *testing.T) {
	t.Helper()
	requirePrivileged(t)
	for _, p := range []string{"/usr/local/sbin/criu", "/usr/sbin/criu"} {
		if _, err := os.Stat(p); err == nil {
			return
		}
	}
	if os.Getenv("BATON_REQUIRE_PRIVILEGED") == "1" {
		t.Fatal("CRIU is not installed: run make deps")
	}
	t.Skip("CRIU is not installed: run make deps")
}

// TestPreCopyIsRefusedWithoutDirtyTracking: the agents probe their real CRIU
// and kernel at start; where soft-dirty tracking is missing (as on Baton's
// test machines) a pre-copy request is refused with the reason and what to
// use instead, and the workload goes on where it was, untouched. With
// tracking present the same request must be accepted and succeed.
func TestPreCopyIsRefusedWithoutDirtyTracking(t *testing.T) {
	requireCRIU(t)
	c := newCluster(t, 2)
	var nodes struct {
		Nodes []struct {
			Name     string `json:"name"`
			Features *struct {
				CRIU          bool `json:"criu"`
				MemDirtyTrack bool `json:"mem_dirty_track"`
			} `json:"features"`
		} `json:"nodes"`
	}
	c.mustDo("GET", "/v1/nodes", nil, 200).decode(t, &nodes)
	tracking := len(nodes.Nodes) == 2
	for _, n := range nodes.Nodes {
		if n.Features == nil || !n.Features.CRIU {
			t.Fatalf("node %s reports no working CRIU in GET /v1/nodes: %+v", n.Name, n.Features)
		}
		tracking = tracking && n.Features.MemDirtyTrack
	}
	dir := t.TempDir()
	w, other := c.startCounterOnTwo("counter", dir)
	if tracking {
		if m := c.migrateWith(w.ID, map[string]any{"to": other, "mode": "pre-copy"}); m.State != "done" || m.Mode != "pre-copy" {
			t.Fatalf("with soft-dirty tracking on both nodes pre-copy ended %+v", m)
		}
		return
	}
	r := c.mustDoStatus("POST", "/v1/workloads/"+w.ID+"/migrate", map[string]any{"to": other, "mode": "pre-copy"})
	if r.Status != 422 || !strings.Contains(string(r.Body), "soft-dirty") || !strings.Contains(string(r.Body), "stop-copy") {
		t.Fatalf("pre-copy without dirty tracking answered %d %s, want 422 naming soft-dirty tracking and stop-copy", r.Status, r.Body)
	}
	if got := c.workload(w.ID); got.Node != w.Node || got.HostPID != w.HostPID || got.State != "running" {
		t.Fatalf("after the refusal the workload is %+v, want it running untouched", got)
	}
	before := len(readCounts(t, dir))
	c.waitCount(dir, before+5)
}
