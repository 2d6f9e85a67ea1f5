package nodeagent_test

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/batonhq/baton/nodeagent"
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
