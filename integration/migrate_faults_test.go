package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// agentRecord reads a migration's record on an agent (nodeagent/migration
// persists it), or zero values while there is none.
func (c *cluster) agentRecord(node, migration string) (phase, pageServer string) {
	b, err := os.ReadFile(filepath.Join(c.dataDir, node, "migrations", migration, "migration.json"))
	if err != nil {
		return "", ""
	}
	var r struct {
		Phase string `json:"phase"`
		Page  string `json:"page_server"`
	}
	_ = json.Unmarshal(b, &r)
	return r.Phase, r.Page
}

// waitMigrationEnd polls the API until migration id ends.
func (c *cluster) waitMigrationEnd(id string) migration {
	c.t.Helper()
	var m migration
	c.eventually(2*time.Minute, "migration "+id+" ends", func() error {
		c.mustDo("GET", "/v1/migrations/"+id, nil, 200).decode(c.t, &m)
		if m.EndedAt == "" {
			return fmt.Errorf("in %s", m.State)
		}
		return nil
	})
	return m
}

// startMemoryCounter starts a memoryCounter of mib MiB and waits until it
// counts.
func (c *cluster) startMemoryCounter(dir string, mib int) workload {
	c.t.Helper()
	var w workload
	c.mustDo("POST", "/v1/workloads", memoryCounter("memcounter", dir, mib), 201).decode(c.t, &w)
	c.eventually(time.Minute, "the workload touched its memory and counts", func() error {
		_, err := os.Stat(filepath.Join(dir, "count"))
		return err
	})
	c.waitCount(dir, 3)
	return w
}

// otherNode is a node of a two-node cluster that is not node.
func (c *cluster) otherNode(node string) string {
	if node == c.node(1) {
		return c.node(2)
	}
	return c.node(1)
}

// TestStopCopyPageServerConnectionCut cuts the TCP connection between the
// source's dump and the target's page server (ss -K) while a 256 MiB
// workload's pages stream: the dump fails, the source is thawed, the API
// says failed and why, and the workload runs once, on the source, counting
// on without a gap.
func TestStopCopyPageServerConnectionCut(t *testing.T) {
	requireCRIU(t)
	c := newCluster(t, 2)
	dir := t.TempDir()
	w := c.startMemoryCounter(dir, 256)
	target := c.otherNode(w.Node)
	var m migration
	c.mustDo("POST", "/v1/workloads/"+w.ID+"/migrate", map[string]any{"to": target, "mode": "stop-copy"}, 202).decode(t, &m)
	// The fault, as soon as the source dumps (watch closely: the dump
	// takes a few hundred ms).
	var port string
	deadline := time.Now().Add(time.Minute)
	for {
		phase, _ := c.agentRecord(w.Node, m.ID)
		_, ps := c.agentRecord(target, m.ID)
		if phase == "dumping" && ps != "" {
			port = ps[strings.LastIndexByte(ps, ':')+1:]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the source never dumped (its record says %q)", phase)
		}
		time.Sleep(time.Millisecond)
	}
	// The dump connects a moment after the freeze: cut until a connection
	// was there to cut.
	for {
		out, err := exec.Command("ss", "-K", "-t", "-n", "dport", "=", ":"+port, "or", "sport", "=", ":"+port).CombinedOutput()
		if err != nil {
			t.Fatalf("ss -K: %v: %s", err, out)
		}
		if strings.Contains(string(out), "ESTAB") {
			t.Logf("cut the connections on port %s:\n%s", port, out)
			break
		}
		if phase, _ := c.agentRecord(w.Node, m.ID); phase != "dumping" || time.Now().After(deadline) {
			t.Fatalf("no connection to cut while the source dumped (its record says %q)", phase)
		}
		time.Sleep(time.Millisecond)
	}
	m = c.waitMigrationEnd(m.ID)
	if m.State != "failed" || !strings.Contains(m.Reason, "dump") {
		t.Fatalf("migration ended %+v, want failed in the dump", m)
	}
	t.Logf("reason, as the API gives it: %s", firstLine(m.Reason))
	got := c.workload(w.ID)
	if got.Node != w.Node || got.HostPID != w.HostPID || got.State != "running" {
		t.Fatalf("after the rollback the workload is %+v, want it running where it was", got)
	}
	if n := countWorkloadProcs(c, target); n != 0 {
		t.Errorf("%d processes in the target's workload cgroups", n)
	}
	before := len(readCounts(t, dir))
	c.waitCount(dir, before+5) // strictly 1, 2, 3, ...: no copy ran on the target
	c.mustDo("DELETE", "/v1/workloads/"+w.ID, nil, 200)
}

