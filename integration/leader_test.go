package integration

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/batonhq/baton/wire"
)

// TestStandbyServerTakesOverWithoutDoubleStarts runs two servers on one NATS:
// one leads, the other follows (and refuses changes). Killing the leader with
// SIGKILL makes the standby lead with a higher epoch; the workload keeps
// running exactly once, and the agents refuse commands from the old epoch.
func TestStandbyServerTakesOverWithoutDoubleStarts(t *testing.T) {
	c := newCluster(t, 3)

	var h1 struct {
		Leader bool
		Epoch  uint64
	}
	c.mustDo("GET", "/v1/health", nil, 200).decode(t, &h1)

	standbyAddr := freeAddr(t)
	standby := startProc(t, "standby server", "server", "--api", standbyAddr, "--nats", c.natsURL,
		"--data-dir", filepath.Join(c.dataDir, "standby"), "--name", "standby", "--log-level", "debug")
	sc := &cluster{t: t, api: "http://" + standbyAddr}
	sc.eventually(20*time.Second, "the standby answers as a follower", func() error {
		r, err := sc.get("/v1/health")
		if err != nil {
			return err
		}
		var h struct{ Leader bool }
		if err := json.Unmarshal(r.Body, &h); err != nil || h.Leader {
			return errString("not a follower: " + string(r.Body))
		}
		return nil
	})

	var w workload
	c.mustDo("POST", "/v1/workloads", treeWorkload("ha", t.TempDir()), 201).decode(t, &w)
	// The follower refuses changes but shows the workload.
	r := sc.mustDoStatus("POST", "/v1/workloads", treeWorkload("nope", t.TempDir()))
	if r.Status != 503 || !strings.Contains(string(r.Body), "not_leader") {
		t.Errorf("follower answered a create with %d %s, want 503 not_leader", r.Status, r.Body)
	}
	sc.eventually(10*time.Second, "the follower lists the workload", func() error {
		if l := sc.workloads(); len(l) != 1 || l[0].ID != w.ID {
			return errString("not yet listed")
		}
		return nil
	})

	c.server.kill() // SIGKILL: no resignation, the lease must expire
	killed := time.Now()
	sc.waitLeader(20 * time.Second)
	t.Logf("standby leads %v after the leader was killed", time.Since(killed).Round(time.Millisecond))
	var h2 struct {
		Leader bool
		Epoch  uint64
	}
	sc.mustDo("GET", "/v1/health", nil, 200).decode(t, &h2)
	if h2.Epoch <= h1.Epoch {
		t.Errorf("new leader's epoch %d is not above the old one's %d", h2.Epoch, h1.Epoch)
	}

	// Heartbeats flow to the new leader; the workload runs once, unchanged.
	c.api = sc.api
	c.waitNodesRunning(3)
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		if got := c.workload(w.ID); got.HostPID != w.HostPID || got.Node != w.Node {
			t.Fatalf("workload changed under the new leader: %+v, was %+v", got, w)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if n := countWorkloadProcs(c, w.Node); n != 3 {
		t.Fatalf("%d processes in %s's workload cgroups, want 3 (one copy)", n, w.Node)
	}

	// A command stamped with the deposed leader's epoch is refused, once the
	// agent has obeyed the new leader. The new leader's delete makes it so.
	c.mustDo("DELETE", "/v1/workloads/"+w.ID, nil, 200)
	nc, err := nats.Connect(c.natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	stale := wire.Command{V: wire.Version, Epoch: h1.Epoch, Op: wire.OpStop, ID: "w-000000000000"}
	msg, err := nc.Request(wire.SubjectCommand(w.Node), wire.Encode(stale), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	reply, err := wire.DecodeCommandReply(msg.Data)
	if err != nil || !strings.Contains(reply.Error, "deposed leader") {
		t.Errorf("stale-epoch command answered %+v %v, want a refusal naming the deposed leader", reply, err)
	}
	standby.stop(t, 20*time.Second)
}

type errString string

func (e errString) Error() string { return string(e) }
