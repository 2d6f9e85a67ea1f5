package nodeagent_test

import (
	"context"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/batonhq/baton/nodeagent"
	"github.com/batonhq/baton/nodeagent/internal/testutil"
	"github.com/batonhq/baton/wire"
)

func TestMain(m *testing.M) { testutil.Main(m) }

const waitTimeout = 15 * time.Second

// natsServer starts an embedded NATS server on a random loopback port.
func natsServer(t *testing.T) string {
	t.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(waitTimeout) {
		t.Fatal("nats server not ready")
	}
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	return s.ClientURL()
}

func connect(t *testing.T, url string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, nats.Name("baton-agent-test"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// agentRun is one running agent.
type agentRun struct {
	cancel context.CancelFunc
	done   chan error
}

func runAgent(t *testing.T, cfg nodeagent.Config) *agentRun {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), nil))
	}
	a, err := nodeagent.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	run := &agentRun{cancel: cancel, done: make(chan error, 1)}
	go func() { run.done <- a.Run(ctx) }()
	t.Cleanup(func() { run.stop(t) })
	return run
}

// stop cancels the agent and waits for Run to return nil.
func (r *agentRun) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	select {
	case err, ok := <-r.done:
		if ok && err != nil {
			t.Errorf("Run returned %v, want nil", err)
		}
		if ok {
			close(r.done)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Run did not return after cancel")
	}
}

// heartbeats subscribes to node's heartbeats.
func heartbeats(t *testing.T, nc *nats.Conn, node string) *nats.Subscription {
	t.Helper()
	sub, err := nc.SubscribeSync(wire.SubjectHeartbeat(node))
	if err != nil {
		t.Fatal(err)
	}
	return sub
}

func nextHeartbeat(t *testing.T, sub *nats.Subscription) wire.Heartbeat {
	t.Helper()
	m, err := sub.NextMsg(waitTimeout)
	if err != nil {
		t.Fatalf("no heartbeat: %v", err)
	}
	hb, err := wire.DecodeHeartbeat(m.Data)
	if err != nil {
		t.Fatalf("bad heartbeat: %v", err)
	}
	return hb
}

// waitHeartbeat returns the first heartbeat for which ok holds.
func waitHeartbeat(t *testing.T, sub *nats.Subscription, what string, ok func(wire.Heartbeat) bool) wire.Heartbeat {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for time.Now().Before(deadline) {
		if hb := nextHeartbeat(t, sub); ok(hb) {
			return hb
		}
	}
	t.Fatalf("no heartbeat with %s", what)
	return wire.Heartbeat{}
}

func request(t *testing.T, nc *nats.Conn, node string, data []byte) wire.CommandReply {
	t.Helper()
	m, err := nc.Request(wire.SubjectCommand(node), data, waitTimeout)
	if err != nil {
		t.Fatalf("command request: %v", err)
	}
	r, err := wire.DecodeCommandReply(m.Data)
	if err != nil {
		t.Fatalf("bad reply %q: %v", m.Data, err)
	}
	return r
}

func startCmd(spec wire.WorkloadSpec) []byte {
	return wire.Encode(wire.Command{V: wire.Version, Op: wire.OpStart, Workload: &spec})
}

func stopCmd(id string) []byte {
	return wire.Encode(wire.Command{V: wire.Version, Op: wire.OpStop, ID: id})
}

func workload(hb wire.Heartbeat, id string) (wire.WorkloadStatus, bool) {
	for _, w := range hb.Workloads {
		if w.ID == id {
			return w, true
		}
	}
	return wire.WorkloadStatus{}, false
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	return i > 0 && !strings.HasPrefix(string(b[i+1:]), " Z")
}

