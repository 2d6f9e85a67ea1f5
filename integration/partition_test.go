package integration

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"
)

type apiEvent struct {
	At     time.Time `json:"at"`
	Kind   string    `json:"kind"`
	Node   string    `json:"node"`
	Detail string    `json:"detail"`
}

func (c *cluster) eventsSince(since time.Time) []apiEvent {
	c.t.Helper()
	var v struct{ Events []apiEvent }
	c.mustDo("GET", "/v1/events?since="+url.QueryEscape(since.Format(time.RFC3339Nano)), nil, 200).decode(c.t, &v)
	return v.Events
}

// nodeStates returns every node's state from GET /v1/nodes.
func (c *cluster) nodeStates() (map[string]string, error) {
	r, err := c.get("/v1/nodes")
	if err != nil {
		return nil, err
	}
	var v struct{ Nodes []node }
	if err := json.Unmarshal(r.Body, &v); err != nil {
		return nil, fmt.Errorf("GET /v1/nodes: %w: %s", err, r.Body)
	}
	out := map[string]string{}
	for _, n := range v.Nodes {
		out[n.Name] = n.State
	}
	return out, nil
}

// TestAPartitionedNodeGoesDownAndRejoins runs three nodes, each in its own
// network namespace, and cuts one off twice — its link down, then its
// traffic dropped inside its namespace. Each time the server marks it
// suspect, probes it at its namespace's address, marks it down, and takes it
// back as running once the partition heals; the other nodes stay running
// and the node's workload (a plain workload: not failed over) runs on in its
// namespace.
func TestAPartitionedNodeGoesDownAndRejoins(t *testing.T) {
	c, lab := newNetCluster(t, 3, nil, nil)
	cutNode := c.node(1)
	host := lab.host(cutNode)

	req := treeWorkload("web", t.TempDir())
	req["constraints"] = map[string]any{"nodes": []string{cutNode}}
	var w workload
	c.mustDo("POST", "/v1/workloads", req, 201).decode(t, &w)
	if w.Node != cutNode || w.State != "running" {
		t.Fatalf("workload = %+v, want running on %s", w, cutNode)
	}
	want, err := host.netnsInode()
	if err != nil {
		t.Fatal(err)
	}
	if got := netnsOf(t, w.HostPID); got != want {
		t.Fatalf("the workload (pid %d) is in network namespace %d, not its node's %d (%s)", w.HostPID, got, want, host.ns)
	}

	for _, how := range []cutMode{cutLink, cutDrop} {
		since := time.Now()
		lab.cut(host, how)
		seen := map[string]bool{}
		c.eventually(30*time.Second, cutNode+" is down after "+string(how)+" cut", func() error {
			states, err := c.nodeStates()
			if err != nil {
				return err
			}
			for n, s := range states {
				if n != cutNode && s != "running" {
					t.Fatalf("%s went %s while only %s was cut off", n, s, cutNode)
				}
			}
			seen[states[cutNode]] = true
			if states[cutNode] != "down" {
				return fmt.Errorf("%s is %s", cutNode, states[cutNode])
			}
			return nil
		})
		down := time.Now()

		// The event log has the whole story in order: silence makes the
		// node suspect, then (the probe failing) down.
		var trail []string
		for _, e := range c.eventsSince(since) {
			if e.Kind == "node" && e.Node == cutNode || e.Kind == "probe" && e.Node == cutNode {
				trail = append(trail, e.Kind+": "+e.Detail)
			}
		}
		story := strings.Join(trail, "\n  ")
		suspect, downAt := firstLineWith(trail, "running→suspect"), firstLineWith(trail, "suspect→down")
		if suspect < 0 || downAt < 0 || suspect > downAt {
			t.Fatalf("%s cut: the events for %s do not show running→suspect then suspect→down:\n  %s", how, cutNode, story)
		}

		lab.heal(host)
		c.eventually(30*time.Second, cutNode+" runs again after the "+string(how)+" cut healed", func() error {
			states, err := c.nodeStates()
			if err != nil {
				return err
			}
			if states[cutNode] != "running" {
				return fmt.Errorf("%s is %s", cutNode, states[cutNode])
			}
			return nil
		})
		t.Logf("%s cut: down after %s (API showed %v), running %s after the heal; events:\n  %s",
			how, down.Sub(since).Round(time.Millisecond), seenStates(seen), time.Since(down).Round(time.Millisecond), story)
	}

	if got := c.workload(w.ID); got.Node != cutNode || got.State != "running" || got.HostPID != w.HostPID || !alive(w.HostPID) {
		t.Errorf("after the partitions the workload is %+v (pid %d alive: %v), want it running on as before", got, w.HostPID, alive(w.HostPID))
	}
}

func firstLineWith(lines []string, sub string) int {
	for i, l := range lines {
		if strings.Contains(l, sub) {
			return i
		}
	}
	return -1
}

func seenStates(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// netnsOf returns the inode of pid's network namespace.
func netnsOf(t *testing.T, pid int) uint64 {
	t.Helper()
	link, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid))
	if err != nil {
		t.Fatal(err)
	}
	var ino uint64
	if _, err := fmt.Sscanf(link, "net:[%d]", &ino); err != nil {
		t.Fatalf("reading %q: %v", link, err)
	}
	return ino
}
