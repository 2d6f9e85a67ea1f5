package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// A workload whose process tree has three members: the namespace init (sh)
// and two children.
func treeWorkload(name, dir string) map[string]any {
	return map[string]any{
		"name":      name,
		"command":   []string{"/bin/sh", "-c", "echo started > " + filepath.Join(dir, name+".started") + "; sleep 1000 & sleep 1000 & wait"},
		"workdir":   dir,
		"resources": map[string]any{"cpu_millis": 0, "memory_mb": 64},
	}
}

func TestClusterPlacesListsAndDeletesWorkloads(t *testing.T) {
	c := newCluster(t, 3)

	// Nodes show measured headroom.
	nodes := c.nodes()
	if len(nodes) != 3 {
		t.Fatalf("got %d nodes, want 3", len(nodes))
	}
	for _, n := range nodes {
		if n.Capacity.CPUs < 1 || n.Capacity.MemoryMB < 100 || n.Headroom.MemoryMB <= 0 || n.Headroom.MemoryMB > n.Capacity.MemoryMB || n.Headroom.DiskMB <= 0 {
			t.Errorf("node %s: implausible measurements: %+v", n.Name, n)
		}
	}
	var one node
	c.mustDo("GET", "/v1/nodes/"+c.node(2), nil, 200).decode(t, &one)
	if one.Name != c.node(2) || one.State != "running" {
		t.Errorf("GET /v1/nodes/%s = %+v", c.node(2), one)
	}
	c.mustDo("GET", "/v1/nodes/no-such-node", nil, 404)

	// A workload is placed, started, alive, and knows where it runs.
	dir := t.TempDir()
	var w workload
	c.mustDo("POST", "/v1/workloads", treeWorkload("web", dir), 201).decode(t, &w)
	if w.ID == "" || w.State != "running" || w.HostPID <= 0 || !strings.HasPrefix(w.Node, c.prefix) {
		t.Fatalf("created workload = %+v", w)
	}
	if !alive(w.HostPID) {
		t.Fatalf("host_pid %d is not alive", w.HostPID)
	}
	env := environ(w.HostPID)
	if env["BATON_NODE"] != w.Node || env["BATON_WORKLOAD"] != "web" {
		t.Errorf("workload env BATON_NODE=%q BATON_WORKLOAD=%q, want %q and web", env["BATON_NODE"], env["BATON_WORKLOAD"], w.Node)
	}
	c.eventually(10*time.Second, "the workload's tree has 3 processes", func() error {
		if n := len(descendants(w.HostPID)); n != 3 {
			return fmt.Errorf("%d processes", n)
		}
		return nil
	})
	tree := descendants(w.HostPID)

	// It is listed, and gettable.
	list := c.workloads()
	if len(list) != 1 || list[0].ID != w.ID {
		t.Fatalf("list = %+v", list)
	}
	if got := c.workload(w.ID); got.Node != w.Node || got.HostPID != w.HostPID {
		t.Errorf("GET = %+v, want %+v", got, w)
	}

	// A second workload with anti-affinity lands on another node.
	var w2 workload
	req := treeWorkload("web2", dir)
	req["constraints"] = map[string]any{"anti_affinity": []string{"web"}}
	c.mustDo("POST", "/v1/workloads", req, 201).decode(t, &w2)
	if w2.Node == w.Node {
		t.Errorf("anti-affinity ignored: both on %s", w.Node)
	}

	// Deleting kills the whole tree.
	c.mustDo("DELETE", "/v1/workloads/"+w.ID, nil, 200)
	for _, pid := range tree {
		if alive(pid) {
			t.Errorf("process %d of the deleted workload is still alive", pid)
		}
	}
	c.mustDo("GET", "/v1/workloads/"+w.ID, nil, 404)
	c.mustDo("DELETE", "/v1/workloads/"+w.ID, nil, 404)
	if list := c.workloads(); len(list) != 1 || list[0].ID != w2.ID {
		t.Fatalf("after delete, list = %+v", list)
	}
}

func TestWorkloadThatFitsNowhereIsRejected(t *testing.T) {
	c := newCluster(t, 3)
	req := map[string]any{"name": "huge", "command": []string{"/bin/sleep", "1000"},
		"resources": map[string]any{"memory_mb": 8 << 20}} // 8 TiB
	r := c.mustDo("POST", "/v1/workloads", req, 422)
	var e struct {
		Error struct{ Code, Message string }
	}
	r.decode(t, &e)
	if e.Error.Code != "no_fit" || !strings.Contains(e.Error.Message, "3 nodes lack memory") {
		t.Errorf("error = %+v, want no_fit naming the memory shortage on 3 nodes", e.Error)
	}
	if list := c.workloads(); len(list) != 0 {
		t.Errorf("a rejected workload was created: %+v", list)
	}

	// Bad input through the real server: 4xx, nothing created.
	for _, body := range []string{`{`, `{"name":"x","command":[]}`, `{"name":"x","command":["/bin/true"],"bogus":1}`,
		`{"name":"x","command":["/bin/true"],"resources":{"memory_mb":-1}}`} {
		if r := c.mustDoStatus("POST", "/v1/workloads", body); r.Status != 400 {
			t.Errorf("POST %s: status %d, want 400: %s", body, r.Status, r.Body)
		}
	}
	// A program that does not exist on the node: the agent refuses, nothing kept.
	r = c.mustDoStatus("POST", "/v1/workloads", `{"name":"missing","command":["/no/such/program"]}`)
	if r.Status != 502 || !strings.Contains(string(r.Body), "/no/such/program") {
		t.Errorf("missing program: status %d %s, want 502 naming the program", r.Status, r.Body)
	}
	if list := c.workloads(); len(list) != 0 {
		t.Errorf("a failed workload was kept: %+v", list)
	}
}

