package nodeagent_test

import (
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/batonhq/baton/nodeagent"
	"github.com/batonhq/baton/nodeagent/cgroupv1"
	"github.com/batonhq/baton/nodeagent/internal/testutil"
	"github.com/batonhq/baton/wire"
)

func TestAliveBeatsAndProbe(t *testing.T) {
	testutil.RequirePrivileged(t)
	node := testutil.NodeName(t)
	url := natsServer(t)
	nc := connect(t, url)
	hbs := heartbeats(t, nc, node)
	beats, err := nc.SubscribeSync(wire.SubjectAlive(node))
	if err != nil {
		t.Fatal(err)
	}
	// The full heartbeat ticks once an hour here: the beats must not wait
	// for it.
	runAgent(t, nodeagent.Config{NATSURL: url, Node: node, DataDir: t.TempDir(), Interval: time.Hour, AliveInterval: 20 * time.Millisecond})

	hb := nextHeartbeat(t, hbs)
	if hb.AliveIntervalMS != 20 {
		t.Errorf("heartbeat alive_interval_ms = %d, want 20", hb.AliveIntervalMS)
	}
	var last uint64
	for i := range 5 {
		m, err := beats.NextMsg(waitTimeout)
		if err != nil {
			t.Fatalf("liveness beat %d: %v", i, err)
		}
		a, err := wire.DecodeAlive(m.Data)
		if err != nil || a.Node != node || a.IntervalMS != 20 || a.Seq <= last {
			t.Fatalf("liveness beat %+v (%v): want node %s, interval 20, seq above %d", a, err, node, last)
		}
		last = a.Seq
	}

	host, _, err := net.SplitHostPort(hb.ProbeAddr)
	if err != nil || host != "127.0.0.1" {
		t.Fatalf("heartbeat probe_addr = %q, want 127.0.0.1:PORT (the default)", hb.ProbeAddr)
	}
	c, err := net.DialTimeout("tcp", hb.ProbeAddr, waitTimeout)
	if err != nil {
		t.Fatalf("probing %s: %v", hb.ProbeAddr, err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(waitTimeout))
	if got, err := io.ReadAll(c); err != nil || string(got) != wire.ProbeGreeting(node) {
		t.Errorf("probe answer %q, %v; want %q", got, err, wire.ProbeGreeting(node))
	}
}

// beaconer publishes a leader beacon every 50 ms, as the leading server
// does, until the test changes or silences it.
type beaconer struct {
	mu     sync.Mutex
	beacon *wire.Beacon // nil: silent
	// lastQuorate is when the last beacon with Quorate and the current
	// epoch was published: an agent cannot fence for silence before
	// lastQuorate + SelfFenceAfter.
	lastQuorate time.Time
}

const beaconEpoch = 5

func startBeacons(t *testing.T, nc *nats.Conn) *beaconer {
	b := &beaconer{}
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			b.mu.Lock()
			if b.beacon != nil {
				msg := *b.beacon
				msg.SentAt = time.Now()
				if err := nc.Publish(wire.SubjectBeacon, wire.Encode(msg)); err != nil {
					t.Errorf("publishing beacon: %v", err)
				}
				if msg.Quorate && msg.Epoch >= beaconEpoch {
					b.lastQuorate = time.Now()
				}
			}
			b.mu.Unlock()
			select {
			case <-tick.C:
			case <-done:
				return
			}
		}
	}()
	t.Cleanup(func() { close(done); <-stopped })
	return b
}

// set makes the beaconer send quorate beacons of epoch, or fall silent if
// epoch is 0.
func (b *beaconer) set(epoch uint64, quorate bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if epoch == 0 {
		b.beacon = nil
		return
	}
	b.beacon = &wire.Beacon{V: wire.Version, Leader: "s1", Epoch: epoch, Quorate: quorate, IntervalMS: 50}
}

func (b *beaconer) lastQuorateAt() time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.lastQuorate
}

// leaderStart and leaderStop are commands of the leader of beaconEpoch.
func leaderStart(spec wire.WorkloadSpec) []byte {
	return wire.Encode(wire.Command{V: wire.Version, Epoch: beaconEpoch, Op: wire.OpStart, Workload: &spec})
}

func leaderStop(id string) []byte {
	return wire.Encode(wire.Command{V: wire.Version, Epoch: beaconEpoch, Op: wire.OpStop, ID: id})
}

// cgroupProcs returns the processes in workload id's cgroup on node.
func cgroupProcs(t *testing.T, node, id string) []int {
	t.Helper()
	g, err := cgroupv1.New("", filepath.Join("baton", node, id))
	if err != nil {
		t.Fatal(err)
	}
	pids, err := g.Procs()
	if err != nil {
		t.Fatal(err)
	}
	return pids
}

