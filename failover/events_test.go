package failover

import (
	"testing"
	"time"

	"github.com/batonhq/baton/failover/groups"
	"github.com/batonhq/baton/failover/membership"
	"github.com/batonhq/baton/failover/quorum"
)

// TestDeathToRecovery wires the three packages the way the scheduler will,
// with FailoverConfig, and measures the time from a node's last heartbeat
// to its group's start elsewhere when the probe fails at once and the fence
// answers in 200 ms: the budget the 2 s target leaves for the agent to start
// the process.
func TestDeathToRecovery(t *testing.T) {
	epoch := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	mem := membership.NewTable(membership.FailoverConfig())
	q := quorum.New(quorum.Config{})
	eng := groups.New(groups.Config{DefaultFenceLevels: []string{"ipmi"}})
	var prev quorum.Status
	var starts []groups.Action
	var recovered time.Time
	var feed func(groups.Event)
	feed = func(ev groups.Event) {
		for _, a := range eng.Handle(ev) {
			if a.Kind == groups.StartResource {
				starts = append(starts, a)
				if a.Node != "n1" && recovered.IsZero() {
					recovered = ev.At
				}
			}
			if a.Kind == groups.Fence {
				defer func() { // the fence answers 200 ms later
					feed(groups.Event{Kind: groups.Fenced, Node: a.Node, At: ev.At.Add(200 * time.Millisecond)})
				}()
			}
		}
	}
	apply := func(trs []membership.Transition, now time.Time) {
		for _, tr := range trs {
			m, _ := mem.Get(tr.Node)
			q.SetLive(tr.Node, Live(m.State))
			if ev, ok := NodeEvent(tr); ok {
				feed(ev)
			}
		}
		cur := q.Status()
		if ev, ok := QuorumEvent(prev, cur, now); ok {
			feed(ev)
		}
		prev = cur
	}
	at := func(ms int) time.Time { return epoch.Add(time.Duration(ms) * time.Millisecond) }
	for ms := 0; ms <= 500; ms += 250 {
		for _, n := range []string{"n1", "n2", "n3"} {
			apply(mem.Heartbeat(n, 0, at(ms)), at(ms))
		}
	}
	feed(groups.Event{Kind: groups.CreateGroup, At: at(500), Spec: &groups.Group{Name: "db", Nodes: []string{"n1", "n2"}, Resources: []groups.Resource{{Name: "db"}}}})
	if len(starts) != 1 || starts[0].Node != "n1" {
		t.Fatalf("starts %v, want db on n1", starts)
	}
	feed(groups.Event{Kind: groups.ResourceStarted, At: at(500), Group: "db", Resource: "db", Node: "n1"})
	starts = nil
	// n1 dies after its heartbeat at 500 ms; n2 and n3 keep beating; the
	// scheduler steps the table every 50 ms.
	for ms := 550; ms <= 3000 && recovered.IsZero(); ms += 50 {
		if ms%250 == 0 {
			for _, n := range []string{"n2", "n3"} {
				apply(mem.Heartbeat(n, 0, at(ms)), at(ms))
			}
		}
		up := mem.Step(at(ms))
		apply(up.Transitions, at(ms))
		for _, p := range up.Probes {
			apply(mem.ProbeResult(p.Node, false, at(ms)), at(ms)) // connection refused at once
		}
		feed(groups.Event{Kind: groups.Tick, At: at(ms)})
	}
	if recovered.IsZero() {
		t.Fatalf("db never restarted elsewhere; engine: %+v", eng.Groups())
	}
	took := recovered.Sub(at(500))
	t.Logf("death to start elsewhere: %s", took)
	if took > 1500*time.Millisecond {
		t.Fatalf("death to start elsewhere took %s; FailoverConfig must leave time for the start within 2 s", took)
	}
}