func (c *cluster) mustDoStatus(method, path string, body any) response {
	c.t.Helper()
	r, err := c.do(method, path, body)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	return r
}

func TestRestartedServerKeepsItsWorkloads(t *testing.T) {
	c := newCluster(t, 3)
	var w workload
	c.mustDo("POST", "/v1/workloads", treeWorkload("db", t.TempDir()), 201).decode(t, &w)

	c.server.kill() // kill -9: no chance to save anything at exit
	c.startServer()
	got := c.workload(w.ID)
	if got.Node != w.Node || got.Name != "db" {
		t.Fatalf("after restart: %+v, want %+v", got, w)
	}
	c.waitNodesRunning(3)
	c.eventually(10*time.Second, "the workload is still running with the same pid", func() error {
		got := c.workload(w.ID)
		if got.State != "running" || got.HostPID != w.HostPID {
			return fmt.Errorf("%+v", got)
		}
		return nil
	})
	if !alive(w.HostPID) {
		t.Fatal("workload died with the server")
	}
	// The restarted server can still stop it.
	c.mustDo("DELETE", "/v1/workloads/"+w.ID, nil, 200)
	if alive(w.HostPID) {
		t.Fatal("workload survived its deletion")
	}
}

func TestRestartedAgentReadoptsWithoutASecondCopy(t *testing.T) {
	c := newCluster(t, 3)
	dir := t.TempDir()
	var w workload
	c.mustDo("POST", "/v1/workloads", treeWorkload("cache", dir), 201).decode(t, &w)

	c.agents[w.Node].kill() // kill -9 the agent; the workload must live on
	if !alive(w.HostPID) {
		t.Fatal("workload died with its agent")
	}
	time.Sleep(1500 * time.Millisecond) // let the node go suspect: the server must not restart it elsewhere or twice
	c.startAgent(w.Node)
	c.waitNodesRunning(3)
	// Several heartbeats later there is still exactly one copy.
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		got := c.workload(w.ID)
		if got.HostPID != w.HostPID || got.Node != w.Node {
			t.Fatalf("workload changed after agent restart: %+v, was %+v", got, w)
		}
		time.Sleep(250 * time.Millisecond)
	}
	if n := countWorkloadProcs(c, w.Node); n != 3 {
		t.Fatalf("%d processes in the workload cgroups of %s, want 3 (one copy of the tree)", n, w.Node)
	}
	c.mustDo("DELETE", "/v1/workloads/"+w.ID, nil, 200)
	if alive(w.HostPID) {
		t.Fatal("re-adopted workload survived its deletion")
	}
}

func countWorkloadProcs(c *cluster, node string) int {
	files, _ := filepath.Glob("/sys/fs/cgroup/pids/baton/" + node + "/*/cgroup.procs")
	n := 0
	for _, f := range files {
		b, _ := os.ReadFile(f)
		n += len(strings.Fields(string(b)))
	}
	return n
}

func TestForeignMessagesDoNotCrashServerOrAgents(t *testing.T) {
	c := newCluster(t, 3)
	nc, err := nats.Connect(c.natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	junk := [][]byte{[]byte("not json"), []byte(`{"hello":"world"}`), []byte(`{"v":99,"node":"x"}`), {0xff, 0x00}, []byte(`{"v":1,"node":"a.b"}`)}
	for _, j := range junk {
		_ = nc.Publish("baton.v1.node."+c.node(1)+".heartbeat", j)
		_ = nc.Publish("baton.v1.node.intruder.leave", j)
		if _, err := nc.Request("baton.v1.node."+c.node(1)+".cmd", j, 2*time.Second); err != nil {
			t.Errorf("agent did not answer a malformed command %q: %v", j, err)
		}
	}
	_ = nc.Flush()
	time.Sleep(500 * time.Millisecond)
	c.mustDo("GET", "/v1/health", nil, 200)
	c.waitNodesRunning(3)
	for name, p := range c.agents {
		select {
		case <-p.done:
			t.Errorf("agent %s exited: %v", name, p.err)
		default:
		}
	}
}

func TestExitedWorkloadIsReportedWithItsExitCode(t *testing.T) {
	c := newCluster(t, 1)
	var w workload
	c.mustDo("POST", "/v1/workloads", map[string]any{"name": "short", "command": []string{"/bin/sh", "-c", "sleep 0.5; exit 3"}}, 201).decode(t, &w)
	c.eventually(15*time.Second, "the exit is reported", func() error {
		var got struct {
			State    string `json:"state"`
			ExitCode *int   `json:"exit_code"`
		}
		c.mustDo("GET", "/v1/workloads/"+w.ID, nil, 200).decode(t, &got)
		if got.State != "failed" || got.ExitCode == nil || *got.ExitCode != 3 {
			return fmt.Errorf("state %s exit %v", got.State, got.ExitCode)
		}
		return nil
	})
	// An exited workload is not restarted behind the user's back.
	time.Sleep(time.Second)
	if got := c.workload(w.ID); got.State != "failed" {
		t.Errorf("after exit: %+v", got)
	}
	c.mustDo("DELETE", "/v1/workloads/"+w.ID, nil, 200)
	if l := c.workloads(); len(l) != 0 {
		t.Errorf("deleted exited workload still listed: %+v", l)
	}
}