func TestAgentServesCommandsAndHeartbeats(t *testing.T) {
	testutil.RequirePrivileged(t)
	node := testutil.NodeName(t)
	testutil.CleanupNode(t, node)
	url := natsServer(t)
	nc := connect(t, url)
	hbs := heartbeats(t, nc, node)
	leaves, err := nc.SubscribeSync(wire.SubjectLeave(node))
	if err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{"zone": "a", "disk": "ssd"}
	run := runAgent(t, nodeagent.Config{
		NATSURL: url, Node: node, DataDir: t.TempDir(), Labels: labels,
		Interval: 50 * time.Millisecond, StopGrace: 200 * time.Millisecond,
	})

	hb := nextHeartbeat(t, hbs)
	if hb.Node != node || !maps.Equal(hb.Labels, labels) || hb.IntervalMS != 50 || hb.Workloads == nil {
		t.Errorf("heartbeat %+v: wrong node, labels, interval or null workloads", hb)
	}
	if hb.Capacity.CPUs <= 0 || hb.Capacity.CPUMillis <= 0 || hb.Capacity.MemoryMB <= 0 || hb.Capacity.DiskMB <= 0 {
		t.Errorf("capacity %+v not measured", hb.Capacity)
	}
	if hb.Headroom.MemoryMB <= 0 || hb.Headroom.DiskMB <= 0 {
		t.Errorf("headroom %+v not measured", hb.Headroom)
	}
	next := nextHeartbeat(t, hbs)
	if next.Seq <= hb.Seq || next.SentAt.Before(hb.SentAt) {
		t.Errorf("heartbeat seq/time went %d/%v -> %d/%v, want increasing", hb.Seq, hb.SentAt, next.Seq, next.SentAt)
	}

	spec := wire.WorkloadSpec{ID: "web-1", Name: "web", Command: []string{"sleep", "1000"}, Resources: wire.Resources{MemoryMB: 32}}
	reply := request(t, nc, node, startCmd(spec))
	if reply.Error != "" || reply.Status == nil || reply.Status.State != wire.StateRunning || reply.Status.HostPID <= 0 {
		t.Fatalf("start reply = %+v (status %+v)", reply, reply.Status)
	}
	pid := reply.Status.HostPID
	waitHeartbeat(t, hbs, "web-1 running", func(hb wire.Heartbeat) bool {
		w, ok := workload(hb, "web-1")
		return ok && w.State == wire.StateRunning && w.HostPID == pid
	})

	t.Run("bad input is answered and survived", func(t *testing.T) {
		for _, tc := range []struct {
			name    string
			data    []byte
			wantErr string
		}{
			{"garbage bytes", []byte("\x00\xff\xfegarbage{"), "malformed"},
			{"foreign JSON", []byte(`{"hello":"world"}`), "malformed"},
			{"other protocol version", []byte(`{"v":2,"op":"stop","id":"x"}`), "malformed"},
			{"start without workload", []byte(`{"v":1,"op":"start"}`), "malformed"},
			{"unknown op", []byte(`{"v":1,"op":"reboot"}`), "malformed"},
			{"command not found", startCmd(wire.WorkloadSpec{ID: "bad", Command: []string{"baton-no-such-command"}}), "not found"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := request(t, nc, node, tc.data)
				if !strings.Contains(r.Error, tc.wantErr) {
					t.Errorf("reply error = %q, want it to mention %q", r.Error, tc.wantErr)
				}
			})
		}
		// Without a reply subject nothing can be answered; the agent must
		// just log it.
		if err := nc.Publish(wire.SubjectCommand(node), []byte("junk")); err != nil {
			t.Fatal(err)
		}
		// Still answering: a second start of web-1 is idempotent.
		r := request(t, nc, node, startCmd(spec))
		if r.Error != "" || r.Status == nil || r.Status.HostPID != pid {
			t.Fatalf("agent no longer answers correctly after bad input: %+v", r)
		}
	})

	reply = request(t, nc, node, stopCmd("web-1"))
	if reply.Error != "" || reply.Status == nil || reply.Status.State != wire.StateStopped {
		t.Fatalf("stop reply = %+v (status %+v)", reply, reply.Status)
	}
	if alive(pid) {
		t.Errorf("pid %d alive after stop", pid)
	}
	waitHeartbeat(t, hbs, "no workloads", func(hb wire.Heartbeat) bool { return len(hb.Workloads) == 0 })

	run.stop(t)
	m, err := leaves.NextMsg(waitTimeout)
	if err != nil {
		t.Fatalf("no leave message: %v", err)
	}
	if l, err := wire.DecodeLeave(m.Data); err != nil || l.Node != node {
		t.Errorf("leave = %+v, %v", l, err)
	}
}

