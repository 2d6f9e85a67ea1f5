package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// memoryCounter holds mb MiB resident (every page written) and counts into
// the file count of its workdir every 50 ms, like counterWorkload: after a
// move the count must go on from where it was.
func memoryCounter(name, dir string, mb int) map[string]any {
	prog := fmt.Sprintf(`import time
b = bytearray(%d << 20)
for i in range(0, len(b), 4096):
    b[i] = 1
n = 0
while True:
    n += 1
    with open("count", "a") as f:
        f.write("%%d\n" %% n)
    time.sleep(0.05)
`, mb)
	return map[string]any{"name": name, "command": []string{"/usr/bin/python3", "-c", prog}, "workdir": dir}
}

type rebalanceEvent struct {
	Kind         string `json:"kind"`
	Node         string `json:"node"`
	WorkloadName string `json:"workload_name"`
	From         string `json:"from"`
	To           string `json:"to"`
	Migration    string `json:"migration"`
	Reason       string `json:"reason"`
}

func (c *cluster) rebalanceEvents() []rebalanceEvent {
	c.t.Helper()
	var v struct{ Events []rebalanceEvent }
	c.mustDo("GET", "/v1/rebalance/events", nil, 200).decode(c.t, &v)
	return v.Events
}

type rebalancePlan struct {
	Hot   []string `json:"hot"`
	Moves []struct {
		WorkloadName string `json:"workload_name"`
		Reason       string `json:"reason"`
	} `json:"moves"`
	Skipped []struct {
		WorkloadName string `json:"workload_name"`
		Reason       string `json:"reason"`
	} `json:"skipped"`
}

func (c *cluster) migrations() []migration {
	c.t.Helper()
	var v struct{ Migrations []migration }
	c.mustDo("GET", "/v1/migrations", nil, 200).decode(c.t, &v)
	return v.Migrations
}

// TestRebalanceMovesAWorkloadOffAHotNode: three real agents, each a 1 GiB
// slice of the machine (--memory-mb, so that one node can run hot while the
// machine has plenty); on the first, a 600 MiB hog and a 300 MiB counter push
// free memory near 10%, under the aggressive policy's 20%. While it is the
// only node nothing can move; once two empty nodes join, the rebalancer
// moves the counter (the cheaper of the two moves that relieve the node
// equally), live, and the cluster settles: the node cools, nothing moves back.
func TestRebalanceMovesAWorkloadOffAHotNode(t *testing.T) {
	requireCRIU(t)
	slice := []string{"--memory-mb", "1024"}
	c := newClusterWith(t, 1, []string{"--rebalance", "aggressive", "--rebalance-on", "memory"}, slice)
	hot := c.node(1)
	var hog, mover workload
	c.mustDo("POST", "/v1/workloads", memoryCounter("hog", t.TempDir(), 600), 201).decode(t, &hog)
	dir := t.TempDir()
	c.mustDo("POST", "/v1/workloads", memoryCounter("mover", dir, 300), 201).decode(t, &mover)
	t.Cleanup(func() {
		if t.Failed() {
			for _, w := range []workload{hog, mover} {
				b, _ := os.ReadFile(filepath.Join(c.dataDir, w.Node, "workloads", w.ID, "output.log"))
				t.Logf("output of %s:\n%s", w.Name, b)
			}
		}
	})
	if hog.Node != hot || mover.Node != hot {
		t.Fatalf("placed on %s and %s, want both on %s", hog.Node, mover.Node, hot)
	}
	c.eventually(time.Minute, "the counter holds its memory and counts", func() error {
		_, err := os.Stat(filepath.Join(dir, "count"))
		return err
	})
	c.waitCount(dir, 5)
	c.eventually(time.Minute, hot+" is hot and nothing can take its workloads", func() error {
		var p rebalancePlan
		c.mustDo("GET", "/v1/rebalance/plan", nil, 200).decode(t, &p)
		if !slices.Equal(p.Hot, []string{hot}) || len(p.Moves) != 0 || len(p.Skipped) == 0 {
			return fmt.Errorf("plan %+v", p)
		}
		return nil
	})
	before := len(readCounts(t, dir))

	for i := 2; i <= 3; i++ {
		c.startAgent(c.node(i))
	}
	c.waitNodesRunning(3)
	var moved migration
	c.eventually(2*time.Minute, "the rebalancer moves the counter and the move ends", func() error {
		ms := c.migrations()
		if len(ms) == 0 || ms[0].EndedAt == "" {
			return fmt.Errorf("migrations %+v", ms)
		}
		moved = ms[0]
		return nil
	})
	if moved.State != "done" || moved.Source != hot || moved.Target == hot {
		t.Fatalf("migration %+v, want done, off %s", moved, hot)
	}
	got := c.workload(mover.ID)
	if got.Node != moved.Target || got.State != "running" {
		t.Fatalf("the counter is %+v after the move to %s", got, moved.Target)
	}
	if h := c.workload(hog.ID); h.Node != hot {
		t.Errorf("the hog moved too: %+v", h)
	}
	c.waitCount(dir, before+10) // it counts on, from where it was

	// The cluster settles: the node cools, and then no plan has a move
	// while the nodes report for a while (heat needs reports in a row, so
	// a move back would show within a few).
	c.eventually(time.Minute, hot+" cools", func() error {
		for _, e := range c.rebalanceEvents() {
			if e.Kind == "node-cool" && e.Node == hot {
				return nil
			}
		}
		return fmt.Errorf("events %+v", c.rebalanceEvents())
	})
	for range 20 { // 20 × 250 ms: 20 heartbeats per node, 5 rebalancer runs
		var p rebalancePlan
		c.mustDo("GET", "/v1/rebalance/plan", nil, 200).decode(t, &p)
		if len(p.Moves) != 0 || len(p.Hot) != 0 {
			t.Fatalf("after the move the plan is %+v, want it settled", p)
		}
		time.Sleep(250 * time.Millisecond)
	}
	if ms := c.migrations(); len(ms) != 1 {
		t.Fatalf("%d migrations, want 1: %+v", len(ms), ms)
	}
	var kinds []string
	for _, e := range c.rebalanceEvents() {
		kinds = append(kinds, e.Kind+" "+e.Node+e.WorkloadName)
		if e.Kind == "move" {
			t.Logf("move event: %s → %s: %s (migration %s, frozen %.0f ms)", e.From, e.To, e.Reason, moved.ID, moved.FrozenMS)
		}
		if e.Kind == "move" && (e.Migration != moved.ID || !strings.Contains(e.Reason, hot+" is hot")) {
			t.Errorf("move event %+v does not name the migration or say why", e)
		}
	}
	for _, want := range []string{"node-hot " + hot, "move mover", "move-done mover", "node-cool " + hot} {
		if !slices.Contains(kinds, want) {
			t.Errorf("no %q event in %v", want, kinds)
		}
	}
	for _, w := range []workload{hog, mover} {
		c.mustDo("DELETE", "/v1/workloads/"+w.ID, nil, 200)
	}
}

