package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMonitorRestartsInPlaceThenFailsOver runs a group whose resource's
// health check fails on its first node only (the check reads a file the
// test removes, on that node). The agent's monitor reports the failures;
// the group restarts the resource in place up to its restarts, then fails
// over to the next node, where the check passes and it stays.
func TestMonitorRestartsInPlaceThenFailsOver(t *testing.T) {
	c := newFailoverCluster(t, 2)
	n1, n2 := c.node(1), c.node(2)
	dir := t.TempDir()
	healthy := filepath.Join(dir, "healthy-"+n1)
	if err := os.WriteFile(healthy, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	c.mustDo("POST", "/v1/groups", map[string]any{
		"name": "svc", "nodes": []string{n1, n2},
		"resources": []map[string]any{{
			"name":    "app",
			"workdir": dir,
			"command": []string{"/bin/sh", "-c", `echo "$BATON_NODE" >> starts; exec sleep 1000`},
			// Healthy everywhere but on n1 once its file is gone.
			"monitor": map[string]any{"command": []string{"/bin/sh", "-c", fmt.Sprintf(`test "$BATON_NODE" != %s || test -e %s`, n1, healthy)},
				"interval": "300ms", "timeout": "1s", "restarts": 2},
		}},
	}, 201)
	c.waitGroup("svc", "running", func(n string) bool { return n == n1 }, 20*time.Second)
	starts := func() []string {
		b, _ := os.ReadFile(filepath.Join(dir, "starts"))
		return strings.Fields(string(b))
	}
	if got := starts(); len(got) != 1 || got[0] != n1 {
		t.Fatalf("starts = %v, want one on %s", got, n1)
	}

	if err := os.Remove(healthy); err != nil {
		t.Fatal(err)
	}
	g := c.waitGroup("svc", "running", func(n string) bool { return n == n2 }, 30*time.Second)
	// Two restarts in place on n1, then the failover: n1 ×3, then n2.
	want := []string{n1, n1, n1, n2}
	if got := starts(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("starts = %v, want %v (the first run, 2 restarts in place, then the failover)", got, want)
	}
	if g.Reason == "" {
		t.Errorf("group on %s without a reason", g.Node)
	}
	var failed int
	for _, e := range c.events() {
		if e.Kind == "monitor-failed" && e.Node == n1 {
			failed++
		}
	}
	if failed < 3 {
		t.Errorf("%d monitor failures on %s in the event log, want at least 3", failed, n1)
	}
	// n2's check passes: it stays there, with no more starts.
	time.Sleep(1500 * time.Millisecond) // five monitor intervals: a failing check would show
	if got := starts(); len(got) != len(want) {
		t.Errorf("starts went on after the failover: %v", got)
	}
	if g, err := c.groupNow("svc"); err != nil || g.Node != n2 || g.State != "running" {
		t.Errorf("group %+v (%v), want running on %s", g, err, n2)
	}
}