// TestRestoreFailureRollsBack: the target's restore fails (fault injection:
// the agent's --inject-restore-failure fails the restore after CRIU really
// restored the copy, through the same path as a CRIU failure). The target
// kills what it restored, the source resumes; the API says failed and why,
// and the workload runs once, on the source.
func TestRestoreFailureRollsBack(t *testing.T) {
	requireCRIU(t)
	c := newClusterWith(t, 2, nil, []string{"--inject-restore-failure", "counter-rf"})
	dir := t.TempDir()
	w, target := c.startCounterOnTwo("counter-rf", dir)
	m := c.migrate(w.ID, target)
	if m.State != "failed" || !strings.Contains(m.Reason, "restore") || !strings.Contains(m.Reason, "fault injected") {
		t.Fatalf("migration ended %+v, want failed in the restore", m)
	}
	t.Logf("reason, as the API gives it: %s", firstLine(m.Reason))
	got := c.workload(w.ID)
	if got.Node != w.Node || got.HostPID != w.HostPID || got.State != "running" {
		t.Fatalf("after the rollback the workload is %+v, want it running where it was", got)
	}
	if n := countWorkloadProcs(c, target); n != 0 {
		t.Errorf("%d processes in the target's workload cgroups", n)
	}
	n := len(countLines(t, dir))
	c.eventually(20*time.Second, "the source counts on", func() error {
		if got := len(countLines(t, dir)); got < n+5 {
			return fmt.Errorf("%d lines", got)
		}
		return nil
	})
	// The restored copy ran for a moment before the failure killed it: it
	// may have written a line the source then writes again.
	checkResumedOnce(t, countLines(t, dir))
	c.mustDo("DELETE", "/v1/workloads/"+w.ID, nil, 200)
}

func firstLine(s string) string { l, _, _ := strings.Cut(s, "\n"); return l }

// TestServerKilledMidMigration: the server is killed (SIGKILL) while the
// source dumps; a new server process on the same JetStream finds the
// migration unfinished and rolls it back (the agents keep their state): the
// workload runs once, on the source, counting on without a gap, and the
// migration is listed as failed with the reason.
func TestServerKilledMidMigration(t *testing.T) {
	requireCRIU(t)
	c := newCluster(t, 2)
	dir := t.TempDir()
	w := c.startMemoryCounter(dir, 256)
	target := c.otherNode(w.Node)
	var m migration
	c.mustDo("POST", "/v1/workloads/"+w.ID+"/migrate", map[string]any{"to": target, "mode": "stop-copy"}, 202).decode(t, &m)
	deadline := time.Now().Add(time.Minute)
	for {
		if phase, _ := c.agentRecord(w.Node, m.ID); phase == "dumping" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the source never dumped")
		}
		time.Sleep(time.Millisecond)
	}
	c.server.kill()
	c.startServer()
	m = c.waitMigrationEnd(m.ID)
	if m.State != "failed" || !strings.Contains(m.Reason, "driver stopped") {
		t.Fatalf("after the server restart the migration ended %+v, want failed (rolled back)", m)
	}
	t.Logf("reason, as the API gives it: %s", firstLine(m.Reason))
	var list struct{ Migrations []migration }
	c.mustDo("GET", "/v1/migrations", nil, 200).decode(t, &list)
	if len(list.Migrations) != 1 || list.Migrations[0].ID != m.ID {
		t.Errorf("GET /v1/migrations after the restart: %+v, want %s", list.Migrations, m.ID)
	}
	c.eventually(30*time.Second, "the workload runs on its node again", func() error {
		if got := c.workload(w.ID); got.Node != w.Node || got.HostPID != w.HostPID || got.State != "running" {
			return fmt.Errorf("workload is %+v", got)
		}
		return nil
	})
	if n := countWorkloadProcs(c, target); n != 0 {
		t.Errorf("%d processes in the target's workload cgroups", n)
	}
	before := len(readCounts(t, dir))
	c.waitCount(dir, before+5)
	c.mustDo("DELETE", "/v1/workloads/"+w.ID, nil, 200)
}