// TestDrainMovesEveryWorkloadOffAlive drains a node running two counters
// with `baton node drain`: both move live, keep counting from where they
// were, the node ends empty, stays drained across a server restart, and
// takes workloads again once undrained.
func TestDrainMovesEveryWorkloadOffAlive(t *testing.T) {
	requireCRIU(t)
	c := newCluster(t, 1)
	drained := c.node(1)
	dirs := []string{t.TempDir(), t.TempDir()}
	var ws []workload
	for i, dir := range dirs {
		var w workload
		c.mustDo("POST", "/v1/workloads", counterWorkload(fmt.Sprintf("counter%d", i), dir), 201).decode(t, &w)
		ws = append(ws, w)
	}
	for i := 2; i <= 3; i++ {
		c.startAgent(c.node(i))
	}
	c.waitNodesRunning(3)
	var counts []int
	for _, dir := range dirs {
		c.waitCount(dir, 5)
		counts = append(counts, len(readCounts(t, dir)))
	}

	out, err := exec.Command(batonBin, "node", "drain", drained, "--api", c.api, "--wait", "2m").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "is drained") {
		t.Fatalf("baton node drain: %v\n%s", err, out)
	}
	t.Logf("baton node drain %s:\n%s", drained, out)
	for i, w := range ws {
		got := c.workload(w.ID)
		if got.Node == drained || got.State != "running" {
			t.Errorf("%s is %+v after the drain", w.Name, got)
		}
		c.waitCount(dirs[i], counts[i]+10) // counting on from where it was: moved live
	}
	if n := countWorkloadProcs(c, drained); n != 0 {
		t.Errorf("%d processes left in %s's workload cgroups", n, drained)
	}
	if ms := c.migrations(); len(ms) != 2 || ms[0].State != "done" || ms[1].State != "done" {
		t.Errorf("migrations %+v, want two, done", ms)
	}
	status, err := exec.Command(batonBin, "status", "--api", c.api).CombinedOutput()
	if err != nil || !strings.Contains(string(status), drained+"  running (drained)") {
		t.Errorf("baton status does not show %s drained: %v\n%s", drained, err, status)
	}

	// The drain is stored: a restarted server still keeps the node empty.
	c.server.stop(t, 30*time.Second)
	c.startServer()
	c.waitNodesRunning(3)
	c.eventually(30*time.Second, drained+" shows drained after the restart", func() error {
		var n struct{ Drain string }
		c.mustDo("GET", "/v1/nodes/"+drained, nil, 200).decode(t, &n)
		if n.Drain != "drained" {
			return fmt.Errorf("drain %q", n.Drain)
		}
		return nil
	})
	var pinned workload
	c.mustDo("POST", "/v1/workloads", map[string]any{"name": "pinned", "command": []string{"/bin/sleep", "1000"},
		"constraints": map[string]any{"nodes": []string{drained}}}, 422)
	out, err = exec.Command(batonBin, "node", "undrain", drained, "--api", c.api).CombinedOutput()
	if err != nil {
		t.Fatalf("baton node undrain: %v\n%s", err, out)
	}
	c.mustDo("POST", "/v1/workloads", map[string]any{"name": "pinned", "command": []string{"/bin/sleep", "1000"},
		"constraints": map[string]any{"nodes": []string{drained}}}, 201).decode(t, &pinned)
	if pinned.Node != drained {
		t.Errorf("after undrain the pinned workload went to %s", pinned.Node)
	}
	for _, w := range append(ws, pinned) {
		c.mustDo("DELETE", "/v1/workloads/"+w.ID, nil, 200)
	}
}