func TestAgentExit(t *testing.T) {
	for _, stopOnExit := range []bool{false, true} {
		name := map[bool]string{false: "workloads survive the agent and are re-adopted", true: "StopWorkloadsOnExit stops them"}[stopOnExit]
		t.Run(name, func(t *testing.T) {
			testutil.RequirePrivileged(t)
			node := testutil.NodeName(t)
			testutil.CleanupNode(t, node)
			url := natsServer(t)
			nc := connect(t, url)
			hbs := heartbeats(t, nc, node)
			cfg := nodeagent.Config{
				NATSURL: url, Node: node, DataDir: t.TempDir(),
				Interval: 50 * time.Millisecond, StopGrace: 200 * time.Millisecond,
				StopWorkloadsOnExit: stopOnExit,
			}
			run := runAgent(t, cfg)
			nextHeartbeat(t, hbs) // the agent is subscribed to its commands
			reply := request(t, nc, node, startCmd(wire.WorkloadSpec{ID: "db", Command: []string{"sh", "-c", "sleep 1000 & wait"}}))
			if reply.Error != "" {
				t.Fatal(reply.Error)
			}
			pid := reply.Status.HostPID
			run.stop(t)

			if stopOnExit {
				if alive(pid) {
					t.Errorf("pid %d alive after the agent stopped its workloads", pid)
				}
				return
			}
			if !alive(pid) {
				t.Fatalf("pid %d died with the agent", pid)
			}
			// A new subscription: hbs may still hold heartbeats of the
			// first agent, which also list db running.
			hbs2 := heartbeats(t, nc, node)
			runAgent(t, cfg)
			waitHeartbeat(t, hbs2, "db re-adopted", func(hb wire.Heartbeat) bool {
				w, ok := workload(hb, "db")
				return ok && w.State == wire.StateRunning && w.HostPID == pid
			})
			if r := request(t, nc, node, stopCmd("db")); r.Error != "" {
				t.Fatal(r.Error)
			}
			if alive(pid) {
				t.Errorf("pid %d alive after stop", pid)
			}
		})
	}
}

func TestHeartbeatTicksWithClock(t *testing.T) {
	node := testutil.NodeName(t)
	url := natsServer(t)
	nc := connect(t, url)
	hbs := heartbeats(t, nc, node)
	t0 := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	clock := nodeagent.NewManualClock(t0)
	runAgent(t, nodeagent.Config{NATSURL: url, Node: node, DataDir: t.TempDir(), Interval: time.Hour, Clock: clock})

	for i := range 3 {
		if i > 0 {
			clock.Advance(time.Hour)
		}
		hb := nextHeartbeat(t, hbs)
		if want := t0.Add(time.Duration(i) * time.Hour); hb.Seq != uint64(i+1) || !hb.SentAt.Equal(want) || hb.IntervalMS != time.Hour.Milliseconds() {
			t.Fatalf("heartbeat %d: seq %d sent %v interval %dms, want seq %d sent %v", i, hb.Seq, hb.SentAt, hb.IntervalMS, i+1, want)
		}
	}
	// No tick, no heartbeat.
	if m, err := hbs.NextMsg(100 * time.Millisecond); err == nil {
		t.Errorf("heartbeat without a tick: %s", m.Data)
	}
}

func TestAgentWithoutServerKeepsTrying(t *testing.T) {
	// Nothing listens on this port: Run must not fail, and must return on
	// cancel.
	node := testutil.NodeName(t)
	run := runAgent(t, nodeagent.Config{NATSURL: "nats://127.0.0.1:1", Node: node, DataDir: t.TempDir(), Interval: 10 * time.Millisecond})
	select {
	case err := <-run.done:
		t.Fatalf("Run returned %v without being cancelled", err)
	case <-time.After(300 * time.Millisecond):
	}
}

func TestNewValidates(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	ok := nodeagent.Config{NATSURL: "nats://127.0.0.1:4222", Node: "n1", DataDir: t.TempDir()}
	tests := []struct {
		name    string
		edit    func(*nodeagent.Config)
		wantErr string
	}{
		{"bad node name", func(c *nodeagent.Config) { c.Node = "a.b" }, "node name"},
		{"empty node name", func(c *nodeagent.Config) { c.Node = "" }, "node name"},
		{"no NATS", func(c *nodeagent.Config) { c.NATSURL = "" }, "NATSURL"},
		{"both NATS URL and conn", func(c *nodeagent.Config) { c.Conn = &nats.Conn{} }, "both"},
		{"no data dir", func(c *nodeagent.Config) { c.DataDir = "" }, "DataDir"},
		{"data dir not creatable", func(c *nodeagent.Config) { c.DataDir = filepath.Join(file, "sub") }, "data dir"},
		{"negative interval", func(c *nodeagent.Config) { c.Interval = -time.Second }, "interval"},
		{"bad label", func(c *nodeagent.Config) { c.Labels = map[string]string{"a b": "c"} }, "label"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := ok
			tc.edit(&cfg)
			_, err := nodeagent.New(cfg)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("New error = %v, want one mentioning %q", err, tc.wantErr)
			}
		})
	}
	if _, err := nodeagent.New(ok); err != nil {
		t.Errorf("New(valid config) = %v", err)
	}
}

func TestRunTwice(t *testing.T) {
	url := natsServer(t)
	a, err := nodeagent.New(nodeagent.Config{NATSURL: url, Node: testutil.NodeName(t), DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := a.Run(ctx); err != nil {
		t.Fatalf("first Run = %v", err)
	}
	if err := a.Run(ctx); err != nodeagent.ErrAlreadyRun {
		t.Errorf("second Run = %v, want ErrAlreadyRun", err)
	}
}