func TestSelfFence(t *testing.T) {
	outer := t // the restarted agent must outlive its subtest
	testutil.RequirePrivileged(t)
	node := testutil.NodeName(t)
	testutil.CleanupNode(t, node)
	url := natsServer(t)
	nc := connect(t, url)
	hbs := heartbeats(t, nc, node)
	beacons := startBeacons(t, nc)
	beacons.set(beaconEpoch, true)
	const after = time.Second
	cfg := nodeagent.Config{
		NATSURL: url, Node: node, DataDir: t.TempDir(),
		Interval: 100 * time.Millisecond, AliveInterval: 50 * time.Millisecond,
		StopGrace: 200 * time.Millisecond, SelfFenceAfter: after,
	}
	run := runAgent(t, cfg)
	nextHeartbeat(t, hbs)

	// A group resource with a monitor that checks a file of its workdir,
	// and a plain workload.
	workdir := t.TempDir()
	healthy := filepath.Join(workdir, "healthy")
	if err := os.WriteFile(healthy, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	resource := func(id string) wire.WorkloadSpec {
		return wire.WorkloadSpec{ID: id, Command: []string{"sh", "-c", "trap '' TERM; sleep 1000 & wait"}, Workdir: workdir,
			Group: &wire.GroupRef{Group: "db", Resource: id},
			Monitor: &wire.MonitorSpec{Command: []string{"sh", "-c", `test -e healthy && test "$BATON_WORKLOAD_ID" = ` + id + ` || { echo "$BATON_WORKLOAD_ID" not healthy; exit 1; }`},
				IntervalMS: 50, TimeoutMS: 5000}}
	}
	startOK := func(spec wire.WorkloadSpec) wire.WorkloadStatus {
		t.Helper()
		r := request(t, nc, node, leaderStart(spec))
		if r.Error != "" || r.Status == nil || r.Status.State != wire.StateRunning {
			t.Fatalf("start %s: %+v (status %+v)", spec.ID, r, r.Status)
		}
		if (spec.Group == nil) != (r.Status.Group == nil) {
			t.Errorf("start %s: reply group %v, spec group %v", spec.ID, r.Status.Group, spec.Group)
		}
		return *r.Status
	}
	// fencedAway waits until id is reported failed with a self-fence error
	// that mentions why, and checks that its cgroup is empty.
	fencedAway := func(id, why string) wire.Heartbeat {
		t.Helper()
		hb := waitHeartbeat(t, hbs, id+" self-fenced", func(hb wire.Heartbeat) bool {
			w, ok := workload(hb, id)
			return ok && w.State == wire.StateFailed && hb.SelfFenced
		})
		w, _ := workload(hb, id)
		if !strings.HasPrefix(w.Error, "self-fenced: ") || !strings.Contains(w.Error, why) || w.Group == nil {
			t.Errorf("%s after the fence: %+v, want a group resource whose error starts with self-fenced and says %q", id, w, why)
		}
		if pids := cgroupProcs(t, node, id); len(pids) != 0 {
			t.Errorf("cgroup of the fenced %s still holds %v", id, pids)
		}
		return hb
	}
	notFenced := func() {
		t.Helper()
		waitHeartbeat(t, hbs, "the self-fence lifted", func(hb wire.Heartbeat) bool { return !hb.SelfFenced })
	}

	web := startOK(wire.WorkloadSpec{ID: "web", Command: []string{"sleep", "1000"}})
	startOK(resource("db-1"))
	hb := waitHeartbeat(t, hbs, "db-1 running", func(hb wire.Heartbeat) bool {
		w, ok := workload(hb, "db-1")
		return ok && w.State == wire.StateRunning
	})
	if w, _ := workload(hb, "db-1"); w.Group == nil || w.Group.Group != "db" || w.MonitorFailures != 0 || hb.SelfFenced {
		t.Errorf("heartbeat: db-1 %+v, self-fenced %v; want group db, no monitor failure, not fenced", w, hb.SelfFenced)
	}

	t.Run("a failing monitor is counted and reported", func(t *testing.T) {
		if err := os.Remove(healthy); err != nil {
			t.Fatal(err)
		}
		hb := waitHeartbeat(t, hbs, "a monitor failure of db-1", func(hb wire.Heartbeat) bool {
			w, _ := workload(hb, "db-1")
			return w.MonitorFailures > 0
		})
		if w, _ := workload(hb, "db-1"); w.MonitorError != "exit status 1: db-1 not healthy" || w.State != wire.StateRunning {
			t.Errorf("db-1 with a failing monitor: %+v; want it running with error %q", w, "exit status 1: db-1 not healthy")
		}
		if err := os.WriteFile(healthy, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("silence, and beacons of a deposed leader, fence group resources only", func(t *testing.T) {
		beacons.set(beaconEpoch-2, true) // quorate, but an older epoch than the agent obeys
		fencedAway("db-1", "no quorate beacon from a leader for")
		if earliest := beacons.lastQuorateAt().Add(after); time.Now().Before(earliest) {
			t.Errorf("fenced before SelfFenceAfter had passed since the last quorate beacon")
		}
		if !alive(web.HostPID) || len(cgroupProcs(t, node, "web")) == 0 {
			t.Errorf("the plain workload web did not survive the self-fence")
		}
		// A start from the leader ends the silence (the group engine starts
		// only while quorate), until the silence has lasted again.
		started := time.Now()
		startOK(resource("db-1b"))
		fencedAway("db-1b", "no quorate beacon from a leader for")
		if time.Since(started) < after {
			t.Errorf("db-1b fenced before SelfFenceAfter had passed since its start")
		}
	})

	t.Run("a quorate beacon lifts it", func(t *testing.T) {
		beacons.set(beaconEpoch, true)
		notFenced()
		startOK(resource("db-2"))
	})

	t.Run("a beacon without quorum fences at once and refuses group starts", func(t *testing.T) {
		beacons.set(beaconEpoch, false)
		fencedAway("db-2", "has no quorum")
		r := request(t, nc, node, leaderStart(resource("db-5")))
		if !strings.HasPrefix(r.Error, "self-fenced: ") || !strings.Contains(r.Error, "no quorum") || r.Status == nil || r.Status.State != wire.StateFailed {
			t.Errorf("start of a group resource while fenced: %+v (status %+v), want a self-fenced error", r, r.Status)
		}
		if len(cgroupProcs(t, node, "db-5")) != 0 {
			t.Error("the refused db-5 runs")
		}
		startOK(wire.WorkloadSpec{ID: "web-2", Command: []string{"sleep", "1000"}}) // plain: allowed
		if r := request(t, nc, node, leaderStop("web-2")); r.Error != "" {
			t.Fatal(r.Error)
		}
		beacons.set(beaconEpoch, true)
		notFenced()
	})

	t.Run("the self-fence command fences at once", func(t *testing.T) {
		startOK(resource("db-3"))
		beacons.set(0, false) // or the next beacon lifts it before we look
		r := request(t, nc, node, wire.Encode(wire.Command{V: wire.Version, Op: wire.OpSelfFence, Epoch: beaconEpoch}))
		if r.Error != "" {
			t.Fatalf("self-fence command: %s", r.Error)
		}
		// The reply comes once the resources are dead.
		if pids := cgroupProcs(t, node, "db-3"); len(pids) != 0 {
			t.Errorf("db-3's cgroup holds %v after the self-fence command was answered", pids)
		}
		fencedAway("db-3", "ordered it")
		if r := request(t, nc, node, leaderStart(resource("db-6"))); !strings.Contains(r.Error, "self-fenced: the leader (epoch 5) ordered it") {
			t.Errorf("start of a group resource after the self-fence command: %+v, want it refused", r)
		}
		stale := request(t, nc, node, wire.Encode(wire.Command{V: wire.Version, Op: wire.OpSelfFence, Epoch: beaconEpoch - 1}))
		if !strings.Contains(stale.Error, "deposed leader") {
			t.Errorf("self-fence command of a deposed leader: %+v, want it refused", stale)
		}
		beacons.set(beaconEpoch, true)
		notFenced()
	})

	t.Run("a restarted agent keeps its group resources for SelfFenceAfter", func(t *testing.T) {
		for _, id := range []string{"db-1", "db-1b", "db-2", "db-3"} {
			if r := request(t, nc, node, leaderStop(id)); r.Error != "" {
				t.Fatal(r.Error)
			}
		}
		db4 := startOK(resource("db-4"))
		if err := os.Remove(healthy); err != nil {
			t.Fatal(err)
		}
		hb := waitHeartbeat(t, hbs, "a monitor failure of db-4", func(hb wire.Heartbeat) bool {
			w, _ := workload(hb, "db-4")
			return w.MonitorFailures > 0
		})
		run.stop(t)
		beacons.set(0, false)
		w, _ := workload(hb, "db-4")
		before := w.MonitorFailures

		hbs2 := heartbeats(t, nc, node)
		restarted := time.Now()
		run = runAgent(outer, cfg)
		hb = nextHeartbeat(t, hbs2)
		if w, _ := workload(hb, "db-4"); w.State != wire.StateRunning || w.HostPID != db4.HostPID || w.Group == nil || w.MonitorFailures < before {
			t.Errorf("re-adopted db-4: %+v, want it running with pid %d, its group and at least the %d failures counted before", w, db4.HostPID, before)
		}
		// Its monitor resumes.
		waitHeartbeat(t, hbs2, "a new monitor failure of the re-adopted db-4", func(hb wire.Heartbeat) bool {
			w, _ := workload(hb, "db-4")
			return w.State == wire.StateRunning && w.MonitorFailures > before
		})
		hbs = hbs2
		fencedAway("db-4", "since the agent started")
		if time.Since(restarted) < after {
			t.Errorf("the restarted agent killed db-4 before SelfFenceAfter had passed since its start")
		}
		if !alive(web.HostPID) {
			t.Errorf("the plain workload web did not survive")
		}
	})

	for _, id := range []string{"db-4", "web"} {
		if r := request(t, nc, node, leaderStop(id)); r.Error != "" {
			t.Fatal(r.Error)
		}
	}
}
