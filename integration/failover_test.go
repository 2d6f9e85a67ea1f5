package integration

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// processFenceConfig fences every node of c with the process driver: it
// kills the node's agent (matched by its command line) and every process in
// the node's cgroups, as powering the node off would.
func (c *cluster) processFenceConfig(nodes int) string {
	c.t.Helper()
	var names []string
	for i := 1; i <= nodes; i++ {
		names = append(names, c.node(i))
	}
	return writeProcessFenceConfig(c.t, c.dataDir, map[string]string{"host_list": strings.Join(names, ",")})
}

// writeProcessFenceConfig writes dir/fence.json: every node is fenced by
// one process-driver device, "power", that kills the node's agent and its
// cgroups' processes, with the extra driver params (host_list, delay, ...).
// It returns the file's path.
func writeProcessFenceConfig(t testing.TB, dir string, extra map[string]string) string {
	t.Helper()
	params := map[string]string{
		"cgroup": "/sys/fs/cgroup/pids/baton/{node}",
		"match":  `baton agent .*--name {node}( |$)`,
	}
	maps.Copy(params, extra)
	cfg := map[string]any{
		"devices":        map[string]any{"power": map[string]any{"driver": "process", "params": params}},
		"default_levels": []string{"power"},
	}
	b, _ := json.Marshal(cfg)
	path := filepath.Join(dir, "fence.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// newFailoverCluster is a cluster whose server fences with the process driver.
func newFailoverCluster(t testing.TB, agents int, serverArgs ...string) *cluster {
	t.Helper()
	return newFailoverClusterWith(t, agents, nil, serverArgs...)
}

// newFailoverClusterWith also gives every agent extra flags.
func newFailoverClusterWith(t testing.TB, agents int, agentArgs []string, serverArgs ...string) *cluster {
	t.Helper()
	requirePrivileged(t)
	c := &cluster{t: t, natsURL: startNATS(t), dataDir: t.TempDir(), prefix: "it" + uniq(), agents: map[string]*proc{}, agentArgs: agentArgs}
	c.apiAddr = freeAddr(t)
	c.api = "http://" + c.apiAddr
	c.serverArgs = append([]string{"--fence-config", c.processFenceConfig(agents)}, serverArgs...)
	c.startServer()
	for i := 1; i <= agents; i++ {
		c.startAgent(c.node(i))
	}
	t.Cleanup(c.killWorkloads)
	c.waitNodesRunning(agents)
	return c
}

type group struct {
	Name      string `json:"name"`
	State     string `json:"state"`
	Node      string `json:"node"`
	Reason    string `json:"reason"`
	Resources []struct {
		Name  string `json:"name"`
		State string `json:"state"`
	} `json:"resources"`
}

type event struct {
	At       time.Time `json:"at"`
	Kind     string    `json:"kind"`
	Node     string    `json:"node"`
	Group    string    `json:"group"`
	Resource string    `json:"resource"`
	Detail   string    `json:"detail"`
}

func (c *cluster) waitGroup(name, state string, on func(string) bool, timeout time.Duration) group {
	c.t.Helper()
	var g group
	c.eventually(timeout, fmt.Sprintf("group %s is %s", name, state), func() error {
		var err error
		if g, err = c.groupNow(name); err != nil {
			return err
		}
		if g.State != state || !on(g.Node) {
			return fmt.Errorf("it is %s on %q (%s)", g.State, g.Node, g.Reason)
		}
		return nil
	})
	return g
}

// groupNow returns the group called name from GET /v1/groups/NAME.
func (c *cluster) groupNow(name string) (group, error) {
	var g group
	r, err := c.get("/v1/groups/" + name)
	if err != nil {
		return g, err
	}
	if err := json.Unmarshal(r.Body, &g); err != nil {
		return g, fmt.Errorf("GET /v1/groups/%s: %w: %s", name, err, r.Body)
	}
	return g, nil
}

func (c *cluster) events() []event {
	c.t.Helper()
	var v struct{ Events []event }
	c.mustDo("GET", "/v1/events", nil, 200).decode(c.t, &v)
	return v.Events
}

// witnessLog is the outside observer of the split-brain tests: the group's
// process appends "NODE NANOSECONDS" to one file every 20 ms, wherever it
// runs.
func witnessLogGroup(name, dir string, nodes []string) map[string]any {
	return map[string]any{
		"name": name, "nodes": nodes,
		"resources": []map[string]any{{
			"name":    "app",
			"command": []string{"/bin/sh", "-c", `while :; do echo "$BATON_NODE $(date +%s%N)" >> ` + filepath.Join(dir, "witness.log") + `; sleep 0.02; done`},
			"monitor": map[string]any{"command": []string{"/bin/true"}, "interval": "1s", "timeout": "500ms"},
		}},
	}
}

type logLine struct {
	node string
	at   int64
}

func readWitnessLog(t testing.TB, dir string) []logLine {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "witness.log"))
	if errors.Is(err, os.ErrNotExist) {
		return nil // a group just started may not have written yet
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []logLine
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(l)
		if len(f) != 2 {
			continue // a line cut by a kill
		}
		at, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			continue
		}
		out = append(out, logLine{f[0], at})
	}
	return out
}

// checkNeverTwice asserts that the log shows one node, then the other, never
// both at once: every line of first precedes every line of second.
func checkNeverTwice(t *testing.T, lines []logLine, first, second string) {
	t.Helper()
	var lastFirst, firstSecond int64
	for _, l := range lines {
		switch {
		case l.node == first && l.at > lastFirst:
			lastFirst = l.at
		case l.node == second && (firstSecond == 0 || l.at < firstSecond):
			firstSecond = l.at
		}
	}
	if lastFirst == 0 || firstSecond == 0 {
		t.Fatalf("the log lacks %s or %s lines: %d lines", first, second, len(lines))
	}
	if lastFirst >= firstSecond {
		t.Fatalf("the group ran on %s and %s at once: %s wrote at %d, %s had started at %d (%.0f ms overlap)",
			first, second, first, lastFirst, second, firstSecond, float64(lastFirst-firstSecond)/1e6)
	}
	t.Logf("%s last wrote %.0f ms before %s first did", first, float64(firstSecond-lastFirst)/1e6, second)
}

// killNode kills a node as a power loss would: its agent and every process
// in its cgroups.
func (c *cluster) killNode(name string) {
	c.agents[name].kill()
	dirs, _ := filepath.Glob("/sys/fs/cgroup/pids/baton/" + name + "/*/cgroup.procs")
	for _, f := range dirs {
		b, _ := os.ReadFile(f)
		for _, s := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(s); err == nil {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
}

func TestNodeKilledGroupRestartsElsewhereAfterFence(t *testing.T) {
	c := newFailoverCluster(t, 3)
	dir := t.TempDir()
	n1, n2, n3 := c.node(1), c.node(2), c.node(3)
	c.mustDo("POST", "/v1/groups", witnessLogGroup("db", dir, []string{n1, n2, n3}), 201)
	c.waitGroup("db", "running", func(n string) bool { return n == n1 }, 20*time.Second)
	c.eventually(10*time.Second, "the group writes its log", func() error {
		if len(readWitnessLog(t, dir)) < 5 {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	killed := time.Now()
	c.killNode(n1)
	g := c.waitGroup("db", "running", func(n string) bool { return n != n1 && n != "" }, 30*time.Second)
	t.Logf("running on %s %.0f ms after %s was killed", g.Node, time.Since(killed).Seconds()*1000, n1)
	checkFenceBeforeStart(t, c.events(), n1, g.Node)
	time.Sleep(300 * time.Millisecond)
	checkNeverTwice(t, readWitnessLog(t, dir), n1, g.Node)
}

// TestSplitBrainAgentDiesWorkloadLives is the classic split brain: the agent
// dies but its workload runs on. The fence must kill the workload before the
// group starts on another node; the workload's own log proves it never ran
// on two nodes at once.
func TestSplitBrainAgentDiesWorkloadLives(t *testing.T) {
	c := newFailoverCluster(t, 3)
	dir := t.TempDir()
	n1, n2, n3 := c.node(1), c.node(2), c.node(3)
	c.mustDo("POST", "/v1/groups", witnessLogGroup("db", dir, []string{n1, n2, n3}), 201)
	c.waitGroup("db", "running", func(n string) bool { return n == n1 }, 20*time.Second)
	c.agents[n1].kill() // the agent only: its workload goes on writing
	before := len(readWitnessLog(t, dir))
	time.Sleep(200 * time.Millisecond)
	if after := len(readWitnessLog(t, dir)); after <= before {
		t.Fatalf("the workload stopped with its agent (%d → %d lines); this test needs it alive", before, after)
	}
	g := c.waitGroup("db", "running", func(n string) bool { return n != n1 && n != "" }, 30*time.Second)
	checkFenceBeforeStart(t, c.events(), n1, g.Node)
	if n := countWorkloadProcs(c, n1); n != 0 {
		t.Errorf("%d processes still run in %s's cgroups after its fence", n, n1)
	}
	time.Sleep(300 * time.Millisecond)
	checkNeverTwice(t, readWitnessLog(t, dir), n1, g.Node)
}

// checkFenceBeforeStart asserts the event log shows dead fenced and
// confirmed off before the group's start on next.
func checkFenceBeforeStart(t *testing.T, evs []event, dead, next string) {
	t.Helper()
	fenced := slices.IndexFunc(evs, func(e event) bool {
		return e.Kind == "fence" && e.Node == dead && strings.Contains(e.Detail, "confirmed off")
	})
	started := slices.IndexFunc(evs, func(e event) bool { return e.Kind == "start" && e.Node == next })
	if fenced < 0 || started < 0 || started < fenced {
		t.Fatalf("want %s fenced (confirmed off) before the start on %s; events:\n%s", dead, next, listEvents(evs))
	}
}

// listEvents lists events one a line, for failure messages and logs.
func listEvents(evs []event) string {
	var b strings.Builder
	for _, e := range evs {
		what := e.Group
		if e.Resource != "" {
			what += "/" + e.Resource
		}
		fmt.Fprintf(&b, "  %s %-10s %-20s %-12s %s\n", e.At.Format("15:04:05.000"), e.Kind, e.Node, what, e.Detail)
	}
	return b.String()
}
